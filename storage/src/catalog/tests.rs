use super::*;
use crate::units;
use serde_json::json;

const SPEC_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/spec/providers.json"
);

fn spec() -> Value {
    let text = std::fs::read_to_string(SPEC_PATH)
        .unwrap_or_else(|e| panic!("cannot read the spec at {SPEC_PATH}: {e}"));
    serde_json::from_str(&text).expect("spec providers.json is JSON")
}

fn p(slug: &str) -> &'static Provider {
    catalog()
        .get(slug)
        .unwrap_or_else(|| panic!("no provider {slug}"))
}

fn ok(slug: &str, body: Value) -> Config {
    p(slug)
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("{slug} {body}: {e}"))
}

fn err(slug: &str, body: Value) -> FieldError {
    match p(slug).validate_create(&body) {
        Ok(c) => panic!("{slug} {body} validated: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn catalog_loads_all_providers() {
    let c = catalog();
    assert_eq!(c.providers().len(), 59);
    assert_eq!(c.providers().iter().filter(|p| !p.extension).count(), 54);
    assert_eq!(c.get("s3").unwrap().backend_type, "s3");
    assert_eq!(
        c.get("google-cloud-storage").unwrap().backend_type,
        "google cloud storage"
    );
    assert_eq!(c.get("drive").unwrap().category, Category::CloudStorage);
    assert_eq!(c.get("union").unwrap().category, Category::Advanced);
    assert_eq!(
        c.get("azureblob").unwrap().category,
        Category::ObjectStorage
    );
    assert!(c.get("sftp").is_some() && c.get("ssh").is_some());
    assert!(c.get("nfs").is_none());
    assert_eq!(
        c.get("box").unwrap().success_message.as_deref(),
        Some("Box backend connected successfully")
    );
    assert_eq!(c.get("s3").unwrap().success_message, None);
}

/// The enriched JSON keeps the spec's data: slugs, provider keys, field
/// names, types, defaults, required flags (extension fields and providers
/// aside).
#[test]
fn agrees_with_spec() {
    let spec = spec();
    let ours: Value = serde_json::from_str(CATALOG_JSON).unwrap();
    let sp = spec["providers"].as_array().unwrap();
    let op: Vec<Value> = ours["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["extension"] != json!(true))
        .cloned()
        .collect();
    let slugs = |v: &[Value]| v.iter().map(|p| p["slug"].clone()).collect::<Vec<_>>();
    assert_eq!(slugs(sp), slugs(&op));
    let mut names = HashSet::new();
    for (s, o) in sp.iter().zip(&op) {
        let slug = s["slug"].as_str().unwrap();
        for key in [
            "category",
            "summary",
            "backend_type",
            "response_type",
            "example_request",
            "example_errors",
        ] {
            assert_eq!(s[key], o[key], "{slug}.{key}");
        }
        assert_eq!(
            s.get("success_message").unwrap_or(&Value::Null),
            &o["success_message"],
            "{slug}"
        );
        let sf = s["fields"].as_array().unwrap();
        let of: Vec<&Value> = o["fields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["extension"] != json!(true))
            .collect();
        assert_eq!(sf.len(), of.len(), "{slug}: field count");
        for (a, b) in sf.iter().zip(of) {
            let at = format!("{slug}.{}", a["name"]);
            for key in ["name", "type", "required", "default", "description"] {
                assert_eq!(a[key], b[key], "{at}.{key}");
            }
            names.insert(a["name"].as_str().unwrap().to_string());
        }
        // The parsed provider matches the raw enriched entry.
        let parsed = p(slug);
        assert_eq!(parsed.fields.len(), o["fields"].as_array().unwrap().len());
        assert_eq!(
            parsed.category,
            serde_json::from_value(s["category"].clone()).unwrap()
        );
    }
    assert_eq!(names.len(), 329, "distinct spec field names");
}

#[test]
fn kinds_match_spec_types() {
    let ours: Value = serde_json::from_str(CATALOG_JSON).unwrap();
    for prov in ours["providers"].as_array().unwrap() {
        for f in prov["fields"].as_array().unwrap() {
            let at = format!("{}.{}", prov["slug"], f["name"]);
            let field: Field = serde_json::from_value(f.clone()).unwrap();
            let ty = f["type"].as_str().unwrap();
            let ok = match field.kind {
                FieldKind::Bool => ty == "boolean",
                FieldKind::Int => ty == "integer",
                FieldKind::Size | FieldKind::String => ty == "string",
                FieldKind::Duration => ty == "integer" || ty == "string",
            };
            assert!(ok, "{at}: kind {:?} for spec type {ty}", field.kind);
            // Defaults are valid values of their own kind.
            match field.kind {
                FieldKind::Size => {
                    let d = field.default.as_str().unwrap();
                    assert!(
                        d.is_empty() || (field.off && d == "-1") || units::parse_size(d).is_ok(),
                        "{at}"
                    );
                }
                FieldKind::Duration => {
                    let ok = field.default.as_i64().is_some_and(|n| n >= 0)
                        || field
                            .default
                            .as_str()
                            .is_some_and(|s| units::parse_duration(s).is_ok());
                    assert!(ok, "{at}");
                }
                _ => {}
            }
        }
    }
}

#[test]
fn flag_invariants() {
    for prov in catalog().providers() {
        for f in &prov.fields {
            let at = format!("{}.{}", prov.slug, f.name);
            assert!(
                !f.secret || f.credential,
                "{at}: every secret is a credential"
            );
            assert!(
                !(f.credential && f.identity),
                "{at}: credential and identity"
            );
            if f.kind != FieldKind::String {
                assert!(!f.secret && !f.credential && !f.identity, "{at}");
            }
            if f.extension {
                assert!(!f.secret && !f.credential && !f.identity, "{at}");
            }
        }
    }
}

#[test]
fn spec_credential_keys_are_credentials() {
    // The PUT section's "common keys".
    let secret = [
        "pass",
        "password",
        "key",
        "passphrase",
        "token",
        "refresh_token",
        "auth_token",
        "bearer_token",
        "session_token",
        "secret",
        "secret_key",
        "secret_access_key",
        "client_secret",
        "service_account_credentials",
        "private_key",
        // and the brief's further secrets
        "api_key",
        "api_secret",
        "access_token",
        "sse_customer_key",
        "sse_customer_key_base64",
        "sse_customer_key_md5",
        "sse_customer_key_sha256",
        "plex_password",
        "plex_token",
        "client_certificate_password",
        "sas_url",
        "connection_string",
        "access_grant",
        "app_token",
    ];
    let credential = ["access_key_id", "client_id", "service_account_file"];
    let identity = [
        "host", "user", "username", "port", "apple_id", "url", "endpoint", "hostname",
    ];
    let mut seen = HashSet::new();
    for prov in catalog().providers() {
        for f in prov.fields.iter().filter(|f| f.kind == FieldKind::String) {
            let at = format!("{}.{}", prov.slug, f.name);
            if secret.contains(&f.name.as_str()) {
                assert!(f.secret && f.credential, "{at} must be secret");
                seen.insert(f.name.as_str());
            }
            if credential.contains(&f.name.as_str()) {
                assert!(f.credential && !f.secret, "{at} must be a plain credential");
            }
            if identity.contains(&f.name.as_str()) {
                assert!(f.identity, "{at} must be identity");
            }
        }
    }
    // Most of the listed names occur in the spec tables.
    assert!(seen.len() >= 25, "{seen:?}");
    assert!(p("b2").field("account").unwrap().credential);
    assert!(p("azureblob").field("account").unwrap().identity);
    assert!(p("swift").field("tenant").unwrap().identity);
    assert!(p("onedrive").field("tenant").unwrap().credential);
    assert!(p("protondrive").field("2fa").unwrap().secret);
    assert!(!p("seafile").field("2fa").unwrap().secret);
}

/// Every example request of the spec validates, with every field present in
/// the config (the `name` extension only when given).
#[test]
fn example_requests() {
    for prov in catalog().providers() {
        let config = prov
            .validate_create(&prov.example_request)
            .unwrap_or_else(|e| panic!("{}: {e}", prov.slug));
        for f in &prov.fields {
            if f.name != "name" {
                assert!(config.contains_key(&f.name), "{}.{}", prov.slug, f.name);
            }
        }
        assert!(!config.contains_key("name"));
        assert_eq!(config.len(), prov.fields.len() - 1, "{}", prov.slug);
        // Given values survive (modulo canonical spelling).
        for (k, v) in prov.example_request.as_object().unwrap() {
            if v.is_string() && prov.field(k).unwrap().kind == FieldKind::String {
                assert_eq!(&config[k], v, "{}.{k}", prov.slug);
            }
        }
    }
    let hasher = ok("hasher", p("hasher").example_request.clone());
    assert_eq!(hasher["hashes"], json!("md5,sha1,blake3"));
    assert_eq!(hasher["max_age"], json!(86400));
    let cache = ok("cache", p("cache").example_request.clone());
    assert_eq!(
        (&cache["chunk_size"], &cache["workers"], &cache["writes"]),
        (&json!("10M"), &json!(8), &json!(true))
    );
}

/// The spec's example errors that are validation errors come out verbatim.
#[test]
fn spec_example_errors_verbatim() {
    let cases = [
        ("local", json!({"time_type": "birth"}), "time_type"),
        (
            "chunker",
            json!({"remote": "r:x", "name_format": "*.part"}),
            "name_format",
        ),
        ("combine", json!({"upstreams": "\"\""}), "upstreams"),
        ("union", json!({"upstreams": "\"\" \"\""}), "upstreams"),
        ("alias", json!({"remote": "s3-prod"}), "remote"),
        (
            "hasher",
            json!({"remote": "r:", "hashes": "md5,blake2"}),
            "hashes",
        ),
    ];
    for (slug, body, field) in cases {
        let e = err(slug, body);
        assert_eq!(e.field, field, "{slug}");
        if slug == "hasher" {
            // Same wording as the spec's "Unsupported hash type: blake3".
            assert!(
                e.message
                    .starts_with("Unsupported hash type: blake2 (hashes must be"),
                "{e}"
            );
            assert!(p(slug).example_errors[0].starts_with("Unsupported hash type: "));
            continue;
        }
        assert_eq!(vec![e.message.clone()], p(slug).example_errors, "{slug}");
        assert_eq!(e.to_string(), e.message);
    }
}

#[test]
fn body_must_be_object_and_fields_known() {
    let e = err("s3", json!(["endpoint"]));
    assert_eq!(
        (e.field.as_str(), e.message.as_str()),
        ("", "request body must be a JSON object")
    );
    let e = err("memory", json!({"bogus": 1}));
    assert_eq!(e.field, "bogus");
    assert_eq!(e.message, "Unknown field 'bogus' for provider 'memory'");
    // Unknown fields are reported before missing required ones.
    let e = err("mega", json!({"host": "x"}));
    assert_eq!(e.message, "Unknown field 'host' for provider 'mega'");
}

#[test]
fn required_fields() {
    for body in [
        json!({"user": "a"}),
        json!({"user": "a", "pass": null}),
        json!({"user": "a", "pass": ""}),
        json!({"user": "a", "pass": "  "}),
    ] {
        let e = err("mega", body);
        assert_eq!(e.field, "pass");
        assert_eq!(e.message, "Missing required field 'pass'");
    }
    let e = err(
        "oracleobjectstorage",
        json!({"namespace": "n", "region": "r"}),
    );
    assert_eq!(e.message, "Missing required field 'provider'");
    let e = err("combine", json!({}));
    assert_eq!(e.message, "Missing required field 'upstreams'");
}

#[test]
fn defaults_and_null() {
    let c = ok(
        "s3",
        json!({"endpoint": "localhost:9000", "chunk_size": null}),
    );
    assert_eq!(c["chunk_size"], json!("5242880"));
    assert_eq!(c["force_path_style"], json!(true));
    assert_eq!(c["list_chunk"], json!(1000));
    assert_eq!(c["might_gzip"], Value::Null);
    assert_eq!(c["version_at"], json!("0001-01-01T00:00:00Z"));
    assert_eq!(c.len(), p("s3").fields.len() - 1);
    let c = ok("hasher", json!({"remote": "a:b"}));
    assert_eq!(c["hashes"], json!("md5,sha1"));
    assert_eq!(c["max_age"], json!(0));
    assert_eq!(c["auto_size"], json!("0"));
}

#[test]
fn bool_coercion() {
    let c = ok(
        "local",
        json!({"links": "TRUE", "copy_links": "false", "no_clone": true}),
    );
    assert_eq!(
        (&c["links"], &c["copy_links"], &c["no_clone"]),
        (&json!(true), &json!(false), &json!(true))
    );
    for bad in [json!(1), json!("yes"), json!(""), json!([])] {
        let e = err("local", json!({ "links": bad }));
        assert_eq!(
            e.message,
            "Invalid links: expected a boolean (true or false)"
        );
    }
}

#[test]
fn int_coercion() {
    let c = ok(
        "cache",
        json!({"remote": "a:", "workers": "8", "rps": -1, "read_retries": " 3 "}),
    );
    assert_eq!(
        (&c["workers"], &c["rps"], &c["read_retries"]),
        (&json!(8), &json!(-1), &json!(3))
    );
    for bad in [
        json!(1.5),
        json!(8.0),
        json!("8.0"),
        json!("eight"),
        json!(true),
        json!(18446744073709551615u64),
    ] {
        let e = err("cache", json!({"remote": "a:", "workers": bad}));
        assert_eq!(e.field, "workers");
        assert_eq!(e.message, "Invalid workers: expected an integer");
    }
}

#[test]
fn size_coercion() {
    let c = ok(
        "s3",
        json!({"endpoint": "e", "chunk_size": 16777216, "upload_cutoff": "1.5G", "copy_cutoff": "5MiB"}),
    );
    assert_eq!(c["chunk_size"], json!("16777216"));
    assert_eq!(c["upload_cutoff"], json!("1.5G"));
    assert_eq!(c["copy_cutoff"], json!("5MiB"));
    for bad in [
        json!("10X"),
        json!(-1),
        json!("off"),
        json!(""),
        json!(1.5),
        json!(true),
    ] {
        let e = err("s3", json!({"endpoint": "e", "chunk_size": bad}));
        assert_eq!(e.field, "chunk_size");
        assert!(
            e.message.starts_with("Invalid chunk_size: expected a size"),
            "{e}"
        );
    }
    // The default is always accepted, even where it does not parse.
    assert_eq!(
        ok("azureblob", json!({"upload_cutoff": ""}))["upload_cutoff"],
        json!("")
    );
    // `off` fields.
    for v in [json!("off"), json!("-1"), json!(-1), json!("OFF")] {
        let c = ok("drive", json!({ "v2_download_min_size": v.clone() }));
        let stored = c["v2_download_min_size"].as_str().unwrap().to_string();
        assert!(stored == "-1" || stored.eq_ignore_ascii_case("off"), "{v}");
    }
    assert_eq!(
        ok("drive", json!({"v2_download_min_size": "1G"}))["v2_download_min_size"],
        json!("1G")
    );
}

#[test]
fn duration_coercion() {
    let c = ok("union", json!({"upstreams": "a:", "cache_time": "1h"}));
    assert_eq!(c["cache_time"], json!(3600));
    let c = ok("union", json!({"upstreams": "a:", "cache_time": "90"}));
    assert_eq!(c["cache_time"], json!(90));
    let c = ok(
        "cache",
        json!({"remote": "a:", "info_age": "1.5h", "tmp_wait_time": 20}),
    );
    assert_eq!(
        (&c["info_age"], &c["tmp_wait_time"]),
        (&json!(5400), &json!(20))
    );
    for bad in [
        json!(-1),
        json!("off"),
        json!("soon"),
        json!(1.5),
        json!(true),
    ] {
        let e = err("union", json!({"upstreams": "a:", "cache_time": bad}));
        assert_eq!(e.field, "cache_time");
        assert!(
            e.message
                .starts_with("Invalid cache_time: expected whole seconds"),
            "{e}"
        );
    }
    let e = err("union", json!({"upstreams": "a:", "cache_time": "1500ms"}));
    assert_eq!(
        e.message,
        "Invalid cache_time: '1500ms' is not a whole number of seconds"
    );
    // hasher max_age: "off" (or -1) means forever, stored as -1.
    for v in [json!("off"), json!(-1), json!("-1")] {
        assert_eq!(
            ok("hasher", json!({"remote": "a:", "max_age": v}))["max_age"],
            json!(-1)
        );
    }
    assert_eq!(
        ok("hasher", json!({"remote": "a:", "max_age": "1d"}))["max_age"],
        json!(86400)
    );
    // The string-typed duration keeps its string form.
    let c = ok(
        "quatrix",
        json!({"host": "h", "api_key": "k", "effective_upload_time": "1m30s"}),
    );
    assert_eq!(c["effective_upload_time"], json!("1m30s"));
    assert_eq!(
        p("quatrix").field("effective_upload_time").unwrap().kind,
        FieldKind::Duration
    );
    assert!(err(
        "quatrix",
        json!({"host": "h", "api_key": "k", "effective_upload_time": "fast"})
    )
    .message
    .starts_with("Invalid effective_upload_time"));
}

#[test]
fn string_fields_take_strings_only() {
    for bad in [json!(1), json!(true), json!({}), json!(["a"])] {
        let e = err("s3", json!({ "endpoint": "e", "region": bad }));
        assert_eq!(e.message, "Invalid region: expected a string");
    }
    let e = err("s3", json!({"endpoint": 9000}));
    assert_eq!(e.message, "Invalid endpoint: expected a string");
    // Tristate switches are strings too.
    let e = err("s3", json!({"endpoint": "e", "might_gzip": false}));
    assert_eq!(e.message, "Invalid might_gzip: expected a string");
    assert_eq!(
        ok("s3", json!({"endpoint": "e", "might_gzip": "TRUE"}))["might_gzip"],
        json!("true")
    );
    let e = err("s3", json!({"endpoint": "e", "might_gzip": "maybe"}));
    assert_eq!(e.message, "Invalid might_gzip: must be one of true, false");
}

#[test]
fn allowed_values() {
    // Closed sets, canonical spelling.
    assert_eq!(
        ok("s3", json!({"endpoint": "e", "provider": "aws"}))["provider"],
        json!("AWS")
    );
    assert_eq!(
        ok("s3", json!({"endpoint": "e", "provider": "Minio"}))["provider"],
        json!("Minio")
    );
    let e = err("s3", json!({"endpoint": "e", "provider": "Nope"}));
    assert!(
        e.message
            .starts_with("Invalid provider: must be one of AWS, Alibaba,"),
        "{e}"
    );
    let e = err("azureblob", json!({"delete_snapshots": "all"}));
    assert_eq!(
        e.message,
        "Invalid delete_snapshots: must be one of \"\", include, only"
    );
    assert_eq!(
        ok("azureblob", json!({"delete_snapshots": ""}))["delete_snapshots"],
        json!("")
    );
    assert_eq!(
        ok("union", json!({"upstreams": "a:", "create_policy": "lfs"}))["create_policy"],
        json!("lfs")
    );
    assert!(
        err("union", json!({"upstreams": "a:", "create_policy": "best"}))
            .message
            .starts_with("Invalid create_policy")
    );
    // Open sets.
    for (slug, body) in [
        (
            "s3",
            json!({"endpoint": "e", "region": "eu-west-3", "storage_class": "STANDARD_IA"}),
        ),
        (
            "google-cloud-storage",
            json!({"location": "australia-southeast1"}),
        ),
        (
            "storj",
            json!({"satellite_address": "12abc@sat.example:7777"}),
        ),
        (
            "cache",
            json!({"remote": "a:", "chunk_size": "64M", "chunk_total_size": "100G", "info_age": "2h"}),
        ),
        (
            "mailru",
            json!({"user": "u", "pass": "p", "speedup_max_disk": "10G", "speedup_file_patterns": "*.iso"}),
        ),
        (
            "seafile",
            json!({"url": "https://seafile.example.org", "user": "u"}),
        ),
        ("qingstor", json!({"zone": "ap2a"})),
        ("swift", json!({"storage_policy": "gold"})),
    ] {
        ok(slug, body);
    }
    // The default is accepted even outside the set.
    assert_eq!(
        ok("local", json!({"time_type": "0"}))["time_type"],
        json!("0")
    );
    assert_eq!(
        ok("local", json!({"time_type": "ATIME"}))["time_type"],
        json!("atime")
    );
    // Integer sets.
    assert_eq!(
        ok("s3", json!({"endpoint": "e", "list_version": "2"}))["list_version"],
        json!(2)
    );
    let e = err("s3", json!({"endpoint": "e", "list_version": 5}));
    assert_eq!(e.message, "Invalid list_version: must be one of 0, 1, 2");
    let e = err("swift", json!({"auth_version": 4}));
    assert_eq!(e.message, "Invalid auth_version: must be one of 0, 1, 2, 3");
}

#[test]
fn list_values() {
    let c = ok(
        "drive",
        json!({"metadata_labels": "read, WRITE", "scope": "drive,drive.readonly"}),
    );
    assert_eq!(c["metadata_labels"], json!("read,write"));
    assert_eq!(c["scope"], json!("drive,drive.readonly"));
    assert_eq!(c["metadata_owner"], json!("1"));
    let e = err("drive", json!({"metadata_labels": "read,bogus"}));
    assert_eq!(e.field, "metadata_labels");
    assert_eq!(
        e.message,
        "Invalid metadata_labels: 'bogus' is not one of off, read, write, failok"
    );
    let e = err("drive", json!({"scope": "drive,"}));
    assert!(
        e.message.starts_with("Invalid scope: '' is not one of"),
        "{e}"
    );
    // hasher hashes: string or array; the spec's default is an array.
    let c = ok(
        "hasher",
        json!({"remote": "a:", "hashes": ["sha256", "md5"]}),
    );
    assert_eq!(c["hashes"], json!("sha256,md5"));
    assert_eq!(
        ok("hasher", json!({"remote": "a:", "hashes": ["md5", "sha1"]}))["hashes"],
        json!("md5,sha1")
    );
    let e = err("hasher", json!({"remote": "a:", "hashes": "md5,sha3"}));
    assert!(
        e.message.starts_with(
            "Unsupported hash type: sha3 (hashes must be a comma-separated list of md5, sha1,"
        ),
        "{e}"
    );
    assert_eq!(
        ok("hasher", json!({"remote": "a:", "hashes": "XXH3, blake3"}))["hashes"],
        json!("xxh3,blake3")
    );
    let e = err("hasher", json!({"remote": "a:", "hashes": [1]}));
    assert_eq!(
        e.message,
        "Invalid hashes: expected a comma-separated string"
    );
}

/// Size fields with a closed set compare byte counts.
#[test]
fn size_allowed_compares_bytes() {
    let prov: Provider = serde_json::from_value(json!({
        "slug": "t", "category": "advanced", "backend_type": "t", "response_type": "t",
        "summary": "", "rclone_unavailable": "none", "fields": [{
            "name": "chunk", "type": "string", "kind": "size", "required": false,
            "default": "5242880", "description": "", "allowed": ["1M", "5M", "10M"]
        }]
    }))
    .unwrap();
    prov.check_consistency().unwrap();
    let get = |v: Value| prov.validate_create(&json!({ "chunk": v }));
    assert_eq!(get(json!("1048576")).unwrap()["chunk"], json!("1048576"));
    assert_eq!(get(json!(10485760)).unwrap()["chunk"], json!("10485760"));
    assert_eq!(get(json!("5MiB")).unwrap()["chunk"], json!("5MiB"));
    assert_eq!(get(json!("5242880")).unwrap()["chunk"], json!("5242880"));
    let e = get(json!("2M")).unwrap_err();
    assert_eq!(e.message, "Invalid chunk: must be one of 1M, 5M, 10M");
}

#[test]
fn extension_fields() {
    for prov in catalog().providers() {
        let name = prov.field("name").unwrap();
        assert!(name.extension && !name.required && name.kind == FieldKind::String);
        assert_eq!(name.check, Some(Check::Name));
    }
    let c = ok("memory", json!({"name": "scratch-1"}));
    assert_eq!(c["name"], json!("scratch-1"));
    let c = ok("memory", json!({"name": null}));
    assert!(!c.contains_key("name"));
    for bad in ["Scratch", "", "a b", "x/y"] {
        let e = err("memory", json!({ "name": bad }));
        assert_eq!(e.field, "name");
        assert_eq!(
            e.message,
            "Invalid name: must be 1-64 characters of a-z, 0-9, '_' and '-'"
        );
    }
    let root = p("local").field("root").unwrap();
    assert!(root.extension && root.default == json!(""));
    assert!(p("memory").field("root").is_none());
    assert_eq!(ok("local", json!({}))["root"], json!(""));
    assert_eq!(
        ok("local", json!({"root": "/srv/data"}))["root"],
        json!("/srv/data")
    );
    assert_eq!(
        err("local", json!({"root": "srv"})).message,
        "Invalid root: must be an absolute path"
    );
}

#[test]
fn remotes_and_upstreams() {
    ok("alias", json!({"remote": "/local/path"}));
    ok("alias", json!({"remote": "myremote:"}));
    ok(
        "union",
        json!({"upstreams": "upstreama:test/dir \"upstreamb:with space\""}),
    );
    let e = err("union", json!({"upstreams": "a: b"}));
    assert!(e.message.starts_with("Invalid upstreams entry 'b'"), "{e}");
    let e = err(
        "combine",
        json!({"upstreams": "photos=gdrive:photos gdrive:videos"}),
    );
    assert!(
        e.message
            .starts_with("Invalid upstreams entry 'gdrive:videos'"),
        "{e}"
    );
    ok("chunker", json!({"remote": "r:", "name_format": "*.part#"}));
}

#[test]
fn credential_updates() {
    let mega = p("mega");
    assert_eq!(
        mega.validate_credential_update(&json!({"pass": "new"}))
            .unwrap(),
        vec![("pass".to_string(), Some("new".to_string()))]
    );
    let e = mega
        .validate_credential_update(&json!({"user": "bob"}))
        .unwrap_err();
    assert_eq!(e.field, "user");
    assert_eq!(
        e.message,
        "Invalid request: only credential fields are allowed (not 'user')"
    );
    let e = p("netstorage")
        .validate_credential_update(&json!({"host": "h", "secret": "s"}))
        .unwrap_err();
    assert!(e
        .message
        .starts_with("Invalid request: only credential fields are allowed"));
    assert_eq!(
        e.message,
        "Invalid request: only credential fields are allowed (not 'host')"
    );
    let e = mega
        .validate_credential_update(&json!({"bogus": "x"}))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Invalid request: only credential fields are allowed (not 'bogus')"
    );
    let e = mega.validate_credential_update(&json!({})).unwrap_err();
    assert_eq!(e.message, "Invalid request: no credential fields given");
    let e = mega.validate_credential_update(&json!("pass")).unwrap_err();
    assert_eq!(e.message, "request body must be a JSON object");
    for bad in [json!(1), json!(true), json!(["x"]), json!({"a": 1})] {
        let e = mega
            .validate_credential_update(&json!({ "pass": bad }))
            .unwrap_err();
        assert_eq!(e.message, "Invalid field 'pass': expected a string or null");
    }
    // A required credential cannot be removed.
    let e = mega
        .validate_credential_update(&json!({"pass": null}))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Invalid field 'pass': a required field cannot be removed"
    );
    // Optional ones reset to the default.
    let s3 = p("s3");
    let update = s3
        .validate_credential_update(
            &json!({"secret_access_key": "NEW", "session_token": null, "access_key_id": "AK2"}),
        )
        .unwrap();
    assert_eq!(update.len(), 3);
    assert!(update.contains(&("session_token".to_string(), None)));
    let config = ok(
        "s3",
        json!({"endpoint": "e", "access_key_id": "AK1", "secret_access_key": "OLD", "session_token": "TOK"}),
    );
    let updated = s3.apply_credentials(&config, &update);
    assert_eq!(updated["secret_access_key"], json!("NEW"));
    assert_eq!(updated["access_key_id"], json!("AK2"));
    assert_eq!(updated["session_token"], json!(""));
    assert_eq!(updated["endpoint"], json!("e"));
    assert_eq!(updated.len(), config.len());
    // Identity fields are never credentials, so they cannot be changed.
    let e = s3
        .validate_credential_update(&json!({"endpoint": "other"}))
        .unwrap_err();
    assert_eq!(
        e.message,
        "Invalid request: only credential fields are allowed (not 'endpoint')"
    );
}

#[test]
fn redact_and_scrub() {
    let s3 = p("s3");
    let config = ok(
        "s3",
        json!({"endpoint": "e", "access_key_id": "AKIA1", "secret_access_key": "wJalrXUt/SECRET", "session_token": "abc"}),
    );
    let r = s3.redact(&config);
    assert_eq!(r["secret_access_key"], json!("***"));
    assert_eq!(r["session_token"], json!("***"));
    assert_eq!(r["sse_customer_key"], json!(""));
    assert_eq!(r["access_key_id"], json!("AKIA1"));
    assert_eq!(r["endpoint"], json!("e"));
    assert_eq!(r.len(), config.len());
    let text = "auth failed for AKIA1 with key wJalrXUt/SECRET (token abc)";
    assert_eq!(
        s3.scrub(&config, text),
        "auth failed for AKIA1 with key *** (token abc)"
    );
    // Longest first, so a secret containing another one is fully hidden.
    let az = p("azureblob");
    let config = ok(
        "azureblob",
        json!({"account": "acct", "key": "KEYKEY", "sas_url": "https://x/?sig=KEYKEY-more"}),
    );
    assert_eq!(
        az.scrub(&config, "url https://x/?sig=KEYKEY-more and KEYKEY"),
        "url *** and ***"
    );
    let r = az.redact(&config);
    assert_eq!(
        (&r["key"], &r["sas_url"], &r["password"]),
        (&json!("***"), &json!("***"), &json!(""))
    );
}

#[test]
fn server_and_user() {
    let s3 = p("s3");
    let c = ok("s3", json!({"endpoint": "e", "provider": "aws"}));
    assert_eq!(s3.server(&c), "s3:aws");
    assert_eq!(s3.user(&c), "");
    let c = ok("s3", json!({"endpoint": "e"}));
    assert_eq!(s3.server(&c), "s3:generic");
    let mega = p("mega");
    let c = ok("mega", json!({"user": "alice@example.com", "pass": "pw"}));
    assert_eq!(
        (mega.server(&c), mega.user(&c)),
        ("mega:generic".to_string(), "alice@example.com".to_string())
    );
    let az = p("azureblob");
    let c = ok("azureblob", p("azureblob").example_request.clone());
    assert_eq!(az.user(&c), "mystorageaccount");
    let c = ok(
        "azureblob",
        json!({"account": "acct", "username": "bob@corp"}),
    );
    assert_eq!(az.user(&c), "bob@corp");
    let b2 = p("b2");
    let c = ok("b2", b2.example_request.clone());
    assert_eq!(
        (b2.server(&c), b2.user(&c)),
        ("b2:generic".to_string(), String::new())
    );
    let gcs = p("google-cloud-storage");
    let c = ok("google-cloud-storage", json!({}));
    assert_eq!(gcs.server(&c), "google cloud storage:generic");
    let ic = p("iclouddrive");
    let c = ok("iclouddrive", ic.example_request.clone());
    assert_eq!(ic.user(&c), "alice@icloud.com");
    let k = p("koofr");
    let c = ok("koofr", k.example_request.clone());
    assert_eq!(
        (k.server(&c), k.user(&c)),
        ("koofr:koofr".to_string(), "alice".to_string())
    );
    let o = p("oracleobjectstorage");
    let c = ok("oracleobjectstorage", o.example_request.clone());
    assert_eq!(o.server(&c), "oracleobjectstorage:user_principal_auth");
}

#[test]
fn catalog_rejects_inconsistent_data() {
    let bad = |field: Value| {
        let doc = json!({"providers": [{
            "slug": "t", "category": "advanced", "backend_type": "t", "response_type": "t",
            "summary": "", "rclone_unavailable": "none", "fields": [field]
        }]});
        Catalog::from_json(&doc.to_string()).unwrap_err()
    };
    let base = json!({"name": "f", "type": "string", "kind": "string", "required": false, "default": "", "description": ""});
    let with = |k: &str, v: Value| {
        let mut f = base.clone();
        f[k] = v;
        f
    };
    assert!(bad(with("secret", json!(true))).contains("credential"));
    let mut both = with("credential", json!(true));
    both["identity"] = json!(true);
    assert!(bad(both).contains("exclusive"));
    assert!(bad(with("list", json!(true))).contains("list"));
    assert!(bad(with("off", json!(true))).contains("off"));
    let dup = json!({"providers": [
        {"slug": "t", "category": "advanced", "backend_type": "t", "response_type": "t", "summary": "", "rclone_unavailable": "none", "fields": []},
        {"slug": "t", "category": "advanced", "backend_type": "t", "response_type": "t", "summary": "", "rclone_unavailable": "none", "fields": []}
    ]});
    assert!(Catalog::from_json(&dup.to_string())
        .unwrap_err()
        .contains("duplicate"));
}
