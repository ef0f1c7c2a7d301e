//! Probing a remote: a bounded listing of one directory, and rclone's
//! stderr turned into a kind and one clear line.

use std::fmt;
use std::time::Duration;

use crate::binary::{output, Rclone, RunError};
use crate::remote::Remotes;
use crate::stderr::{error_lines, gist};

/// rclone's exit codes for "directory not found" and "file not found".
const EXIT_NOT_FOUND: [i32; 2] = [3, 4];

/// What kind of failure a probe met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeErrorKind {
    /// The host name does not resolve.
    UnknownHost,
    /// Nothing listens on the host and port.
    ConnectionRefused,
    /// No route to the host or network.
    Unreachable,
    /// No answer in time (rclone's own timeouts, or berth killed the probe).
    Timeout,
    /// TLS or certificate failure.
    Tls,
    /// Credentials refused: bad password, key or token, 401, 403, `invalid_grant`.
    Auth,
    /// The bucket, container or directory does not exist.
    NotFound,
    /// rclone rejected the remote definition itself (unknown type, an option
    /// not obscured...): a bug in what berth passed.
    Config,
    /// Anything else, or rclone could not be run.
    Other,
}

impl ProbeErrorKind {
    /// The start of the message.
    fn summary(self) -> &'static str {
        match self {
            ProbeErrorKind::UnknownHost => "unknown host",
            ProbeErrorKind::ConnectionRefused => "connection refused",
            ProbeErrorKind::Unreachable => "host unreachable",
            ProbeErrorKind::Timeout => "timed out",
            ProbeErrorKind::Tls => "TLS error",
            ProbeErrorKind::Auth => "authentication failed",
            ProbeErrorKind::NotFound => "not found",
            ProbeErrorKind::Config => "invalid rclone configuration",
            ProbeErrorKind::Other => "probe failed",
        }
    }
}

impl fmt::Display for ProbeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.summary())
    }
}

/// A failed probe: its kind and one line (`authentication failed: ...`),
/// free of secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProbeError {
    /// The kind of failure.
    pub kind: ProbeErrorKind,
    /// One line for the user.
    pub message: String,
}

impl ProbeError {
    fn new(kind: ProbeErrorKind, detail: &str) -> Self {
        ProbeError {
            kind,
            message: format!("{}: {detail}", kind.summary()),
        }
    }
}

/// Lower-case fragments of rclone's error lines, per kind, checked in this
/// order (a DNS lookup that timed out is a timeout, a 403 on a missing
/// bucket is an auth failure).
const PATTERNS: &[(ProbeErrorKind, &[&str])] = &[
    (
        ProbeErrorKind::Timeout,
        &[
            "i/o timeout",
            "timeout awaiting response headers",
            "tls handshake timeout",
            "context deadline exceeded",
            "deadline exceeded",
            "timed out",
        ],
    ),
    (
        ProbeErrorKind::UnknownHost,
        &[
            "no such host",
            "server misbehaving",
            "name or service not known",
            "temporary failure in name resolution",
        ],
    ),
    (ProbeErrorKind::ConnectionRefused, &["connection refused"]),
    (
        ProbeErrorKind::Unreachable,
        &["no route to host", "network is unreachable", "host is down"],
    ),
    (
        ProbeErrorKind::Tls,
        &["x509:", "tls:", "certificate signed by unknown authority"],
    ),
    (
        ProbeErrorKind::Auth,
        &[
            "401 unauthorized",
            "statuscode: 401",
            "403 forbidden",
            "statuscode: 403",
            "unauthorized",
            "forbidden",
            "invalid_grant",
            "invalid_client",
            "couldn't fetch token",
            "token expired",
            "signaturedoesnotmatch",
            "invalidaccesskeyid",
            "accessdenied",
            "access denied",
            "authenticationfailed",
            "authorizationfailure",
            "unable to authenticate",
            "authentication failed",
            "login incorrect",
            "login failed",
            "invalid credentials",
            "permission denied",
        ],
    ),
    (
        ProbeErrorKind::NotFound,
        &[
            "directory not found",
            "object not found",
            "nosuchbucket",
            "bucket not found",
            "containernotfound",
            "no such file or directory",
            "404 not found",
            "statuscode: 404",
        ],
    ),
    (
        ProbeErrorKind::Config,
        &[
            "didn't find backend called",
            "didn't find section in config",
            "is it obscured",
            "couldn't decrypt",
            "unknown flag",
        ],
    ),
];

/// The failure lines of rclone's (already scrubbed) stderr, lower case, for
/// [`matching`].
pub(crate) fn error_text(stderr: &str) -> String {
    error_lines(stderr).join("\n").to_lowercase()
}

