//! TODO(stub)
