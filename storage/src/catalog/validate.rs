//! Request validation against a provider's fields: create bodies and
//! credential updates.

use super::{checks, Config, Field, FieldError, FieldKind, Provider};
use crate::units::{parse_duration, parse_size};
use serde_json::Value;

/// Validates a create body; see [`Provider::validate_create`].
pub(super) fn create(p: &Provider, body: &Value) -> Result<Config, FieldError> {
    let obj = body
        .as_object()
        .ok_or_else(|| FieldError::new("", "request body must be a JSON object"))?;
    if let Some(key) = obj.keys().find(|k| p.field(k).is_none()) {
        return Err(FieldError::new(
            key.as_str(),
            format!("Unknown field '{key}' for provider '{}'", p.slug),
        ));
    }
    let mut out = Config::new();
    for f in &p.fields {
        let given = obj.get(&f.name).filter(|v| !v.is_null());
        let blank = given
            .and_then(Value::as_str)
            .is_some_and(|s| s.trim().is_empty());
        if f.required && (given.is_none() || blank) {
            return Err(missing(f));
        }
        let value = match given {
            Some(v) => coerce(f, v)?,
            None if f.extension && f.default.is_null() => continue,
            None => f.default_value(),
        };
        out.insert(f.name.clone(), value);
    }
    Ok(out)
}

/// Validates a credential update; see [`Provider::validate_credential_update`].
pub(super) fn credential_update(
    p: &Provider,
    body: &Value,
) -> Result<Vec<(String, Option<String>)>, FieldError> {
    let obj = body
        .as_object()
        .ok_or_else(|| FieldError::new("", "request body must be a JSON object"))?;
    if obj.is_empty() {
        return Err(FieldError::new(
            "",
            "Invalid request: no credential fields given",
        ));
    }
    let mut out = Vec::with_capacity(obj.len());
    for (key, value) in obj {
        let Some(f) = p.field(key).filter(|f| f.credential) else {
            return Err(FieldError::new(
                key.as_str(),
                format!("Invalid request: only credential fields are allowed (not '{key}')"),
            ));
        };
        let given = match value {
            Value::Null => None,
            Value::String(s) => Some(s),
            _ => return Err(not_string_or_null(key)),
        };
        if f.required && given.is_none_or(|s| s.trim().is_empty()) {
            return Err(FieldError::new(
                key.as_str(),
                format!("Invalid field '{key}': a required field cannot be removed"),
            ));
        }
        match given {
            None => out.push((key.clone(), None)),
            Some(_) => match coerce(f, value)? {
                Value::String(s) => out.push((key.clone(), Some(s))),
                _ => return Err(not_string_or_null(key)),
            },
        }
    }
    Ok(out)
}

fn not_string_or_null(key: &str) -> FieldError {
    FieldError::new(
        key,
        format!("Invalid field '{key}': expected a string or null"),
    )
}

fn missing(f: &Field) -> FieldError {
    FieldError::new(
        f.name.as_str(),
        format!("Missing required field '{}'", f.name),
    )
}

fn invalid(f: &Field, what: impl std::fmt::Display) -> FieldError {
    FieldError::new(f.name.as_str(), format!("Invalid {}: {what}", f.name))
}

/// Checks one given (non-null) value and returns its stored form.
fn coerce(f: &Field, v: &Value) -> Result<Value, FieldError> {
    let value = match f.kind {
        FieldKind::Bool => Value::Bool(coerce_bool(f, v)?),
        FieldKind::Int => {
            let n = coerce_int(f, v)?;
            check_allowed_int(f, n)?;
            Value::from(n)
        }
        FieldKind::Size => Value::String(coerce_size(f, v)?),
        FieldKind::Duration => coerce_duration(f, v)?,
        FieldKind::String => {
            let s = if f.list {
                list_string(f, v)?
            } else {
                v.as_str()
                    .ok_or_else(|| invalid(f, "expected a string"))?
                    .to_string()
            };
            Value::String(check_allowed_str(f, s)?)
        }
    };
    if let (Some(check), Value::String(s)) = (f.check, &value) {
        checks::run(check, &f.name, s).map_err(|m| FieldError::new(f.name.as_str(), m))?;
    }
    Ok(value)
}

fn coerce_bool(f: &Field, v: &Value) -> Result<bool, FieldError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(f, "expected a boolean (true or false)")),
    }
}

fn coerce_int(f: &Field, v: &Value) -> Result<i64, FieldError> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| invalid(f, "expected an integer"))
}

fn size_expected(f: &Field) -> FieldError {
    let off = if f.off { ", or off" } else { "" };
    invalid(
        f,
        format!("expected a size in bytes or with a unit suffix B, K, M, G, T or P (e.g. 4194304, 64M, 1.5G){off}"),
    )
}

