//! The rclone mapping against the snapshot of rclone's option table
//! (`storage/catalog/rclone-options.json`), and berth's providers beyond the
//! spec.

use super::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const SNAPSHOT_JSON: &str = include_str!("../../catalog/rclone-options.json");

/// `backends` of the snapshot: backend -> option -> {type, password, default}.
fn snapshot() -> Value {
    let doc: Value = serde_json::from_str(SNAPSHOT_JSON).expect("snapshot is JSON");
    doc["backends"].clone()
}

fn p(slug: &str) -> &'static Provider {
    catalog()
        .get(slug)
        .unwrap_or_else(|| panic!("no provider {slug}"))
}

fn config(slug: &str, body: Value) -> Config {
    p(slug)
        .validate_create(&body)
        .unwrap_or_else(|e| panic!("{slug} {body}: {e}"))
}

/// `(name, value)` of the options for `body`.
fn options(slug: &str, body: Value) -> Vec<(String, String)> {
    p(slug)
        .rclone_options(&config(slug, body))
        .into_iter()
        .map(|o| (o.name, o.value))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn mapping(slug: &str, field: &str) -> &'static RcloneMapping {
    match &p(slug).field(field).unwrap().rclone {
        Some(RcloneField::Option(m)) => m,
        other => panic!("{slug}.{field}: {other:?}"),
    }
}

/// Whether rclone parses `value` as an option of type `rtype` (the forms
/// the catalog writes; free-form types accept anything).
fn parses_as(rtype: &str, value: &str) -> bool {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rtype {
        "bool" => value == "true" || value == "false",
        "int" => value
            .strip_prefix('-')
            .unwrap_or(value)
            .parse::<u64>()
            .is_ok(),
        "Tristate" => value == "true" || value == "false",
        "SizeSuffix" => value == "off" || value.strip_suffix('B').is_some_and(number),
        "Duration" => {
            value == "off"
                || ["ns", "ms", "s"].iter().any(|unit| {
                    value
                        .strip_suffix(unit)
                        .is_some_and(|n| number(n) && !n.ends_with('m'))
                })
        }
        choices if choices.contains('|') => choices.split('|').any(|c| c == value),
        _ => true,
    }
}

#[test]
fn rclone_types_exist_in_the_snapshot() {
    let snap = snapshot();
    let mut without = Vec::new();
    for prov in catalog().providers() {
        match (prov.rclone_type(), prov.rclone_unavailable()) {
            (Some(t), None) => assert!(snap.get(t).is_some(), "{}: rclone has no {t}", prov.slug),
            (None, Some(why)) => {
                assert!(!why.is_empty());
                without.push(prov.slug.as_str());
            }
            other => panic!("{}: {other:?}", prov.slug),
        }
    }
    assert_eq!(without, ["uptobox"]);
    assert!(snap.get("uptobox").is_none());
    assert_eq!(
        p("uptobox").rclone_unavailable(),
        Some("uptobox closed in 2023 and rclone removed its backend")
    );
    assert!(p("uptobox").fields.iter().all(|f| f.rclone.is_none()));
    assert!(p("uptobox")
        .rclone_options(&config("uptobox", p("uptobox").example_request.clone()))
        .is_empty());
    for (slug, rclone) in [
        ("google-cloud-storage", "google cloud storage"),
        ("google-photos", "google photos"),
        ("fichier", "fichier"),
        ("s3", "s3"),
        ("tardigrade", "storj"),
        ("ssh", "sftp"),
        ("sftp", "sftp"),
        ("local", "local"),
    ] {
        assert_eq!(p(slug).rclone_type(), Some(rclone), "{slug}");
    }
}

