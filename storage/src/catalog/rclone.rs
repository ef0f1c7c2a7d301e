//! How a provider's validated config becomes an rclone remote definition:
//! the per-field mapping carried by the catalog ([`RcloneField`]) and the
//! options it yields ([`Provider::rclone_options`]).

use super::{Config, Field, FieldKind, Provider, REDACTED};
use crate::units::{parse_duration, parse_size};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// How a field reaches rclone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcloneField {
    /// The field is an option of the provider's rclone backend.
    Option(RcloneMapping),
    /// The field is not an rclone option; the text says why (berth's `name`,
    /// local `root` which is the remote's path).
    NotAnOption(String),
}

/// The rclone option a field sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcloneMapping {
    /// rclone's option name (`secret_access_key`, `pass`, ...).
    pub name: String,
    /// rclone's `IsPassword`: the value must go through `rclone obscure`.
    pub obscure: bool,
    /// How the stored value is written.
    pub form: RcloneForm,
    /// Send the value even when it equals the catalog default, because
    /// rclone's own default differs (chunker `name_format`, ...).
    #[serde(default)]
    pub send_default: bool,
    /// Catalog values rclone spells differently (s3 `provider`
    /// `Hoody-VFS` is rclone's `Rclone`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, String>,
}

/// How a stored value is written for rclone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RcloneForm {
    /// As stored: strings as given, bools `true`/`false`, integers in
    /// decimal (union `cache_time` is plain seconds too).
    Plain,
    /// Seconds with an `s` suffix (`ms` when fractional); `-1` is `off`.
    Duration,
    /// Bytes with a `B` suffix, since rclone reads a bare number as KiB;
    /// `-1` is `off`.
    Size,
}

/// One option of an rclone remote definition.
#[derive(Clone, PartialEq, Eq)]
pub struct RcloneOption {
    /// rclone's option name.
    pub name: String,
    /// The value as rclone parses it (not yet obscured).
    pub value: String,
    /// Pass the value through `rclone obscure` before handing it to rclone.
    pub obscure: bool,
    /// The catalog keeps the value secret: never log or show it.
    pub secret: bool,
}

impl fmt::Debug for RcloneOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.secret {
            REDACTED
        } else {
            self.value.as_str()
        };
        f.debug_struct("RcloneOption")
            .field("name", &self.name)
            .field("value", &value)
            .field("obscure", &self.obscure)
            .field("secret", &self.secret)
            .finish()
    }
}

impl Provider {
    /// rclone's backend type for this provider (`s3`, `google cloud
    /// storage`, `sftp` for `ssh`, ...); `None` when rclone has none (see
    /// [`rclone_unavailable`](Self::rclone_unavailable)).
    pub fn rclone_type(&self) -> Option<&str> {
        self.rclone_type.as_deref()
    }

    /// Why rclone has no backend for this provider (uptobox), when
    /// [`rclone_type`](Self::rclone_type) is `None`.
    pub fn rclone_unavailable(&self) -> Option<&str> {
        self.rclone_unavailable.as_deref()
    }

    /// The rclone options that define a remote for a validated config (as
    /// [`validate_create`](Self::validate_create) returns it), in field
    /// order. Left out: fields that are not rclone options, `null` and empty
    /// values, and values equal to the catalog default (so rclone's own
    /// default applies) unless the mapping says `send_default`. Empty when
    /// the provider has no rclone backend.
    pub fn rclone_options(&self, config: &Config) -> Vec<RcloneOption> {
        self.fields
            .iter()
            .filter_map(|f| match &f.rclone {
                Some(RcloneField::Option(m)) => Some((f, m)),
                _ => None,
            })
            .filter_map(|(f, m)| {
                let value = config.get(&f.name)?;
                let empty = match value {
                    Value::Null => true,
                    Value::String(s) => s.is_empty(),
                    _ => false,
                };
                if empty || (!m.send_default && *value == f.default_value()) {
                    return None;
                }
                Some(RcloneOption {
                    name: m.name.clone(),
                    value: m.render(value),
                    obscure: m.obscure,
                    secret: f.secret,
                })
            })
            .collect()
    }

    /// The rclone invariants of [`Provider::check_consistency`].
    pub(super) fn check_rclone(&self) -> Result<(), String> {
        if self.rclone_type.is_some() == self.rclone_unavailable.is_some() {
            return Err(format!(
                "{}: needs exactly one of rclone_type and rclone_unavailable",
                self.slug
            ));
        }
        let mut options = std::collections::HashSet::new();
        for f in &self.fields {
            let at = format!("{}.{}", self.slug, f.name);
            match &f.rclone {
                None if self.rclone_type.is_some() => {
                    return Err(format!("{at}: no rclone mapping"));
                }
                Some(_) if self.rclone_type.is_none() => {
                    return Err(format!("{at}: rclone mapping without an rclone_type"));
                }
                Some(RcloneField::Option(m)) => {
                    m.check(f).map_err(|e| format!("{at}: {e}"))?;
                    if !options.insert(m.name.as_str()) {
                        return Err(format!("{at}: rclone option {} set twice", m.name));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl RcloneMapping {
    /// The stored value as rclone parses it. Values of an unexpected shape
    /// (a config stored by an older catalog) are passed as they are, for
    /// rclone to judge.
    fn render(&self, value: &Value) -> String {
        let plain = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match self.form {
            RcloneForm::Plain => self.values.get(&plain).cloned().unwrap_or(plain),
            RcloneForm::Duration => render_duration(value).unwrap_or(plain),
            RcloneForm::Size => render_size(&plain).unwrap_or(plain),
        }
    }

    /// The mapping fits the field it belongs to.
    fn check(&self, f: &Field) -> Result<(), String> {
        let fits = match self.form {
            RcloneForm::Plain => true,
            RcloneForm::Duration => f.kind == FieldKind::Duration,
            RcloneForm::Size => f.kind == FieldKind::Size,
        };
        if !fits {
            return Err(format!("form {:?} on a {:?} field", self.form, f.kind));
        }
        if self.obscure && !f.secret {
            return Err("an obscured option must be secret".into());
        }
        if !self.values.is_empty()
            && (self.form != RcloneForm::Plain || f.kind != FieldKind::String)
        {
            return Err("value renames on a non-string field".into());
        }
        Ok(())
    }
}

/// `90s`, `1500ms`, `off`; `None` when the value is no duration.
fn render_duration(value: &Value) -> Option<String> {
    let d = match value {
        Value::Number(n) => match n.as_i64()? {
            -1 => return Some("off".into()),
            secs => std::time::Duration::from_secs(u64::try_from(secs).ok()?),
        },
        Value::String(s) if s.eq_ignore_ascii_case("off") || s == "-1" => {
            return Some("off".into());
        }
        Value::String(s) => parse_duration(s).ok()?,
        _ => return None,
    };
    Some(if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    })
}

/// `5242880B`, `off`; `None` when the value is no size.
fn render_size(value: &str) -> Option<String> {
    if value.eq_ignore_ascii_case("off") || value == "-1" {
        return Some("off".into());
    }
    parse_size(value).ok().map(|bytes| format!("{bytes}B"))
}
