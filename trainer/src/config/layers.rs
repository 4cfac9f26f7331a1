//! The TOML layers of a configuration: deep merge, `--set` overrides, and the search for a
//! field no section has.

use super::{ConfigError, notice};

/// Keys older configurations wrote, the key each is now, and whether the old one is
/// deprecated (a notice) or a plain alias (silent: every `run.json` before the rename has it).
pub(super) const RENAMED_KEYS: [(&str, &str, bool); 2] = [
    ("strategy.seed", "run.seed", true),
    ("training.method", "training.adapter", false),
];

/// Moves the old keys of `layer` (one TOML layer: a file, `run.json`'s config, an override)
/// to their new place ([`RENAMED_KEYS`]). An old key wins over a new one of the same layer,
/// as it was written last by whoever edited an older file. `source_name` names the layer in
/// the deprecation notice; `None` reads silently (a `run.json` written by an older version,
/// which nobody is asked to edit).
pub(super) fn rename_legacy_keys(layer: &mut toml::Table, source_name: Option<&str>) {
    for (old, new, deprecated) in RENAMED_KEYS {
        let (old_section, old_field) = old.split_once('.').expect("section.field");
        let (new_section, new_field) = new.split_once('.').expect("section.field");
        let Some(toml::Value::Table(section)) = layer.get_mut(old_section) else {
            continue;
        };
        let Some(value) = section.remove(old_field) else {
            continue;
        };
        if section.is_empty() && old_section != new_section {
            layer.remove(old_section);
        }
        if let Some(source_name) = source_name.filter(|_| deprecated) {
            notice(&format!(
                "{source_name}: `{old}` is deprecated; write `{new}`"
            ));
        }
        if let toml::Value::Table(section) = layer
            .entry(new_section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            section.insert(new_field.to_owned(), value);
        }
    }
}

/// The current key path of `path` ([`RENAMED_KEYS`]), with the deprecation notice.
fn renamed_path(path: &str) -> &str {
    match RENAMED_KEYS.iter().find(|(old, _, _)| *old == path) {
        Some((old, new, deprecated)) => {
            if *deprecated {
                notice(&format!(
                    "--set {old}: `{old}` is deprecated; write `{new}`"
                ));
            }
            new
        }
        None => path,
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
pub(super) fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

pub(super) fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadOverride {
        arg: arg.to_owned(),
    };
    let (path, raw) = arg.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = renamed_path(path.trim()).split('.').collect();
    if keys.len() < 2 || keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut node = table;
    for key in &keys[..keys.len() - 1] {
        let entry = node
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::UnknownField {
                    path: path.to_owned(),
                });
            }
        };
    }
    node.insert(keys[keys.len() - 1].to_owned(), value);
    Ok(())
}

/// The first key path of `given` that `known` (the parsed config serialised back) lacks.
pub(super) fn first_unknown(
    given: &toml::Table,
    known: &toml::Table,
    prefix: &str,
) -> Option<String> {
    given.iter().find_map(|(key, value)| {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (value, known.get(key)) {
            (_, None) => Some(path),
            (toml::Value::Table(g), Some(toml::Value::Table(k))) => first_unknown(g, k, &path),
            _ => None,
        }
    })
}