/// Every mapped option exists in its backend's table, is obscured exactly
/// when rclone says `IsPassword`, and is written in a form its rclone type
/// parses.
#[test]
fn mapped_options_match_the_snapshot() {
    let snap = snapshot();
    let mut not_options = BTreeSet::new();
    let mut count = 0;
    for prov in catalog().providers() {
        let Some(backend) = prov.rclone_type() else {
            continue;
        };
        for f in &prov.fields {
            let at = format!("{}.{}", prov.slug, f.name);
            let m = match f.rclone.as_ref().unwrap() {
                RcloneField::Option(m) => m,
                RcloneField::NotAnOption(why) => {
                    assert!(!why.is_empty(), "{at}");
                    not_options.insert((prov.slug.as_str(), f.name.as_str()));
                    continue;
                }
            };
            let option = &snap[backend][&m.name];
            assert!(
                option.is_object(),
                "{at}: rclone {backend} has no {}",
                m.name
            );
            assert_eq!(Some(m.obscure), option["password"].as_bool(), "{at}");
            let rtype = option["type"].as_str().unwrap();
            let fits = match (m.form, f.kind) {
                (RcloneForm::Size, _) => rtype == "SizeSuffix",
                (RcloneForm::Duration, _) => rtype == "Duration" || rtype == "string",
                (RcloneForm::Plain, FieldKind::Bool) => rtype == "bool",
                (RcloneForm::Plain, FieldKind::Int | FieldKind::Duration) => rtype == "int",
                (RcloneForm::Plain, FieldKind::String | FieldKind::Size) => {
                    !matches!(rtype, "bool" | "int" | "Duration" | "SizeSuffix")
                }
            };
            assert!(fits, "{at}: form {:?} for rclone type {rtype}", m.form);
            count += 1;
        }
    }
    assert!(count > 800, "{count} mapped fields");
    // Only berth's extension fields are not rclone options.
    for (slug, name) in &not_options {
        assert!(
            matches!(*name, "name" | "engine") || (*slug, *name) == ("local", "root"),
            "{slug}.{name}"
        );
    }
    assert!(not_options.contains(&("local", "root")));
    // `name` everywhere, `engine` wherever rclone can serve, local `root`.
    let served = catalog()
        .providers()
        .iter()
        .filter(|p| p.rclone_type().is_some())
        .count();
    assert_eq!(not_options.len(), catalog().providers().len() + served);
}

