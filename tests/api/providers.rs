//! Every provider of the spec, table-driven from `../shared/spec/providers.json`:
//! required fields, types, allowed values, unknown fields, and every spec
//! example either connecting or failing with a clear reason.

use crate::common::{spec_providers, Api, Server};
use berth_storage::catalog::{catalog, FieldKind};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};

fn error_of(result: &(StatusCode, Value)) -> String {
    result.1["error"].as_str().unwrap_or_default().to_string()
}

fn example(provider: &Value) -> Map<String, Value> {
    provider["example_request"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// The spec example without the fields the catalog refuses (the hasher
/// example names `blake3`, which the spec itself shows as an error), so that
/// field-by-field checks start from a body that validates.
fn valid_base(slug: &str, provider: &Value) -> Map<String, Value> {
    let mut base = example(provider);
    let entry = catalog().get(slug).unwrap();
    while let Err(err) = entry.validate_create(&Value::Object(base.clone())) {
        if base.remove(&err.field).is_none() {
            break;
        }
    }
    base
}

#[test]
fn every_spec_example_connects_or_fails_clearly() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let providers = spec_providers();
    assert_eq!(providers.len(), 54);
    for provider in &providers {
        let slug = provider["slug"].as_str().unwrap();
        let result = api.post(
            &format!("/api/v1/backends/{slug}"),
            &Value::Object(example(provider)),
        );
        match result.0 {
            StatusCode::CREATED => {
                let data = &result.1["data"];
                assert_eq!(data["backend_type"], provider["backend_type"], "{slug}");
                assert_eq!(data["type"], provider["response_type"], "{slug}");
                assert_eq!(data["mount_paths"], json!([]), "{slug}");
                if let Some(message) = provider["success_message"].as_str() {
                    assert_eq!(result.1["message"], json!(message), "{slug}");
                }
            }
            StatusCode::BAD_REQUEST => {
                let message = error_of(&result);
                assert!(!message.is_empty(), "{slug}: empty error");
                let validation = catalog()
                    .get(slug)
                    .unwrap()
                    .validate_create(&Value::Object(example(provider)));
                match validation {
                    // The example itself is invalid: the answer names the field.
                    Err(err) => {
                        assert_eq!(message, err.message, "{slug}");
                        assert!(message.contains(&err.field), "{slug}: {message}");
                    }
                    // Natively served or through rclone, the probe's own
                    // failure (no network here: a classified rclone error or
                    // the probe timeout), never a missing engine or rclone,
                    // and never a secret of the example.
                    Ok(config) => {
                        assert!(!message.contains("engine"), "{slug}: {message}");
                        let entry = catalog().get(slug).unwrap();
                        assert_eq!(entry.scrub(&config, &message), message, "{slug}");
                        assert!(!message.contains("not available"), "{slug}: {message}");
                    }
                }
            }
            other => panic!("{slug}: unexpected {other}: {}", result.1),
        }
    }
    let mut natives: Vec<_> = api.get("/api/v1/backends").1["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backend_type"].as_str().unwrap().to_string())
        .collect();
    natives.sort();
    // Offline, only the local examples connect, and internetarchive, whose
    // root rclone lists without a request (items are reached by name).
    assert_eq!(
        natives,
        vec!["internetarchive", "local", "memory"],
        "only examples that can connect offline are stored"
    );
}

#[test]
fn every_field_is_validated() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let mut checked = 0;
    for provider in spec_providers() {
        let slug = provider["slug"].as_str().unwrap();
        let entry = catalog()
            .get(slug)
            .unwrap_or_else(|| panic!("{slug} missing from the catalog"));
        let base = valid_base(slug, &provider);
        let post = |body: Map<String, Value>| {
            api.post(&format!("/api/v1/backends/{slug}"), &Value::Object(body))
        };

        let mut unknown = base.clone();
        unknown.insert("no_such_field".into(), json!("x"));
        let result = post(unknown);
        assert_eq!(result.0, StatusCode::BAD_REQUEST, "{slug}");
        assert!(
            error_of(&result).contains("no_such_field"),
            "{slug}: {}",
            error_of(&result)
        );

        for field in provider["fields"].as_array().unwrap() {
            let name = field["name"].as_str().unwrap();
            if field["required"] == json!(true) {
                let mut missing = base.clone();
                missing.remove(name);
                let result = post(missing);
                assert_eq!(result.0, StatusCode::BAD_REQUEST, "{slug}.{name} missing");
                assert!(
                    error_of(&result).contains(name),
                    "{slug}.{name}: {}",
                    error_of(&result)
                );
            }
            let wrong = match field["type"].as_str().unwrap() {
                "boolean" => json!("maybe"),
                "integer" => json!("twelve-ish"),
                _ => json!({"nested": true}),
            };
            let mut body = base.clone();
            body.insert(name.into(), wrong.clone());
            let result = post(body);
            assert_eq!(result.0, StatusCode::BAD_REQUEST, "{slug}.{name} = {wrong}");
            assert!(
                error_of(&result).contains(name),
                "{slug}.{name}: {}",
                error_of(&result)
            );

            let catalog_field = entry
                .field(name)
                .unwrap_or_else(|| panic!("{slug}.{name} missing from the catalog"));
            if catalog_field.allowed.is_some() && catalog_field.kind == FieldKind::String {
                let mut body = base.clone();
                body.insert(name.into(), json!("definitely-not-allowed"));
                let result = post(body);
                assert_eq!(
                    result.0,
                    StatusCode::BAD_REQUEST,
                    "{slug}.{name} outside the allowed set"
                );
                assert!(
                    error_of(&result).contains(name),
                    "{slug}.{name}: {}",
                    error_of(&result)
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 704, "every field of the spec was checked");
}

#[test]
fn spec_forms_of_booleans_integers_sizes_and_durations_are_accepted() {
    let server = Server::start();
    let api = Api::new(&server, "acme");
    let id = api.connect(
        "local",
        &json!({"one_file_system": "true", "no_preallocate": false}),
    );
    let (_, detail) = api.get(&format!("/api/v1/backends/{id}"));
    assert_eq!(detail["config"]["one_file_system"], json!(true));
    assert_eq!(detail["config"]["no_preallocate"], json!(false));
    // Sizes and durations in the spec's forms.
    api.connect("memory", &json!({"name": "x"}));
    api.connect(
        "cache",
        &json!({"remote": "x:", "chunk_size": "10M", "info_age": "1h", "workers": "8"}),
    );
    let result = api.post(
        "/api/v1/backends/cache",
        &json!({"remote": "x:", "chunk_total_size": "lots"}),
    );
    assert!(
        error_of(&result).contains("chunk_total_size"),
        "{}",
        error_of(&result)
    );
    let result = api.post(
        "/api/v1/backends/cache",
        &json!({"remote": "x:", "info_age": "a while"}),
    );
    assert!(
        error_of(&result).contains("info_age"),
        "{}",
        error_of(&result)
    );
}
