//! A configuration value out of range: the error every configuration section and every
//! method's settings return from their own checks, naming the field and the value.

use std::fmt;

/// A value outside the range its field accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config value {field} = {value}: {reason}")]
pub struct InvalidValue {
    /// The field path, e.g. `training.lr`.
    pub field: &'static str,
    /// The value, as it prints.
    pub value: String,
    /// What the field accepts.
    pub reason: &'static str,
}

/// `Ok` when `ok`, else the [`InvalidValue`] of `field` = `value`.
///
/// # Errors
/// [`InvalidValue`] when `ok` is false.
pub fn check(
    ok: bool,
    field: &'static str,
    value: impl fmt::Display,
    reason: &'static str,
) -> Result<(), InvalidValue> {
    if ok {
        Ok(())
    } else {
        Err(InvalidValue {
            field,
            value: value.to_string(),
            reason,
        })
    }
}