/// The example request of every provider becomes options that rclone's
/// table has, with values its types parse; every given field that differs
/// from its default is among them.
#[test]
fn example_requests_become_rclone_options() {
    let snap = snapshot();
    for prov in catalog().providers() {
        let Some(backend) = prov.rclone_type() else {
            continue;
        };
        let config = config(&prov.slug, prov.example_request.clone());
        let opts = prov.rclone_options(&config);
        for o in &opts {
            let option = &snap[backend][&o.name];
            let rtype = option["type"].as_str().unwrap_or_else(|| {
                panic!("{}: rclone {backend} has no option {}", prov.slug, o.name)
            });
            assert!(
                parses_as(rtype, &o.value),
                "{}.{}: {:?} is no rclone {rtype}",
                prov.slug,
                o.name,
                o.value
            );
            assert_eq!(Some(o.obscure), option["password"].as_bool());
        }
        let names: BTreeSet<&str> = opts.iter().map(|o| o.name.as_str()).collect();
        for (k, v) in prov.example_request.as_object().unwrap() {
            let f = prov.field(k).unwrap();
            if config[k] != f.default_value() && !v.is_null() && v != "" {
                assert!(names.contains(k.as_str()), "{}.{k} missing", prov.slug);
            }
        }
    }
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

#[test]
fn exact_options() {
    assert_eq!(
        sorted(options("s3", p("s3").example_request.clone())),
        sorted(pairs(&[
            ("provider", "AWS"),
            ("access_key_id", "AKIAIOSFODNN7EXAMPLE"),
            (
                "secret_access_key",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            ),
            ("region", "us-east-1"),
            ("endpoint", "s3.us-east-1.amazonaws.com"),
        ]))
    );
    assert_eq!(
        sorted(options(
            "google-cloud-storage",
            p("google-cloud-storage").example_request.clone()
        )),
        sorted(pairs(&[
            ("location", "us-central1"),
            ("project_number", "123456789012"),
            ("service_account_file", "/etc/hoody/gcs-sa.json"),
        ]))
    );
    // Defaults are left out, so rclone's apply.
    assert!(options("memory", json!({})).is_empty());
    assert_eq!(
        options("s3", json!({"endpoint": "e"})),
        pairs(&[("endpoint", "e")])
    );
    assert!(options("local", json!({"time_type": "0"})).is_empty());
    assert_eq!(
        options("local", json!({"time_type": "ctime", "root": "/srv"})),
        pairs(&[("time_type", "ctime")])
    );
    // A bare byte count would be KiB to rclone: sizes are bytes with a B.
    assert_eq!(
        sorted(options("cache", p("cache").example_request.clone())),
        sorted(pairs(&[
            ("remote", "s3-prod:media"),
            ("description", "Cached media library"),
            ("chunk_size", "10485760B"),
            ("chunk_total_size", "10737418240B"),
            ("workers", "8"),
            ("writes", "true"),
        ]))
    );
}

#[test]
fn value_forms() {
    // Durations: seconds with a unit; off.
    assert_eq!(
        sorted(options("hasher", p("hasher").example_request.clone())),
        sorted(pairs(&[
            ("remote", "s3-prod:data"),
            ("description", "Hashed data archive"),
            ("hashes", "md5,sha1,blake3"),
            ("max_age", "86400s"),
        ]))
    );
    let hasher = options("hasher", json!({"remote": "r:", "max_age": "off"}));
    assert!(
        hasher.contains(&("max_age".into(), "off".into())),
        "{hasher:?}"
    );
    let quatrix = |v: Value| {
        options(
            "quatrix",
            json!({"host": "h", "api_key": "k", "effective_upload_time": v}),
        )
        .into_iter()
        .find(|(k, _)| k == "effective_upload_time")
        .map(|(_, v)| v)
    };
    assert_eq!(quatrix(json!("1d")), Some("86400s".into()));
    assert_eq!(quatrix(json!("1.5s")), Some("1500ms".into()));
    assert_eq!(quatrix(json!(90)), Some("90s".into()));
    assert_eq!(quatrix(json!("4s")), None, "the default");
    // union cache_time is a plain number of seconds for rclone.
    assert_eq!(
        sorted(options(
            "union",
            json!({"upstreams": "a: b:", "cache_time": "5m"})
        )),
        sorted(pairs(&[("upstreams", "a: b:"), ("cache_time", "300")]))
    );
    // Sizes: off, units, bytes.
    assert_eq!(
        sorted(options(
            "drive",
            json!({"v2_download_min_size": "off", "chunk_size": "16M"})
        )),
        sorted(pairs(&[
            ("chunk_size", "16777216B"),
            ("v2_download_min_size", "off")
        ]))
    );
    // Ints, bools, tristates as stored.
    assert_eq!(
        sorted(options(
            "s3",
            json!({"endpoint": "e", "list_version": "2", "force_path_style": false, "might_gzip": "TRUE"}),
        )),
        sorted(pairs(&[
            ("endpoint", "e"),
            ("list_version", "2"),
            ("force_path_style", "false"),
            ("might_gzip", "true"),
        ]))
    );
}

/// Where rclone's default differs, the catalog default is sent (or left to
/// rclone, per the generator's RCLONE_DEFAULTS).
#[test]
fn defaults_rclone_does_not_share() {
    let chunker = options("chunker", json!({"remote": "r:"}));
    assert!(
        chunker.contains(&("name_format".into(), "*.hoody-vfs_chunk.###".into())),
        "{chunker:?}"
    );
    let hasher = options("hasher", json!({"remote": "r:"}));
    assert!(
        hasher.contains(&("max_age".into(), "0s".into())),
        "{hasher:?}"
    );
    assert!(mapping("pikpak", "upload_concurrency").send_default);
    assert_eq!(
        options("ftp", json!({"host": "ftp.example.org"})),
        pairs(&[("host", "ftp.example.org"), ("user", "anonymous")])
    );
    // Left to rclone: placeholders and values rclone cannot parse.
    for (slug, field) in [
        ("cache", "chunk_path"),
        ("cache", "db_path"),
        ("local", "time_type"),
        ("drive", "pacer_min_sleep"),
        ("protondrive", "app_version"),
    ] {
        assert!(!mapping(slug, field).send_default, "{slug}.{field}");
    }
    let cache = options("cache", json!({"remote": "r:"}));
    assert_eq!(cache, pairs(&[("remote", "r:")]));
    // An empty value means rclone's default, even where berth's is not empty.
    assert_eq!(
        options("smb", json!({"host": "h", "domain": ""})),
        pairs(&[("host", "h")])
    );
}

#[test]
fn value_renames() {
    let provider = |v: &str| {
        options("s3", json!({"endpoint": "e", "provider": v}))
            .into_iter()
            .find(|(k, _)| k == "provider")
            .map(|(_, v)| v)
    };
    assert_eq!(provider("Hoody-VFS").as_deref(), Some("Rclone"));
    assert_eq!(provider("stackpath").as_deref(), Some("Other"));
    assert_eq!(provider("aws").as_deref(), Some("AWS"));
    assert_eq!(provider("Minio").as_deref(), Some("Minio"));
    // `server` still shows the catalog's value.
    let c = config("s3", json!({"endpoint": "e", "provider": "Hoody-VFS"}));
    assert_eq!(p("s3").server(&c), "s3:hoody-vfs");
}

#[test]
fn secrets_and_obscured_options() {
    let mega = p("mega").rclone_options(&config("mega", p("mega").example_request.clone()));
    let pass = mega.iter().find(|o| o.name == "pass").unwrap();
    assert_eq!(pass.value, "mega-password");
    assert!(pass.obscure && pass.secret);
    let user = mega.iter().find(|o| o.name == "user").unwrap();
    assert!(!user.obscure && !user.secret);
    let debug = format!("{mega:?}");
    assert!(!debug.contains("mega-password"), "{debug}");
    assert!(debug.contains(r#"value: "***""#), "{debug}");
    assert!(debug.contains("alice@example.com"), "{debug}");
    // Secret but not obscured: rclone takes the S3 key in clear.
    let s3 = p("s3").rclone_options(&config("s3", p("s3").example_request.clone()));
    let key = s3.iter().find(|o| o.name == "secret_access_key").unwrap();
    assert!(key.secret && !key.obscure);
    assert!(!format!("{s3:?}").contains("EXAMPLEKEY"));
    // Every obscured option is a secret of the catalog.
    for prov in catalog().providers() {
        for f in &prov.fields {
            if let Some(RcloneField::Option(m)) = &f.rclone {
                assert!(!m.obscure || f.secret, "{}.{}", prov.slug, f.name);
            }
        }
    }
}

/// The spec's 54 providers come first, berth's servers after them.
#[test]
fn providers_beyond_the_spec() {
    let extra: Vec<&str> = catalog()
        .providers()
        .iter()
        .filter(|p| p.extension)
        .map(|p| p.slug.as_str())
        .collect();
    assert_eq!(extra, ["sftp", "ssh", "ftp", "smb", "webdav"]);
    assert!(catalog().providers()[..54].iter().all(|p| !p.extension));
    let labels = [
        ("sftp", "SFTP"),
        ("ssh", "SSH"),
        ("ftp", "FTP"),
        ("smb", "SMB"),
        ("webdav", "WebDAV"),
    ];
    for (slug, label) in labels {
        let prov = p(slug);
        assert_eq!(prov.category, Category::Server, "{slug}");
        assert_eq!(prov.response_type, "backend");
        assert_eq!(
            prov.success_message.as_deref(),
            Some(format!("{label} backend connected successfully").as_str())
        );
        assert!(!prov.summary.is_empty() && prov.summary.contains("Required:"));
        assert!(prov.example_errors.is_empty());
        for ext in ["name", "engine"] {
            let field = prov.field(ext).unwrap();
            assert!(field.extension, "{slug}: the `{ext}` extension field too");
        }
        for f in prov
            .fields
            .iter()
            .filter(|f| !matches!(f.name.as_str(), "name" | "engine"))
        {
            assert!(!f.extension, "{slug}.{}", f.name);
        }
        // The one required field, missing.
        let required: Vec<&str> = prov
            .fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.as_str())
            .collect();
        let first = required[0];
        let e = prov.validate_create(&json!({})).unwrap_err();
        assert_eq!(e.message, format!("Missing required field '{first}'"));
    }
    let required = |slug: &str| -> Vec<&str> {
        p(slug)
            .fields
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.as_str())
            .collect()
    };
    assert_eq!(required("sftp"), ["host", "user"]);
    assert_eq!(required("ftp"), ["host"]);
    assert_eq!(required("smb"), ["host"]);
    assert_eq!(required("webdav"), ["url"]);
}

#[test]
fn server_flags() {
    for slug in ["sftp", "ssh", "ftp", "smb", "webdav"] {
        let prov = p(slug);
        for f in &prov.fields {
            let at = format!("{slug}.{}", f.name);
            match f.name.as_str() {
                "host" | "user" | "url" | "domain" => assert!(f.identity, "{at}"),
                "pass" | "key_pem" | "key_file_pass" | "bearer_token" | "headers"
                | "socks_proxy" | "http_proxy" => assert!(f.secret && f.credential, "{at}"),
                "key_file" | "pubkey" | "pubkey_file" => {
                    assert!(f.credential && !f.secret, "{at}")
                }
                "port" => assert_eq!(f.kind, FieldKind::Int, "{at}"),
                _ => assert!(!f.secret && !f.credential && !f.identity, "{at}"),
            }
            if let Some(RcloneField::Option(m)) = &f.rclone {
                assert_eq!(m.name, f.name, "{at}: rclone's own names");
                let obscured = matches!(f.name.as_str(), "pass" | "key_file_pass");
                assert_eq!(m.obscure, obscured, "{at}");
            }
        }
    }
    assert_eq!(p("sftp").field("port").unwrap().default, json!(22));
    assert_eq!(p("ftp").field("port").unwrap().default, json!(21));
    assert_eq!(p("smb").field("port").unwrap().default, json!(445));
    assert_eq!(
        p("smb").field("domain").unwrap().default,
        json!("WORKGROUP")
    );
    assert_eq!(
        p("sftp").field("idle_timeout").unwrap().kind,
        FieldKind::Duration
    );
    assert_eq!(p("sftp").field("chunk_size").unwrap().kind, FieldKind::Size);
    assert!(p("sftp").field("shell_type").unwrap().allowed.is_some());
    assert!(p("webdav").field("vendor").unwrap().allowed.is_some());
    // Options that would run commands or use the berth host's credentials
    // are not offered.
    for (slug, absent) in [
        ("sftp", "ssh"),
        ("sftp", "server_command"),
        ("sftp", "key_use_agent"),
        ("webdav", "bearer_token_command"),
        ("smb", "use_kerberos"),
    ] {
        assert!(p(slug).field(absent).is_none(), "{slug}.{absent}");
    }
    let e = p("webdav")
        .validate_create(&json!({"url": "https://x", "vendor": "dropbox"}))
        .unwrap_err();
    assert!(
        e.message.starts_with("Invalid vendor: must be one of"),
        "{e}"
    );
    // Identity fields cannot be changed; passwords can.
    let sftp = p("sftp");
    assert!(sftp
        .validate_credential_update(&json!({"host": "other"}))
        .is_err());
    assert!(sftp
        .validate_credential_update(&json!({"pass": "new", "key_file": "/k"}))
        .is_ok());
}

/// `ssh` is `sftp` under the spec's backend-list name: same fields, and
/// `POST /api/v1/backends/ssh` gives `backend_type: "ssh"`, `ssh:generic`.
#[test]
fn ssh_is_sftp_under_its_own_name() {
    let (ssh, sftp) = (p("ssh"), p("sftp"));
    assert_eq!(ssh.backend_type, "ssh");
    assert_eq!(sftp.backend_type, "sftp");
    assert_eq!(
        (ssh.rclone_type(), sftp.rclone_type()),
        (Some("sftp"), Some("sftp"))
    );
    assert_eq!(ssh.fields, sftp.fields);
    assert_eq!(ssh.example_request, sftp.example_request);
    assert_ne!(ssh.summary, sftp.summary);
    let c = config("ssh", ssh.example_request.clone());
    assert_eq!(ssh.server(&c), "ssh:generic");
    assert_eq!(ssh.user(&c), "deploy");
    assert_eq!(
        ssh.rclone_options(&c)
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str(), o.obscure))
            .collect::<Vec<_>>(),
        [
            ("host", "nas.example.org", false),
            ("user", "deploy", false),
            ("port", "2222", false),
            ("pass", "correct-horse-battery-staple", true),
        ]
    );
    let redacted = ssh.redact(&c);
    assert_eq!(redacted["pass"], json!("***"));
}