/// The kind of the first entry of `patterns` with a fragment in `errors`
/// (from [`error_text`]).
pub(crate) fn matching<K: Copy>(patterns: &[(K, &[&str])], errors: &str) -> Option<K> {
    patterns
        .iter()
        .find(|(_, fragments)| fragments.iter().any(|f| errors.contains(f)))
        .map(|(kind, _)| *kind)
}

/// Classifies a failed rclone run from its (already scrubbed) stderr and
/// exit code.
pub(crate) fn classify(stderr: &str, exit_code: Option<i32>) -> ProbeError {
    let kind = matching(PATTERNS, &error_text(stderr))
        .or_else(|| {
            exit_code
                .filter(|code| EXIT_NOT_FOUND.contains(code))
                .map(|_| ProbeErrorKind::NotFound)
        })
        .unwrap_or(ProbeErrorKind::Other);
    ProbeError::new(kind, &gist(stderr))
}

impl Rclone {
    /// Lists `path` of the main remote of `remotes` (one level, names only,
    /// one retry at most) and succeeds when rclone does. rclone's connect
    /// and I/O timeouts are set to 80% of `timeout`; at `timeout` the child
    /// is killed. Every secret of `remotes`, and each value of `scrub`, is
    /// cut out of rclone's stderr before anything is made of it.
    pub async fn probe(
        &self,
        remotes: &Remotes,
        path: &str,
        timeout: Duration,
        scrub: &[&str],
    ) -> Result<(), ProbeError> {
        let (mut cmd, scrubber) = self.bounded_command(remotes, timeout);
        let scrubber = scrubber.with(scrub);
        cmd.arg("lsf")
            .arg(remotes.target(path))
            .args(["--max-depth", "1"]);
        let result = match output(cmd, timeout).await {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => {
                let stderr = scrubber.scrub(&String::from_utf8_lossy(&output.stderr));
                Err(classify(&stderr, output.status.code()))
            }
            Err(RunError::Spawn(e)) => Err(ProbeError::new(
                ProbeErrorKind::Other,
                &format!("cannot run rclone: {e}"),
            )),
            Err(RunError::Timeout(timeout)) => Err(ProbeError::new(
                ProbeErrorKind::Timeout,
                &format!("no answer within {timeout:?}"),
            )),
            Err(RunError::Wait(e)) => Err(ProbeError::new(
                ProbeErrorKind::Other,
                &format!("rclone: {e}"),
            )),
        };
        if let Err(error) = &result {
            tracing::debug!(remote = remotes.main_name(), kind = ?error.kind, message = %error.message, "rclone probe failed");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProbeErrorKind::*;

    /// stderr of `rclone lsf`/`lsjson` v1.75.2 against bad targets on this
    /// machine (no network), with the exit code.
    const SAMPLES: &[(ProbeErrorKind, i32, &str, &str)] = &[
        (
            ConnectionRefused,
            1,
            "2026/12/04 05:36:11 NOTICE: s{e9pgU}: No host key validation is being performed. Set known_hosts_file (to \"none\" to silence this notice) or use --sftp-pin-host-key to enable it. See: https://rclone.org/sftp/#host-key-validation\n\
             2026/12/04 05:36:11 CRITICAL: Failed to create file system for \"s:\": NewFs: couldn't connect SSH: dial tcp 127.0.0.1:1: connect: connection refused\n",
            "connection refused: couldn't connect SSH: dial tcp 127.0.0.1:1: connect: connection refused",
        ),
        (
            UnknownHost,
            1,
            "2026/12/04 05:36:12 CRITICAL: Failed to create file system for \"s:\": NewFs: couldn't connect SSH: dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host\n",
            "unknown host: couldn't connect SSH: dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host",
        ),
        (
            UnknownHost,
            1,
            "2026/12/04 05:36:12 ERROR : error listing: couldn't list files: Propfind \"http://nosuchhost.invalid/\": dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host\n\
             2026/12/04 05:36:12 NOTICE: Failed to lsjson with 2 errors: last error was: error in ListJSON: couldn't list files: Propfind \"http://nosuchhost.invalid/\": dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host\n",
            "unknown host: couldn't list files: Propfind \"http://nosuchhost.invalid/\": dial tcp: lookup nosuchhost.invalid on 10.255.255.53:53: no such host",
        ),
        (
            ConnectionRefused,
            5,
            "2026/12/04 05:36:12 ERROR : error listing: couldn't list files: Propfind \"http://127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused\n",
            "connection refused: couldn't list files: Propfind \"http://127.0.0.1:1/\": dial tcp 127.0.0.1:1: connect: connection refused",
        ),
        (
            NotFound,
            3,
            "2026/12/04 05:36:12 ERROR : error listing: directory not found\n\
             2026/12/04 05:36:12 NOTICE: Failed to lsjson with 2 errors: last error was: error in ListJSON: directory not found\n",
            "not found: directory not found",
        ),
        (
            Auth,
            1,
            "2026/12/04 05:36:24 ERROR : error listing: couldn't list files: 401 Unauthorized: 401 Unauthorized\n\
             2026/12/04 05:36:24 NOTICE: Failed to lsjson with 2 errors: last error was: error in ListJSON: couldn't list files: 401 Unauthorized: 401 Unauthorized\n",
            "authentication failed: couldn't list files: 401 Unauthorized: 401 Unauthorized",
        ),
        (
            Auth,
            1,
            "2026/12/04 05:43:02 CRITICAL: Failed to create file system for \"s:\": NewFs: couldn't connect SSH: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none password], no supported methods remain\n",
            "authentication failed: couldn't connect SSH: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none password], no supported methods remain",
        ),
        (
            Auth,
            1,
            "2026/12/04 05:36:56 ERROR : error listing: operation error S3: ListObjects, https response error StatusCode: 403, RequestID: , HostID: , api error SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.\n",
            "authentication failed: operation error S3: ListObjects, https response error StatusCode: 403, RequestID: , HostID: , api error SignatureDoesNotMatch: The request signature we calculated does not match the signature you provided. Check your key and signing method.",
        ),
        (
            Auth,
            1,
            "2026/12/04 05:36:56 ERROR : error listing: operation error S3: ListObjects, https response error StatusCode: 403, RequestID: , HostID: , api error InvalidAccessKeyId: The Access Key Id you provided does not exist in our records.\n",
            "authentication failed: operation error S3: ListObjects, https response error StatusCode: 403, RequestID: , HostID: , api error InvalidAccessKeyId: The Access Key Id you provided does not exist in our records.",
        ),
        (
            Auth,
            1,
            "2026/12/04 05:36:47 CRITICAL: Failed to create file system for \"d:\": couldn't find root directory ID: Get \"https://www.googleapis.com/drive/v3/files/root?alt=json&fields=id&prettyPrint=false&supportsAllDrives=true\": couldn't fetch token: invalid_grant: maybe token expired? - try refreshing with \"rclone config reconnect d{Umb1V}:\"\n",
            "authentication failed: couldn't find root directory ID: Get \"https://www.googleapis.com/drive/v3/files/root?alt=json&fields=id&prettyPrint=false&supportsAllDrives=true\": couldn't fetch token: invalid_grant: maybe token expired? - try refreshing with \"rclone confi…",
        ),
        (
            NotFound,
            3,
            "2026/12/04 05:36:57 ERROR : error listing: directory not found\n",
            "not found: directory not found",
        ),
        (
            Timeout,
            1,
            "2026/12/04 05:36:44 CRITICAL: Failed to create file system for \"s:\": NewFs: couldn't connect SSH: ssh: handshake failed: read tcp 127.0.0.1:34228->127.0.0.1:18770: i/o timeout\n",
            "timed out: couldn't connect SSH: ssh: handshake failed: read tcp 127.0.0.1:34228->127.0.0.1:18770: i/o timeout",
        ),
        (
            Timeout,
            5,
            "2026/12/04 05:36:47 ERROR : error listing: couldn't list files: Propfind \"http://127.0.0.1:18770/\": net/http: timeout awaiting response headers\n",
            "timed out: couldn't list files: Propfind \"http://127.0.0.1:18770/\": net/http: timeout awaiting response headers",
        ),
        (
            Config,
            1,
            "2026/12/04 05:36:25 CRITICAL: Failed to create file system for \"w:\": couldn't decrypt password: input too short when revealing password - is it obscured?\n",
            "invalid rclone configuration: couldn't decrypt password: input too short when revealing password - is it obscured?",
        ),
        (
            Config,
            1,
            "2026/12/04 05:36:26 CRITICAL: Failed to create file system for \"w:\": didn't find backend called \"nosuchtype\"\n",
            "invalid rclone configuration: didn't find backend called \"nosuchtype\"",
        ),
    ];

    #[test]
    fn classifies_real_rclone_failures() {
        for (kind, code, stderr, message) in SAMPLES {
            let error = classify(stderr, Some(*code));
            assert_eq!(error.kind, *kind, "{stderr}");
            assert_eq!(error.message, *message);
        }
    }

    #[test]
    fn falls_back_on_the_exit_code_then_other() {
        let error = classify("2026/12/04 05:36:12 ERROR : something odd\n", Some(3));
        assert_eq!(error.kind, NotFound);
        assert_eq!(error.message, "not found: something odd");
        let error = classify("panic: runtime error\ngoroutine 1", Some(2));
        assert_eq!(
            (error.kind, error.message.as_str()),
            (Other, "probe failed: panic: runtime error")
        );
    }
}