fn coerce_size(f: &Field, v: &Value) -> Result<String, FieldError> {
    let s = match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(-1)) if f.off => "-1".to_string(),
            _ => return Err(size_expected(f)),
        },
        Value::String(s) => s.trim().to_string(),
        _ => return Err(size_expected(f)),
    };
    if f.default.as_str() == Some(s.as_str()) {
        return Ok(s);
    }
    if f.off && (s == "-1" || s.eq_ignore_ascii_case("off")) {
        return Ok(s);
    }
    let bytes = parse_size(&s).map_err(|_| size_expected(f))?;
    if let Some(allowed) = &f.allowed {
        let default_bytes = f.default.as_str().and_then(|d| parse_size(d).ok());
        let ok = default_bytes == Some(bytes)
            || allowed.iter().any(|a| parse_size(a).ok() == Some(bytes));
        if !ok {
            return Err(not_allowed(f, &s, allowed));
        }
    }
    Ok(s)
}

fn duration_expected(f: &Field) -> FieldError {
    let off = if f.off { ", or off" } else { "" };
    invalid(
        f,
        format!("expected whole seconds or a duration like 90s, 30m, 1h30m{off}"),
    )
}

fn coerce_duration(f: &Field, v: &Value) -> Result<Value, FieldError> {
    // The one string-typed duration (quatrix effective_upload_time) keeps
    // its string form; the others are stored as integer seconds.
    let as_string = f.default.is_string();
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(-1) if f.off => Ok(Value::from(-1)),
            Some(secs) if secs >= 0 => Ok(if as_string {
                Value::String(secs.to_string())
            } else {
                Value::from(secs)
            }),
            _ => Err(duration_expected(f)),
        },
        Value::String(s) => {
            let s = s.trim();
            if f.off && (s.eq_ignore_ascii_case("off") || s == "-1") {
                return Ok(Value::from(-1));
            }
            let d = parse_duration(s).map_err(|_| duration_expected(f))?;
            if as_string {
                return Ok(Value::String(s.to_string()));
            }
            if d.subsec_nanos() != 0 {
                return Err(invalid(
                    f,
                    format!("'{s}' is not a whole number of seconds"),
                ));
            }
            i64::try_from(d.as_secs())
                .map(Value::from)
                .map_err(|_| duration_expected(f))
        }
        _ => Err(duration_expected(f)),
    }
}

/// A list field's value as trimmed, comma-joined items; accepts a string or
/// an array of strings.
fn list_string(f: &Field, v: &Value) -> Result<String, FieldError> {
    let expected = || invalid(f, "expected a comma-separated string");
    let items: Vec<String> = match v {
        Value::String(s) => s.split(',').map(|i| i.trim().to_string()).collect(),
        Value::Array(a) => a
            .iter()
            .map(|i| {
                i.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(expected)
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(expected()),
    };
    Ok(items.join(","))
}

fn render_allowed(allowed: &[String]) -> String {
    allowed
        .iter()
        .map(|a| if a.is_empty() { "\"\"" } else { a.as_str() })
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_allowed(f: &Field, value: &str, allowed: &[String]) -> FieldError {
    let rendered = render_allowed(allowed);
    let message = match &f.invalid_message {
        Some(t) => t
            .replace("{field}", &f.name)
            .replace("{value}", value)
            .replace("{allowed}", &rendered),
        None if f.list => format!("Invalid {}: '{value}' is not one of {rendered}", f.name),
        None => format!("Invalid {}: must be one of {rendered}", f.name),
    };
    FieldError::new(f.name.as_str(), message)
}

/// Matches one value against `allowed`: exact, else case-insensitive (the
/// catalog's spelling is returned).
fn match_allowed<'a>(allowed: &'a [String], value: &str) -> Option<&'a str> {
    allowed
        .iter()
        .find(|a| a.as_str() == value)
        .or_else(|| allowed.iter().find(|a| a.eq_ignore_ascii_case(value)))
        .map(String::as_str)
}

fn check_allowed_str(f: &Field, s: String) -> Result<String, FieldError> {
    let Some(allowed) = &f.allowed else {
        return Ok(s);
    };
    if f.default_value().as_str() == Some(s.as_str()) {
        return Ok(s);
    }
    if !f.list {
        return match_allowed(allowed, &s)
            .map(str::to_string)
            .ok_or_else(|| not_allowed(f, &s, allowed));
    }
    let mut items = Vec::new();
    for item in s.split(',') {
        match match_allowed(allowed, item) {
            Some(a) => items.push(a),
            None => return Err(not_allowed(f, item, allowed)),
        }
    }
    Ok(items.join(","))
}

fn check_allowed_int(f: &Field, n: i64) -> Result<(), FieldError> {
    let Some(allowed) = &f.allowed else {
        return Ok(());
    };
    if f.default.as_i64() == Some(n) || allowed.iter().any(|a| a.parse::<i64>().ok() == Some(n)) {
        Ok(())
    } else {
        Err(not_allowed(f, &n.to_string(), allowed))
    }
}