#[test]
fn catalog_rejects_inconsistent_rclone_data() {
    let doc = |provider: Value, field: Value| {
        let mut prov = json!({
            "slug": "t", "category": "server", "backend_type": "t", "response_type": "t",
            "summary": "", "fields": [field]
        });
        prov.as_object_mut()
            .unwrap()
            .extend(provider.as_object().unwrap().clone());
        Catalog::from_json(&json!({ "providers": [prov] }).to_string())
    };
    let field = |rclone: Value, extra: Value| {
        let mut f = json!({"name": "f", "type": "string", "kind": "string",
            "required": false, "default": "", "description": "", "rclone": rclone});
        f.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        f
    };
    let option = |form: &str, obscure: bool| json!({"option": {"name": "f", "obscure": obscure, "form": form}});
    let typed = json!({"rclone_type": "t"});
    assert!(doc(typed.clone(), field(option("plain", false), json!({}))).is_ok());
    let err = |provider: Value, field: Value| doc(provider, field).unwrap_err();
    assert!(err(json!({}), field(option("plain", false), json!({}))).contains("exactly one"));
    assert!(err(
        json!({"rclone_type": "t", "rclone_unavailable": "gone"}),
        field(option("plain", false), json!({}))
    )
    .contains("exactly one"));
    assert!(err(
        json!({"rclone_unavailable": "gone"}),
        field(option("plain", false), json!({}))
    )
    .contains("without an rclone_type"));
    assert!(err(typed.clone(), field(Value::Null, json!({}))).contains("no rclone mapping"));
    assert!(err(typed.clone(), field(option("size", false), json!({}))).contains("form"));
    assert!(err(typed.clone(), field(option("plain", true), json!({}))).contains("secret"));
    let renamed = json!({"option": {"name": "f", "obscure": false, "form": "plain",
        "values": {"a": "b"}}});
    assert!(doc(typed.clone(), field(renamed, json!({}))).is_ok());
    let twice = json!({
        "slug": "t", "category": "server", "backend_type": "t", "response_type": "t",
        "summary": "", "rclone_type": "t", "fields": [
            field(option("plain", false), json!({})),
            field(option("plain", false), json!({"name": "g"})),
        ]
    });
    let e = Catalog::from_json(&json!({ "providers": [twice] }).to_string()).unwrap_err();
    assert!(e.contains("set twice"), "{e}");
}

