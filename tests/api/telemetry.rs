//! Spans go out over OTLP/HTTP when `BERTH_OTLP_ENDPOINT` is set, and one
//! trace carries route -> registry -> backend actor -> storage.

use crate::common::{Api, Options, Server};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A minimal OTLP/HTTP receiver: records every request body it is sent.
fn receiver() -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock().unwrap().extend_from_slice(&body);
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (format!("http://{addr}"), received)
}

#[test]
fn spans_are_exported_over_otlp() {
    let (endpoint, received) = receiver();
    let mut server = Server::start_with(Options {
        env: vec![("BERTH_OTLP_ENDPOINT".into(), endpoint)],
        ..Options::default()
    });
    let api = Api::new(&server, "acme");
    let id = api.connect("memory", &json!({}));
    api.get(&format!("/api/v1/backends/{id}/test"));
    server.stop(); // flushes the batch exporter
    let bytes = received.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&bytes);
    for span in [
        "http.request",
        "registry.create_backend",
        "backend.probe",
        "storage.probe",
        "registry.test_backend",
    ] {
        assert!(
            text.contains(span),
            "span {span} was not exported ({} bytes received)",
            bytes.len()
        );
    }
    assert!(text.contains("berth"), "service name missing");
}
