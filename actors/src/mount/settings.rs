//! The `vfs_config` of a mount as the API takes it: numbers or the spec's
//! strings (`"1h"`, `"30m"`, `"20G"`, `"128M"`), validated field by field,
//! and the one place it becomes either engine's settings.

use berth_rclone::VfsFlags;
use berth_storage::units::{parse_duration, parse_size};
use berth_vfs::{CacheMode, VfsConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// How file data is cached (see docs/SEMANTICS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheModeName {
    /// No disk cache; sequential streaming.
    Off,
    /// Disk cache only for files opened read+write.
    Minimal,
    /// Disk cache for files opened for writing.
    Writes,
    /// Reads and writes through the disk cache.
    Full,
}

/// A mount's VFS settings, as stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfsSettings {
    /// Cache mode.
    pub cache_mode: CacheModeName,
    /// Seconds files stay in the cache.
    pub cache_max_age: u64,
    /// Bytes the cache may hold.
    pub cache_max_size: u64,
    /// Seconds listings and attributes are cached.
    pub dir_cache_time: u64,
}

impl Default for VfsSettings {
    /// The spec's defaults.
    fn default() -> Self {
        VfsSettings {
            cache_mode: CacheModeName::Writes,
            cache_max_age: 3600,
            cache_max_size: 10_737_418_240,
            dir_cache_time: 300,
        }
    }
}

fn seconds(field: &str, value: &Value) -> Result<u64, String> {
    let invalid =
        || format!("Invalid {field}: expected seconds or a duration such as \"30m\" or \"1h\"");
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(invalid),
        Value::String(s) => parse_duration(s)
            .map(|d| d.as_secs())
            .map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

fn bytes(field: &str, value: &Value) -> Result<u64, String> {
    let invalid =
        || format!("Invalid {field}: expected bytes or a size such as \"128M\" or \"10G\"");
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(invalid),
        Value::String(s) => parse_size(s).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

impl VfsSettings {
    /// The settings of berth's own VFS.
    pub fn vfs_config(&self) -> VfsConfig {
        VfsConfig {
            cache_mode: match self.cache_mode {
                CacheModeName::Off => CacheMode::Off,
                CacheModeName::Minimal => CacheMode::Minimal,
                CacheModeName::Writes => CacheMode::Writes,
                CacheModeName::Full => CacheMode::Full,
            },
            cache_max_age: Duration::from_secs(self.cache_max_age),
            cache_max_size: self.cache_max_size,
            dir_cache_time: Duration::from_secs(self.dir_cache_time),
            ..VfsConfig::default()
        }
    }

    /// The same settings as `rclone mount` flags, with berth's write-back delay.
    pub fn rclone_flags(&self) -> VfsFlags {
        use berth_rclone::CacheMode as Rclone;
        VfsFlags {
            cache_mode: match self.cache_mode {
                CacheModeName::Off => Rclone::Off,
                CacheModeName::Minimal => Rclone::Minimal,
                CacheModeName::Writes => Rclone::Writes,
                CacheModeName::Full => Rclone::Full,
            },
            cache_max_age: Duration::from_secs(self.cache_max_age),
            cache_max_size: self.cache_max_size,
            dir_cache_time: Duration::from_secs(self.dir_cache_time),
            write_back: Some(VfsConfig::default().write_back),
        }
    }

    /// Applies the fields of a `vfs_config` object on top of `self`; an
    /// unknown field or a bad value is an error naming the field.
    pub fn merged(&self, value: &Value) -> Result<VfsSettings, String> {
        let fields: &Map<String, Value> = value
            .as_object()
            .ok_or_else(|| "Invalid vfs_config: expected a JSON object".to_string())?;
        let mut out = *self;
        for (key, value) in fields {
            match key.as_str() {
                "cache_mode" => {
                    out.cache_mode = serde_json::from_value(value.clone())
                        .map_err(|_| "Invalid cache_mode: must be one of off, minimal, writes, full".to_string())?
                }
                "cache_max_age" => out.cache_max_age = seconds(key, value)?,
                "cache_max_size" => out.cache_max_size = bytes(key, value)?,
                "dir_cache_time" => out.dir_cache_time = seconds(key, value)?,
                other => {
                    return Err(format!(
                        "Unknown vfs_config field '{other}': expected cache_mode, cache_max_age, cache_max_size, dir_cache_time"
                    ))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_forms_are_accepted() {
        let settings = VfsSettings::default()
            .merged(&json!({"cache_mode": "full", "cache_max_size": "20G", "cache_max_age": "1h", "dir_cache_time": 60}))
            .unwrap();
        assert_eq!(settings.cache_mode, CacheModeName::Full);
        assert_eq!(settings.cache_max_size, 20 << 30);
        assert_eq!(settings.cache_max_age, 3600);
        assert_eq!(settings.dir_cache_time, 60);
        assert_eq!(
            VfsSettings::default().merged(&json!({})).unwrap(),
            VfsSettings::default()
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        let base = VfsSettings::default();
        assert_eq!(
            base.merged(&json!({"cache_mode": "sometimes"}))
                .unwrap_err(),
            "Invalid cache_mode: must be one of off, minimal, writes, full"
        );
        for (field, value) in [
            ("cache_max_age", json!("soon")),
            ("cache_max_size", json!("big")),
            ("dir_cache_time", json!(-1)),
        ] {
            let err = base.merged(&json!({ field: value })).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
        assert!(base
            .merged(&json!({"buffer_size": 1}))
            .unwrap_err()
            .contains("buffer_size"));
        assert!(base.merged(&json!("full")).is_err());
    }

    #[test]
    fn round_trips_as_json() {
        let text = serde_json::to_string(&VfsSettings::default()).unwrap();
        assert_eq!(
            text,
            r#"{"cache_mode":"writes","cache_max_age":3600,"cache_max_size":10737418240,"dir_cache_time":300}"#
        );
        assert_eq!(
            serde_json::from_str::<VfsSettings>(&text).unwrap(),
            VfsSettings::default()
        );
    }
}