/// The snapshot against the installed rclone: with the snapshot's version,
/// the same backends and options (type, IsPassword); with another version,
/// at least every option the catalog maps. Skipped without rclone unless
/// `BERTH_REQUIRE_RCLONE=1`.
#[test]
fn snapshot_matches_installed_rclone() {
    use std::process::Command;
    let run = |args: &[&str]| -> Result<String, String> {
        let out = Command::new("rclone")
            .args(args)
            .output()
            .map_err(|e| format!("rclone is not installed ({e})"))?;
        if !out.status.success() {
            return Err(format!(
                "rclone {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    };
    let live = run(&["config", "providers"]);
    let probe = live.as_ref().map(drop).map_err(Clone::clone);
    if !crate::testkit::available(
        "BERTH_REQUIRE_RCLONE",
        "snapshot_matches_installed_rclone",
        probe,
    ) {
        return;
    }
    let live: Vec<Value> = serde_json::from_str(&live.unwrap()).unwrap();
    let live: BTreeMap<&str, BTreeMap<&str, (&str, bool)>> = live
        .iter()
        .map(|b| {
            let options = b["Options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    let name = o["Name"].as_str().unwrap();
                    (
                        name,
                        (o["Type"].as_str().unwrap(), o["IsPassword"] == json!(true)),
                    )
                })
                .collect();
            (b["Name"].as_str().unwrap(), options)
        })
        .collect();
    let snap = snapshot();
    let ours: BTreeMap<&str, BTreeMap<&str, (&str, bool)>> = snap
        .as_object()
        .unwrap()
        .iter()
        .map(|(b, options)| {
            let options = options
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, o)| {
                    let entry = (o["type"].as_str().unwrap(), o["password"] == json!(true));
                    (name.as_str(), entry)
                })
                .collect();
            (b.as_str(), options)
        })
        .collect();
    let version = run(&["version"]).unwrap();
    let version = version.split_whitespace().nth(1).unwrap_or_default();
    let doc: Value = serde_json::from_str(SNAPSHOT_JSON).unwrap();
    if doc["rclone_version"] == json!(version) {
        assert_eq!(
            ours, live,
            "the snapshot differs from rclone {version}: run scripts/gen_catalog.py --rclone-snapshot"
        );
        return;
    }
    eprintln!(
        "rclone {version} is installed, the snapshot is of {}: checking the mapped options only",
        doc["rclone_version"]
    );
    for prov in catalog().providers() {
        let Some(backend) = prov.rclone_type() else {
            continue;
        };
        for f in &prov.fields {
            if let Some(RcloneField::Option(m)) = &f.rclone {
                let want = ours[backend][m.name.as_str()];
                let got = live.get(backend).and_then(|o| o.get(m.name.as_str()));
                assert_eq!(
                    got,
                    Some(&want),
                    "{}.{}: rclone {version}",
                    prov.slug,
                    f.name
                );
            }
        }
    }
}
