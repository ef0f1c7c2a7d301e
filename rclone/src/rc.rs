//! rclone's remote control over its unix socket: a minimal HTTP client (one
//! POST per connection) and the two answers berth reads.
//!
//! Requests are HTTP/1.0 so that Go's server never answers in chunked
//! encoding: the body simply runs until the connection closes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::secret::Scrubber;
use crate::RcloneError;

/// Bound of one rc call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound of one answer (a long upload queue is a few hundred bytes per file).
const MAX_ANSWER: u64 = 16 << 20;

/// A client of one rclone's rc socket.
#[derive(Debug)]
pub(crate) struct RcClient {
    socket: PathBuf,
    scrubber: Scrubber,
}

impl RcClient {
    pub(crate) fn new(socket: PathBuf, scrubber: Scrubber) -> Self {
        RcClient { socket, scrubber }
    }

    /// POSTs `params` to `command` and returns the JSON answer of a 200.
    pub(crate) async fn call(
        &self,
        command: &str,
        params: serde_json::Value,
    ) -> Result<Vec<u8>, RcloneError> {
        let fail = |message: String| RcloneError::Rc {
            command: command.to_owned(),
            message: self.scrubber.scrub(&message),
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.exchange(command, &params))
            .await
            .map_err(|_| fail(format!("no answer within {CALL_TIMEOUT:?}")))?
            .map_err(|e| fail(e.to_string()))?;
        let (status, body) = parse_response(&answer).map_err(|e| fail(e.to_owned()))?;
        if status != 200 {
            return Err(fail(error_message(status, body)));
        }
        Ok(body.to_vec())
    }

    async fn exchange(
        &self,
        command: &str,
        params: &serde_json::Value,
    ) -> std::io::Result<Vec<u8>> {
        let body = params.to_string();
        let request = format!(
            "POST /{command} HTTP/1.0\r\nHost: rclone\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut stream = UnixStream::connect(&self.socket).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        Ok(answer)
    }
}

/// The status code and body of a raw HTTP response.
fn parse_response(raw: &[u8]) -> Result<(u16, &[u8]), &'static str> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("truncated HTTP answer")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "HTTP header is not UTF-8")?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("malformed HTTP status line")?;
    Ok((status, &raw[split + 4..]))
}

/// rclone's `{"error": "..."}`, or the status.
fn error_message(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct RcFailure {
        error: String,
    }
    match serde_json::from_slice::<RcFailure>(body) {
        Ok(failure) => failure.error,
        Err(_) => format!("HTTP {status}"),
    }
}

/// Uploads in progress plus queued, from a `vfs/stats` answer (0 when the
/// VFS has no disk cache, as with `--vfs-cache-mode off`).
pub(crate) fn pending_uploads(stats: &[u8]) -> serde_json::Result<u64> {
    #[derive(Deserialize)]
    struct Stats {
        #[serde(rename = "diskCache")]
        disk_cache: Option<DiskCache>,
    }
    #[derive(Deserialize)]
    struct DiskCache {
        #[serde(rename = "uploadsInProgress")]
        in_progress: u64,
        #[serde(rename = "uploadsQueued")]
        queued: u64,
    }
    let stats: Stats = serde_json::from_slice(stats)?;
    Ok(stats.disk_cache.map_or(0, |c| c.in_progress + c.queued))
}

/// The ids of the items of a `vfs/queue` answer that wait for their
/// write-back delay (not uploading yet, eligible later).
pub(crate) fn waiting_ids(queue: &[u8]) -> serde_json::Result<Vec<u64>> {
    #[derive(Deserialize)]
    struct Queue {
        #[serde(default)]
        queue: Vec<Item>,
    }
    #[derive(Deserialize)]
    struct Item {
        id: u64,
        expiry: f64,
        uploading: bool,
    }
    let queue: Queue = serde_json::from_slice(queue)?;
    Ok(queue
        .queue
        .into_iter()
        .filter(|item| !item.uploading && item.expiry > 0.0)
        .map(|item| item.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers of rclone v1.75.2 (trimmed `opt`).
    const STATS: &str = r#"{
	"diskCache": {
		"bytesUsed": 0, "erroredFiles": 0, "files": 2, "hashType": 1, "outOfSpace": false,
		"path": "/tmp/rx/cache/vfs/b_x/tmp/rx/back",
		"pathMeta": "/tmp/rx/cache/vfsMeta/b_x/tmp/rx/back",
		"uploadsInProgress": 1,
		"uploadsQueued": 2
	},
	"fs": "b_x:/tmp/rx/back",
	"inUse": 1,
	"metadataCache": { "dirs": 1, "files": 2 },
	"opt": { "CacheMode": 2, "WriteBack": 30000000000 }
}"#;
    const STATS_OFF: &str = r#"{"fs": "b_x:/tmp/rx/back", "inUse": 1, "metadataCache": {"dirs": 1, "files": 0}, "opt": {"CacheMode": 0}}"#;
    const QUEUE: &str = r#"{
	"queue": [
		{ "name": "a.txt", "id": 1, "size": 6, "expiry": 58.484311089, "tries": 0, "delay": 60, "uploading": false },
		{ "name": "b.txt", "id": 2, "size": 6, "expiry": -0.5, "tries": 0, "delay": 60, "uploading": false },
		{ "name": "c.txt", "id": 3, "size": 6, "expiry": 12.0, "tries": 1, "delay": 60, "uploading": true }
	]
}"#;

    #[test]
    fn reads_pending_uploads_from_vfs_stats() {
        assert_eq!(pending_uploads(STATS.as_bytes()).unwrap(), 3);
        assert_eq!(pending_uploads(STATS_OFF.as_bytes()).unwrap(), 0);
        assert!(pending_uploads(b"not json").is_err());
    }

    #[test]
    fn picks_the_queue_items_still_waiting() {
        assert_eq!(waiting_ids(QUEUE.as_bytes()).unwrap(), [1]);
        assert!(waiting_ids(b"{}").unwrap().is_empty());
        assert!(waiting_ids(b"{\"queue\": []}").unwrap().is_empty());
    }

    #[test]
    fn parses_http_answers() {
        let ok =
            b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(parse_response(ok).unwrap(), (200, &b"{}"[..]));
        let failed = b"HTTP/1.0 500 Internal Server Error\r\n\r\n{\n\t\"error\": \"id not found in queue\",\n\t\"status\": 500\n}";
        let (status, body) = parse_response(failed).unwrap();
        assert_eq!(error_message(status, body), "id not found in queue");
        assert_eq!(error_message(404, b"404 page not found"), "HTTP 404");
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
