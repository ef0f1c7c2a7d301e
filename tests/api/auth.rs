//! Tokens, scopes and org isolation.

use crate::common::{assert_error, Api, Server, JWT_SECRET};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::json;

fn unsigned(claims: &str, alg: &str) -> String {
    let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

#[test]
fn health_needs_no_token_but_everything_else_does() {
    let server = Server::start();
    let (status, body) = server.call("GET", "/api/v1/health", None, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));

    let future = 4_102_444_800u64; // 2100-01-01
    let bad_tokens = [
        None,
        Some("not-a-jwt".to_string()),
        Some(unsigned(
            &format!(r#"{{"org":"a","scope":"read","exp":{future}}}"#),
            "none",
        )),
        Some(berth::auth::JwtKey::new(b"wrong-secret").mint(
            "a",
            "read write",
            std::time::Duration::from_secs(60),
        )),
        Some(berth::auth::JwtKey::new(JWT_SECRET.as_bytes()).mint(
            "a",
            "read write",
            std::time::Duration::ZERO,
        )),
    ];
    for token in &bad_tokens {
        for path in ["/api/v1/backends", "/api/v1/health/actors"] {
            let result = server.call("GET", path, token.as_deref(), None);
            assert_eq!(
                result.0,
                StatusCode::UNAUTHORIZED,
                "{path} with {token:?}: {}",
                result.1
            );
            assert_eq!(result.1["success"], json!(false));
        }
    }
    let result = server.call("POST", "/api/v1/backends/memory", None, Some(&json!({})));
    assert_eq!(result.0, StatusCode::UNAUTHORIZED);
}

#[test]
fn scopes_gate_reads_and_writes() {
    let server = Server::start();
    let reader = server.token("acme", "read");
    let writer = server.token("acme", "write");
    assert_eq!(
        server
            .call("GET", "/api/v1/backends", Some(&reader), None)
            .0,
        StatusCode::OK
    );
    assert_error(
        &server.call(
            "POST",
            "/api/v1/backends/memory",
            Some(&reader),
            Some(&json!({})),
        ),
        StatusCode::FORBIDDEN,
        "write",
    );
    assert_error(
        &server.call("GET", "/api/v1/backends", Some(&writer), None),
        StatusCode::FORBIDDEN,
        "read",
    );
    let (status, _) = server.call(
        "POST",
        "/api/v1/backends/memory",
        Some(&writer),
        Some(&json!({})),
    );
    assert_eq!(status, StatusCode::CREATED);
}

#[test]
fn other_orgs_backends_do_not_exist() {
    let server = Server::start();
    let acme = Api::new(&server, "acme");
    let globex = Api::new(&server, "globex");
    let id = acme.connect("memory", &json!({"name": "scratch"}));
    let path = format!("/api/v1/backends/{id}");
    for result in [
        globex.get(&path),
        globex.get(&format!("{path}/test")),
        globex.put(&path, &json!({"pass": "x"})),
        globex.delete(&path),
    ] {
        assert_error(&result, StatusCode::NOT_FOUND, "Backend not found");
    }
    assert_eq!(globex.get("/api/v1/backends").1["count"], json!(0));
    let (_, actors) = globex.get("/api/v1/health/actors");
    assert!(
        !actors.to_string().contains(&id),
        "globex sees acme's actor: {actors}"
    );
    // Names are unique per org only.
    globex.connect("memory", &json!({"name": "scratch"}));
    assert_eq!(acme.get(&path).0, StatusCode::OK);
}

#[test]
fn token_command_mints_tokens_the_server_accepts() {
    let server = Server::start();
    let output = server.cli(&["token", "--org", "acme", "--scope", "read", "--ttl", "10m"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert_eq!(
        server.call("GET", "/api/v1/backends", Some(&token), None).0,
        StatusCode::OK
    );
    assert_eq!(
        server
            .call(
                "POST",
                "/api/v1/backends/memory",
                Some(&token),
                Some(&json!({}))
            )
            .0,
        StatusCode::FORBIDDEN
    );
    let bad = server.cli(&["token", "--org", "acme", "--ttl", "soon"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--ttl"));
}
