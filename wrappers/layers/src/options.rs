//! Reading options from a validated config (see the catalog's module doc for
//! the stored representation: booleans and integers as JSON values, sizes as
//! strings).

use berth_storage::catalog::Config;
use berth_storage::units::parse_size;
use berth_storage::{Result, StorageError};

/// A string option (`""` when absent).
pub(crate) fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// A boolean option (`false` when absent).
pub(crate) fn flag(config: &Config, key: &str) -> bool {
    config.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

/// An integer option (integers and durations in seconds).
pub(crate) fn int(config: &Config, key: &str) -> Result<i64> {
    config
        .get(key)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| StorageError::invalid_config(format!("Invalid {key}: expected an integer")))
}

/// A size option in bytes.
pub(crate) fn size(config: &Config, key: &str) -> Result<u64> {
    parse_size(text(config, key))
        .map_err(|e| StorageError::invalid_config(format!("Invalid {key}: {e}")))
}
