#!/usr/bin/env python3
"""Build berth's enriched provider catalog from the spec's provider tables.

    scripts/gen_catalog.py [--rclone-snapshot] [SPEC_JSON] [OUT_JSON]

Defaults: ../shared/spec/providers.json (next to the repository) and
storage/catalog/providers.json. The output keeps every spec key of every
provider and field unchanged (slug, category, backend_type, response_type,
summary, success_message, fields[name/type/required/default/description],
example_request, example_errors), appends berth's providers beyond the spec
(EXTRA_PROVIDERS: sftp, ssh, ftp, smb, webdav; `extension: true`, category
`server`) and adds, per provider:

    extension           a berth provider beyond the spec
    rclone_type         rclone's backend name (RCLONE_TYPE where it differs
                        from backend_type); absent when rclone has none
    rclone_unavailable  why rclone has no backend for it (RCLONE_UNAVAILABLE)

and, per field:

    kind        string | bool | int | size | duration
    allowed     closed set of accepted values (only when the set is closed)
    list        value is a comma-separated list checked item by item
    secret      never shown (redacted to "***"); every secret is a credential
    credential  may be changed with PUT /api/v1/backends/{id}
    identity    host/user/account-like: immutable, shown as `user`/`server`
    extension   added by berth (not in the spec table)
    off         size/duration field that also accepts "off" (and -1)
    check       extra validation rule implemented in Rust (catalog::Check)
    invalid_message  wording for a value outside `allowed`
    rclone      how the field reaches rclone (providers with an rclone_type):
                {"option": {"name", "obscure", "form", "send_default",
                "values"}} or {"not_an_option": "<reason>"}

The rclone mapping is checked against storage/catalog/rclone-options.json, a
trimmed snapshot of `rclone config providers` (per backend and option: type,
IsPassword, default). `--rclone-snapshot` rewrites that file from the
installed rclone before generating; without it the checked-in snapshot is
used, so neither builds nor tests need rclone. A field maps to the rclone
option of its own name; a field whose name rclone does not know must be
decided in RCLONE_FIELDS (renamed, or not an option with the reason), every
(kind, rclone type) pair must be in RCLONE_FORMS, and every default that
differs from rclone's must be decided in RCLONE_DEFAULTS, or this script
fails.

Every string field name of the spec must appear in exactly one of the flag
tables below (SECRET, CREDENTIAL, IDENTITY, PLAIN), so a new spec field makes
this script fail until someone decides what it is. Boolean and integer fields
are never secret, credential or identity.

Run it after changing the spec file or a rule table; the Rust unit tests
(`cargo test -p berth-storage catalog`) check the result against the spec.
"""

import getpass
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SPEC = os.path.join(os.path.dirname(REPO), "shared", "spec", "providers.json")
OUT = os.path.join(REPO, "storage", "catalog", "providers.json")
SNAPSHOT = os.path.join(REPO, "storage", "catalog", "rclone-options.json")

# ---------------------------------------------------------------- flags ----
# Secret: never shown, redacted to "***", scrubbed from driver error text.
# Includes names the spec's PUT section lists that no table uses yet
# (bearer_token, secret_key) so they are right the day they appear.
SECRET = {
    "2fa",  # protondrive: one-time 2FA code (seafile's boolean 2fa is plain)
    "access_grant", "access_token", "api_key", "api_password", "api_secret",
    "app_token", "application_credential_secret", "auth_token",
    "authorization",  # sugarsync: the session authorization itself
    "bearer_token", "client_access_token", "client_certificate_password",
    "client_refresh_token", "client_salted_key_pass", "client_secret",
    "client_uid",  # protondrive session uid: together with the tokens a login
    "connection_string",  # azurefiles: carries the account key
    "cookies",  # iclouddrive session cookies
    "file_password", "folder_password",
    "headers",  # webdav: extra HTTP headers, typically Authorization/Cookie
    "http_proxy",  # sftp/ftp: the proxy URL may carry user:pass
    "key", "key_file_pass", "key_pem", "library_key",
    "link_password", "mailbox_password", "pass", "passphrase", "password",
    "permanent_token", "plex_password", "plex_token", "private_access_key",
    "private_key", "refresh_token",
    "sas_url",  # the URL embeds the SAS signature
    "socks_proxy",  # sftp/ftp: user:pass@host:port
    "secret", "secret_access_key", "secret_key", "service_account_credentials",
    "session_token", "sse_customer_key", "sse_customer_key_base64",
    "sse_customer_key_md5", "sse_customer_key_sha256", "token", "trust_token",
}

# Credential but not secret: rotatable authentication settings that are safe
# to show (key ids, client ids, paths to credential files, auth profiles).
CREDENTIAL = {
    "access_key_id", "app_id", "application_credential_id",
    "application_credential_name",
    "authorization_expiry",  # sugarsync: rotates with `authorization`
    "box_config_file", "client_certificate_path", "client_id", "config_file",
    "config_profile", "device_id",
    "key_file",  # sftp/ssh: path of the private key file
    "msi_client_id", "msi_mi_res_id", "msi_object_id", "profile",
    "pubkey", "pubkey_file",  # sftp/ssh: certificate (or its path)
    "public_key", "service_account_file",
    "service_principal_file", "shared_credentials_file",
    "sse_customer_key_file",
    "tenant",  # azure/onedrive: the service principal's tenant (swift: identity)
    "token_expiry",  # filefabric: rotates with `token`
}

# Identity: which server and which account. Immutable; shown as user/server.
IDENTITY = {
    "account", "account_id", "api_url", "apple_id",
    "auth",  # swift auth URL
    "cloud_name", "compartment", "domain", "endpoint", "front_endpoint",
    "host", "hostname", "namespace", "port", "project_number", "region",
    "satellite_address", "site", "storage_url", "tenant_domain", "tenant_id",
    "url", "user", "user_id", "username", "zone",
}

# Neither: plain settings. Like every non-credential field they cannot be
# changed with PUT either.
PLAIN = {
    "access_tier", "acl", "action_policy", "app_version", "auth_url",
    "auto_size", "batch_mode", "box_sub_type", "bucket_acl", "chunk_path",
    "chunk_size", "chunk_total_size", "copy_cutoff", "create_policy",
    "db_path", "delete_snapshots", "deleted_id", "description",
    "download_url", "drive_id", "drive_type", "effective_upload_time",
    "encoding", "endpoint_type", "export_formats", "formats",
    "hash_memory_limit", "hash_type", "hashes",
    "host_keys",  # sftp/ssh: pinned public host keys
    "impersonate",
    "import_formats",
    "known_hosts_file",  # sftp/ssh: verifies the server, authenticates nobody
    "library", "link_scope", "link_type",
    "list_url_encode", "location", "location_constraint", "max_stream_size",
    "maximal_summary_chunk_size", "md5_memory_limit", "meta_format",
    "metadata_labels", "metadata_owner", "metadata_permissions", "might_gzip",
    "min_free_space", "minimal_chunk_size", "mountid",
    "nextcloud_chunk_size",
    "name",  # berth extension: reference name of the backend
    "engine",  # berth extension: native or rclone
    "name_format",
    "object_acl", "owned_by", "plex_insecure", "plex_url", "plex_username",
    "protocol", "provider", "proxy", "public_access", "quirks", "remote",
    "resource_key",
    "root",  # berth extension: local root directory
    "root_folder_id", "root_folder_slug", "root_id",
    "root_namespace", "root_prefix", "scope", "scope_access", "scope_role",
    "sdk_log_mode", "search_policy", "server_side_encryption", "share_name",
    "shared_folder", "shell_type",
    "spn",  # smb: service principal name presented to the server
    "speedup_file_patterns", "speedup_max_disk",
    "speedup_max_memory", "sse_customer_algorithm", "sse_kms_key_id",
    "storage_class", "storage_policy", "storage_tier", "sts_endpoint",
    "team_drive", "test_mode", "time_type", "tmp_upload_path", "token_url",
    "transactions", "upload_cutoff", "upload_prefix", "upload_preset",
    "upload_resume_limit", "upload_tags", "upstreams",
    "use_accept_encoding_gzip", "use_already_exists", "use_multipart_etag",
    "use_multipart_uploads", "use_segments_container",
    "use_unsigned_payload", "user_agent", "user_project",
    "v2_download_min_size",
    "vendor",  # webdav: which server software
    "version", "version_at",
}

# Per-provider exceptions: (slug, field) -> "secret" | "credential" |
# "identity" | "plain".
FLAG_OVERRIDES = {
    # B2's `account` is the application key id: it rotates with `key`.
    ("b2", "account"): "credential",
    # Swift's tenant is the project (account) name, not an auth setting.
    ("swift", "tenant"): "identity",
    # s3/koofr `provider` names the service (shown in `server`); for
    # oracleobjectstorage/storj/tardigrade it is the auth method (plain).
    ("s3", "provider"): "identity",
    ("koofr", "provider"): "identity",
    # The Plex login of the cache backend rotates as a pair with its password.
    ("cache", "plex_username"): "credential",
}

# ---------------------------------------------------------------- kinds ----
SIZE = {  # string fields holding byte counts
    "auto_size", "chunk_size", "chunk_total_size", "copy_cutoff",
    "hash_memory_limit", "max_stream_size", "maximal_summary_chunk_size",
    "md5_memory_limit", "min_free_space", "minimal_chunk_size",
    "nextcloud_chunk_size",
    "speedup_max_disk", "speedup_max_memory", "upload_cutoff",
    "upload_resume_limit", "v2_download_min_size",
}
DURATION = {  # integer seconds (or the string "4s" for quatrix)
    "batch_commit_timeout", "batch_timeout", "cache_time",
    "chunk_clean_interval", "close_timeout", "copy_timeout", "db_wait_time",
    "download_auth_duration", "effective_upload_time",
    "eventually_consistent_delay", "idle_timeout", "info_age", "max_age",
    "memory_pool_flush_time", "pacer_min_sleep", "shut_timeout",
    "tmp_wait_time",
    "wait_archive",
}
OFF = {("drive", "v2_download_min_size"), ("hasher", "max_age")}

# ------------------------------------------------ providers beyond spec ----
# Network file servers for NAS and server users, with rclone's option names
# and types (storage/catalog/rclone-options.json). They are appended after
# the spec's providers with `extension: true` and category `server`; their
# fields go through the same flag, kind and rclone tables as the spec's.
# Left out on purpose: options that run a command or read a socket on the
# berth host (sftp `ssh`, `server_command`, `*sum_command`, `path_override`,
# `set_env`; webdav `bearer_token_command`, `unix_socket`), that use the
# berth host's own credentials (sftp `key_use_agent`; smb `use_kerberos`,
# `kerberos_ccache`), that prompt (`ask_password`), that write back into
# rclone's config (sftp `pin_host_key`), that need sub-second durations
# (webdav `pacer_min_sleep`), and cipher/algorithm lists.


def ext_field(name, type_, default, description, required=False):
    """A field of a provider beyond the spec, in the spec's field format."""
    return {"name": name, "type": type_, "required": required,
            "default": default, "description": description}


SSH_FIELDS = [
    ext_field("host", "string", "",
              "SSH host to connect to, e.g. `nas.example.org`.", True),
    # Required although rclone has a default: rclone falls back to the OS
    # user running the engine, which is never the right remote account.
    ext_field("user", "string", "", "SSH user name.", True),
    ext_field("port", "integer", 22, "SSH port number."),
    ext_field("pass", "string", "",
              "SSH password. Leave empty to log in with a private key."),
    ext_field("key_pem", "string", "",
              "Raw PEM-encoded private key (the whole `-----BEGIN ...` "
              "block, newlines included). Takes precedence over `key_file`."),
    ext_field("key_file", "string", "",
              "Path of a PEM-encoded private key file on the berth server."),
    ext_field("key_file_pass", "string", "",
              "Passphrase of the private key (`key_pem` or `key_file`), when "
              "it is encrypted."),
    ext_field("pubkey", "string", "",
              "SSH public certificate for certificate-based authentication. "
              "Takes precedence over `pubkey_file`."),
    ext_field("pubkey_file", "string", "",
              "Path of the public key or certificate file on the berth "
              "server."),
    ext_field("known_hosts_file", "string", "",
              "Path of a known_hosts file on the berth server that the "
              "server's host key must be in. Empty: the host key is not "
              "checked (unless `host_keys` is set)."),
    ext_field("host_keys", "string", "",
              "Pinned host keys: comma-separated `algo base64-key` entries "
              "(as in known_hosts, at most 16). When set, the server's key "
              "must be one of them."),
    ext_field("use_insecure_cipher", "boolean", False,
              "Allow insecure ciphers and key exchanges (aes*-cbc, 3des-cbc, "
              "diffie-hellman-group-exchange-*) for old servers."),
    ext_field("disable_hashcheck", "boolean", False,
              "Do not run SSH commands (md5sum, sha1sum, ...) on the server "
              "to compute checksums."),
    ext_field("shell_type", "string", "",
              "The server's SSH shell: none, unix, powershell or cmd. "
              "Empty: detected on first connection."),
    ext_field("set_modtime", "boolean", True,
              "Set modification times on the server."),
    ext_field("skip_links", "boolean", False,
              "Skip symlinks and other non-regular files."),
    ext_field("use_fstat", "boolean", False,
              "Use fstat instead of stat (for servers that limit the number "
              "of open files)."),
    ext_field("disable_concurrent_reads", "boolean", False,
              "Read each file with one request at a time."),
    ext_field("disable_concurrent_writes", "boolean", False,
              "Write each file with one request at a time."),
    ext_field("concurrency", "integer", 64,
              "Maximum number of outstanding requests for one file."),
    ext_field("connections", "integer", 0,
              "Maximum number of simultaneous SFTP connections, 0 for "
              "unlimited."),
    ext_field("chunk_size", "string", "32768",
              "Upload and download chunk size (most servers accept at most "
              "256 KiB)."),
    ext_field("idle_timeout", "integer", 60,
              "Seconds before an idle connection is closed, 0 to keep "
              "connections open."),
    ext_field("copy_is_hardlink", "boolean", False,
              "Make server-side copies as hard links."),
    ext_field("socks_proxy", "string", "",
              "SOCKS5 proxy to connect through: `host:port` or "
              "`user:pass@host:port`."),
    ext_field("http_proxy", "string", "",
              "HTTP CONNECT proxy URL to connect through."),
    ext_field("encoding", "string", "33652738",
              "The encoding for the backend."),
    ext_field("description", "string", "", "Description of the remote."),
]

FTP_FIELDS = [
    ext_field("host", "string", "",
              "FTP host to connect to, e.g. `ftp.example.org`.", True),
    ext_field("user", "string", "anonymous",
              "FTP user name; `anonymous` for anonymous FTP."),
    ext_field("port", "integer", 21, "FTP port number."),
    ext_field("pass", "string", "", "FTP password."),
    ext_field("tls", "boolean", False,
              "Use implicit FTPS: TLS from the first byte (usually port 990). "
              "Cannot be combined with `explicit_tls`."),
    ext_field("explicit_tls", "boolean", False,
              "Use explicit FTPS: upgrade the connection to TLS (AUTH TLS). "
              "Cannot be combined with `tls`."),
    ext_field("no_check_certificate", "boolean", False,
              "Do not verify the server's TLS certificate."),
    ext_field("disable_tls13", "boolean", False,
              "Disable TLS 1.3 (for servers with a buggy TLS stack)."),
    ext_field("concurrency", "integer", 0,
              "Maximum number of simultaneous FTP connections, 0 for "
              "unlimited."),
    ext_field("disable_epsv", "boolean", False,
              "Do not use EPSV even if the server advertises it."),
    ext_field("disable_mlsd", "boolean", False,
              "Do not use MLSD even if the server advertises it."),
    ext_field("disable_utf8", "boolean", False,
              "Do not use UTF-8 even if the server advertises it."),
    ext_field("writing_mdtm", "boolean", False,
              "Set modification times with MDTM (vsftpd)."),
    ext_field("force_list_hidden", "boolean", False,
              "List with `LIST -a` to show hidden files (disables MLSD)."),
    ext_field("no_check_upload", "boolean", False,
              "Do not check that an upload arrived (for servers that hide "
              "or rename uploaded files)."),
    ext_field("idle_timeout", "integer", 60,
              "Seconds before an idle connection is closed, 0 to keep "
              "connections open."),
    ext_field("close_timeout", "integer", 60,
              "Seconds to wait for a response to close."),
    ext_field("shut_timeout", "integer", 60,
              "Seconds to wait for the data connection's closing status."),
    ext_field("tls_cache_size", "integer", 32,
              "Size of the TLS session cache for control and data "
              "connections."),
    ext_field("socks_proxy", "string", "",
              "SOCKS5 proxy to connect through: `host:port` or "
              "`user:pass@host:port`."),
    ext_field("http_proxy", "string", "",
              "HTTP CONNECT proxy URL to connect through."),
    ext_field("encoding", "string", "35749890",
              "The encoding for the backend."),
    ext_field("description", "string", "", "Description of the remote."),
]

SMB_FIELDS = [
    ext_field("host", "string", "",
              "SMB server host name or address, e.g. `nas.local`.", True),
    ext_field("user", "string", "", "SMB user name. Empty: guest access."),
    ext_field("port", "integer", 445, "SMB port number."),
    ext_field("pass", "string", "", "SMB password."),
    ext_field("domain", "string", "WORKGROUP",
              "Domain name for NTLM authentication."),
    ext_field("spn", "string", "",
              "Service principal name presented to the server, e.g. "
              "`cifs/remotehost:1020`; some clusters need it."),
    ext_field("hide_special_share", "boolean", True,
              "Hide special shares (e.g. `print$`)."),
    ext_field("case_insensitive", "boolean", True,
              "Whether the server treats names case-insensitively."),
    ext_field("idle_timeout", "integer", 60,
              "Seconds before an idle connection is closed, 0 to keep "
              "connections open."),
    ext_field("encoding", "string", "56698766",
              "The encoding for the backend."),
    ext_field("description", "string", "", "Description of the remote."),
]

WEBDAV_FIELDS = [
    ext_field("url", "string", "",
              "URL of the WebDAV server, e.g. "
              "`https://cloud.example.org/remote.php/dav/files/alice`.", True),
    ext_field("vendor", "string", "",
              "The server software: fastmail, nextcloud, owncloud, "
              "infinitescale, sharepoint, sharepoint-ntlm, rclone or other. "
              "Empty: plain WebDAV."),
    ext_field("user", "string", "", "User name."),
    ext_field("pass", "string", "", "Password."),
    ext_field("bearer_token", "string", "",
              "Bearer token instead of user and password (e.g. a Macaroon)."),
    ext_field("headers", "string", "",
              "Extra HTTP headers for every request, as comma-separated "
              "name,value pairs (CSV quoting allowed), e.g. "
              "`Cookie,name=value`. Only sent to the configured host."),
    ext_field("nextcloud_chunk_size", "string", "10485760",
              "Nextcloud upload chunk size, 0 to upload in one request."),
    ext_field("owncloud_exclude_shares", "boolean", False,
              "Exclude ownCloud shares."),
    ext_field("owncloud_exclude_mounts", "boolean", False,
              "Exclude ownCloud mounted storages."),
    ext_field("auth_redirect", "boolean", False,
              "Keep sending the credentials when the server redirects to "
              "another host."),
    ext_field("encoding", "string", "",
              "The encoding for the backend (comma-separated names). Empty: "
              "the vendor's default."),
    ext_field("description", "string", "", "Description of the remote."),
]

SSH_EXAMPLE = {"host": "nas.example.org", "port": 2222, "user": "deploy",
               "pass": "correct-horse-battery-staple"}
# slug -> how messages name it; `ssh` is `sftp` under the name the spec's
# backend list shows (backend_type "ssh", server "ssh:generic").
SSH_SLUGS = {"sftp": "SFTP", "ssh": "SSH"}


def extra_provider(slug, label, fields, summary, example):
    """A provider beyond the spec, in the spec's provider format."""
    return {"slug": slug, "category": "server", "summary": summary,
            "backend_type": slug, "response_type": "backend",
            "success_message": f"{label} backend connected successfully",
            "fields": fields, "example_request": example,
            "example_errors": []}


EXTRA_PROVIDERS = [
    extra_provider(
        slug, label, SSH_FIELDS,
        f"Connect a server over {label} (files move with the SFTP "
        "protocol): a NAS, a VPS or any host running an SSH server. "
        "Required: host and user; log in with a password or a private key.",
        SSH_EXAMPLE)
    for slug, label in SSH_SLUGS.items()
] + [
    extra_provider(
        "ftp", "FTP", FTP_FIELDS,
        "Connect an FTP server, in plain FTP or FTPS (implicit or explicit "
        "TLS). Required: host.",
        {"host": "ftp.example.org", "user": "alice",
         "pass": "ftp-password", "explicit_tls": True}),
    extra_provider(
        "smb", "SMB", SMB_FIELDS,
        "Connect an SMB/CIFS server: Windows shares, Samba and most NAS "
        "devices. Required: host.",
        {"host": "nas.local", "user": "alice", "pass": "smb-password",
         "domain": "WORKGROUP"}),
    extra_provider(
        "webdav", "WebDAV", WEBDAV_FIELDS,
        "Connect a WebDAV server: Nextcloud, ownCloud, SharePoint, Fastmail "
        "or any other WebDAV service. Required: url.",
        {"url": "https://cloud.example.org/remote.php/dav/files/alice",
         "vendor": "nextcloud", "user": "alice", "pass": "app-password"}),
]

# ------------------------------------------------------ allowed values ----
TRISTATE = ["true", "false"]
METADATA = ["off", "read", "write", "failok"]
# rclone's union policies (the spec names ff, epmfs, epall, lfs, eplfs).
UNION_POLICIES = ["all", "epall", "epff", "eplfs", "eplno", "eplus", "epmfs",
                  "eprand", "ff", "lfs", "lno", "lus", "mfs", "newest", "rand"]
# The hash types of rclone 1.75 (the external engine). The spec's hasher
# example requests md5,sha1,blake3 and shows a 201; its example error
# "Unsupported hash type: blake3" only illustrates the wording, which the
# catalog uses for hash types outside this set.
HASHES = ["md5", "sha1", "whirlpool", "crc32", "sha256", "sha512", "blake3",
          "xxh3", "xxh128", "dropbox", "hidrive", "mailru", "quickxor"]

# (slug, field) -> (allowed values, list?)
ALLOWED = {
    ("azureblob", "access_tier"): (["hot", "cool", "cold", "archive"], False),
    ("azureblob", "delete_snapshots"): (["", "include", "only"], False),
    ("azureblob", "public_access"): (["", "blob", "container"], False),
    ("google-cloud-storage", "bucket_acl"): (
        ["authenticatedRead", "private", "projectPrivate", "publicRead",
         "publicReadWrite"], False),
    ("google-cloud-storage", "object_acl"): (
        ["authenticatedRead", "bucketOwnerFullControl", "bucketOwnerRead",
         "private", "projectPrivate", "publicRead"], False),
    ("google-cloud-storage", "storage_class"): (
        ["", "MULTI_REGIONAL", "REGIONAL", "NEARLINE", "COLDLINE", "ARCHIVE",
         "DURABLE_REDUCED_AVAILABILITY"], False),
    ("oracleobjectstorage", "provider"): (
        ["env_auth", "user_principal_auth", "instance_principal_auth",
         "workload_identity_auth", "resource_principal_auth", "no_auth"],
        False),
    ("oracleobjectstorage", "sse_customer_algorithm"): (["", "AES256"], False),
    ("oracleobjectstorage", "storage_tier"): (
        ["Standard", "InfrequentAccess", "Archive"], False),
    ("s3", "acl"): (
        ["default", "private", "public-read", "public-read-write",
         "authenticated-read", "bucket-owner-read",
         "bucket-owner-full-control"], False),
    ("s3", "bucket_acl"): (
        ["private", "public-read", "public-read-write", "authenticated-read"],
        False),
    ("s3", "list_version"): (["0", "1", "2"], False),
    ("s3", "provider"): (
        ["AWS", "Alibaba", "ArvanCloud", "Ceph", "ChinaMobile", "Cloudflare",
         "DigitalOcean", "Dreamhost", "GCS", "HuaweiOBS", "IBMCOS", "IDrive",
         "IONOS", "LyveCloud", "Leviia", "Liara", "Linode", "Magalu", "Minio",
         "Netease", "Outscale", "Petabox", "RackCorp", "Hoody-VFS", "Scaleway",
         "SeaweedFS", "Selectel", "StackPath", "Storj", "Synology",
         "TencentCOS", "Wasabi", "Qiniu", "Other"], False),
    ("s3", "server_side_encryption"): (["", "AES256", "aws:kms"], False),
    ("s3", "sse_customer_algorithm"): (["", "AES256"], False),
    ("s3", "list_url_encode"): (TRISTATE, False),
    ("s3", "might_gzip"): (TRISTATE, False),
    ("s3", "use_accept_encoding_gzip"): (TRISTATE, False),
    ("s3", "use_already_exists"): (TRISTATE, False),
    ("s3", "use_multipart_etag"): (TRISTATE, False),
    ("s3", "use_multipart_uploads"): (TRISTATE, False),
    ("s3", "use_unsigned_payload"): (TRISTATE, False),
    ("b2", "test_mode"): (
        ["fail_some_uploads", "expire_some_account_authorization_tokens",
         "force_cap_exceeded"], False),
    ("swift", "auth_version"): (["0", "1", "2", "3"], False),
    ("swift", "endpoint_type"): (["public", "internal", "admin"], False),
    ("swift", "use_segments_container"): (TRISTATE, False),
    ("netstorage", "protocol"): (["http", "https"], False),
    ("storj", "provider"): (["existing", "new"], False),
    ("tardigrade", "provider"): (["existing", "new"], False),
    ("chunker", "hash_type"): (
        ["none", "md5", "sha1", "md5all", "sha1all", "md5quick", "sha1quick"],
        False),
    ("chunker", "meta_format"): (["none", "simplejson"], False),
    ("chunker", "transactions"): (["rename", "norename", "auto"], False),
    ("hasher", "hashes"): (HASHES, True),
    ("local", "time_type"): (["mtime", "atime", "btime", "ctime"], False),
    ("union", "search_policy"): (UNION_POLICIES, False),
    ("union", "create_policy"): (UNION_POLICIES, False),
    ("union", "action_policy"): (UNION_POLICIES, False),
    ("box", "box_sub_type"): (["user", "enterprise"], False),
    ("drive", "metadata_labels"): (METADATA, True),
    ("drive", "metadata_owner"): (METADATA, True),
    ("drive", "metadata_permissions"): (METADATA, True),
    ("drive", "scope"): (
        ["drive", "drive.readonly", "drive.file", "drive.appfolder",
         "drive.metadata.readonly"], True),
    ("dropbox", "batch_mode"): (["off", "sync", "async"], False),
    ("google-photos", "batch_mode"): (["off", "sync", "async"], False),
    ("hidrive", "scope_access"): (["rw", "ro"], False),
    ("hidrive", "scope_role"): (["user", "admin", "owner"], False),
    ("koofr", "provider"): (["koofr", "digistorage", "other"], False),
    ("onedrive", "drive_type"): (["personal", "business", "documentLibrary"],
                                 False),
    ("onedrive", "hash_type"): (
        ["auto", "quickxor", "sha1", "sha256", "crc32", "none"], False),
    ("onedrive", "link_scope"): (["anonymous", "organization"], False),
    ("onedrive", "link_type"): (["view", "edit", "embed"], False),
    ("onedrive", "metadata_permissions"): (METADATA, True),
    ("onedrive", "region"): (["global", "us", "de", "cn"], False),
    ("pcloud", "hostname"): (["api.pcloud.com", "eapi.pcloud.com"], False),
    ("zoho", "region"): (["com", "eu", "in", "jp", "com.cn", "com.au"], False),
    **{(slug, "shell_type"): (["none", "unix", "powershell", "cmd"], False)
       for slug in SSH_SLUGS},
    ("webdav", "vendor"): (
        ["fastmail", "nextcloud", "owncloud", "infinitescale", "sharepoint",
         "sharepoint-ntlm", "rclone", "other"], False),
}

INVALID_MESSAGE = {
    ("hasher", "hashes"):
        "Unsupported hash type: {value} (hashes must be a comma-separated "
        "list of {allowed})",
}

CHECKS = {
    ("alias", "remote"): "remote",
    ("cache", "remote"): "remote",
    ("chunker", "remote"): "remote",
    ("hasher", "remote"): "remote",
    ("combine", "upstreams"): "combine_upstreams",
    ("union", "upstreams"): "union_upstreams",
    ("chunker", "name_format"): "chunk_name_format",
}

# ----------------------------------------------------------- extensions ----
NAME_FIELD = {
    "name": "name",
    "type": "string",
    "required": False,
    "default": None,
    "description": "Name other backends use to reference this one (the "
                   "`name` in `name:path` remotes): 1-64 characters of "
                   "a-z, 0-9, `_` and `-`. Not stored when absent.",
    "check": "name",
}
LOCAL_ROOT_FIELD = {
    "name": "root",
    "type": "string",
    "required": False,
    "default": "",
    "description": "Absolute directory the backend exposes; it must lie "
                   "inside one of the server's allowed local roots. Empty "
                   "means the server's default local root.",
    "check": "absolute_path",
}
EXTENSIONS = {"local": [LOCAL_ROOT_FIELD]}

# Providers berth serves with an engine of its own (crate berth-engines,
# whose tests check this list); every other provider runs in rclone.
NATIVE = {
    "memory", "local", "s3", "azureblob", "google-cloud-storage",
    "alias", "union", "combine", "chunker", "hasher", "cache",
}


def engine_field(slug):
    """The `engine` extension field of a provider rclone can serve:
    `native` (the default) or `rclone` where berth has an engine of its own,
    only `rclone` elsewhere."""
    native = slug in NATIVE
    field = {
        "name": "engine",
        "type": "string",
        "required": False,
        "default": "native" if native else "rclone",
        "description": "Which engine serves the backend: `native` (berth's "
                       "own driver, the default where there is one) or "
                       "`rclone` (a supervised rclone).",
        "allowed": ["native", "rclone"] if native else ["rclone"],
    }
    if not native:
        field["invalid_message"] = (
            "Invalid engine: this provider has no native engine; engine must "
            "be rclone")
    return field

# --------------------------------------------------------------- rclone ----
# slug -> rclone backend, where it is not the provider's backend_type.
RCLONE_TYPE = {
    # rclone keeps `tardigrade` only as a hidden alias of `storj`.
    "tardigrade": "storj",
    # berth's `ssh` is rclone's sftp backend.
    "ssh": "sftp",
}

# slug -> why rclone has no backend for it (shown by the API as a 400).
RCLONE_UNAVAILABLE = {
    "uptobox": "uptobox closed in 2023 and rclone removed its backend",
}


def not_an_option(reason):
    """An RCLONE_FIELDS rule: the field is not an rclone option."""
    return {"not_an_option": reason}


# Fields that are not the rclone option of their own name: field name (any
# provider) or (slug, field) -> the rclone option's name (a rename), or
# not_an_option(reason). Every spec field is, in rclone 1.75, the option of
# the same name, so only berth's extension fields are here.
RCLONE_FIELDS = {
    "name": not_an_option(
        "berth's reference name of the backend (the `name` of `name:path` "
        "remotes), not an rclone setting"),
    "engine": not_an_option("berth's choice of engine, not an rclone setting"),
    ("local", "root"): not_an_option(
        "the directory the backend exposes: it is the path of the rclone "
        "remote (`:local:<root>`), not an option"),
}

# How a stored value is written for rclone, by (berth kind, rclone type);
# "enum" stands for rclone's choice types (`mtime|atime|btime|ctime`).
#   plain     as stored: strings as given, bools true/false, ints decimal
#   duration  seconds with an `s` suffix (`ms` when fractional), `off`
#   size      bytes with a `B` suffix (rclone reads a bare number as KiB),
#             `off`
RCLONE_FORMS = {
    ("string", "string"): "plain",
    ("string", "enum"): "plain",
    ("string", "Encoding"): "plain",  # a number or comma-separated names
    ("string", "Tristate"): "plain",  # "true"/"false"; null is unset
    ("string", "Bits"): "plain",  # comma-separated names
    ("string", "Time"): "plain",
    ("string", "CommaSepList"): "plain",
    ("string", "SpaceSepList"): "plain",
    ("bool", "bool"): "plain",
    ("int", "int"): "plain",
    ("size", "SizeSuffix"): "size",
    # azureblob upload_cutoff: deprecated, rclone keeps it as an unused
    # string.
    ("size", "string"): "plain",
    ("duration", "Duration"): "duration",
    # quatrix effective_upload_time: rclone parses the string as a Go
    # duration, which knows neither bare numbers nor days.
    ("duration", "string"): "duration",
    # union cache_time: rclone wants the plain number of seconds.
    ("duration", "int"): "plain",
}

# (slug, field) -> (winner, reason) for every optional field whose default
# differs from rclone's. "berth": the catalog default is sent to rclone
# (`send_default`); "rclone": a value equal to the catalog default is left
# out, so rclone's default applies.
RCLONE_DEFAULTS = {
    ("chunker", "name_format"): (
        "berth", "berth's chunker writes *.hoody-vfs_chunk.### (the spec's "
        "default); rclone's default is *.rclone_chunk.###"),
    ("hasher", "max_age"): (
        "berth", "0 disables the checksum cache (the spec's default); "
        "rclone's default is off, which caches forever"),
    ("pikpak", "upload_concurrency"): (
        "berth", "the spec's default is 5, rclone 1.75's is 4"),
    ("ftp", "user"): (
        "berth", "rclone falls back to the OS user running the engine; "
        "anonymous is FTP's convention"),
    ("cache", "chunk_path"): (
        "rclone", "the spec's /home/user/.cache/hoody-vfs path is a "
        "placeholder; rclone keeps chunks under its cache directory"),
    ("cache", "db_path"): (
        "rclone", "the spec's /home/user/.cache/hoody-vfs path is a "
        "placeholder; rclone keeps the database under its cache directory"),
    ("local", "time_type"): (
        "rclone", "the spec's \"0\" is rclone's first choice, mtime, which "
        "rclone refuses to parse as \"0\""),
    ("drive", "pacer_min_sleep"): (
        "rclone", "whole seconds cannot hold rclone's 100ms: the spec's 0 is "
        "it rounded down, and sending 0 would turn the pacer off"),
    ("dropbox", "pacer_min_sleep"): (
        "rclone", "whole seconds cannot hold rclone's 10ms: the spec's 0 is "
        "it rounded down, and sending 0 would turn the pacer off"),
    ("jottacloud", "encoding"): (
        "rclone", "the spec has an older rclone default; rclone 1.75 also "
        "encodes Percent"),
    ("seafile", "encoding"): (
        "rclone", "the spec has an older rclone default; rclone 1.75 also "
        "encodes Dot"),
    ("protondrive", "app_version"): (
        "rclone", "Proton wants a client version it knows; when the option "
        "is empty rclone sends a compliant one derived from its own"),
}

# (slug, field) -> {catalog value: rclone value}, for values rclone names
# differently.
RCLONE_VALUES = {
    ("s3", "provider"): {
        # The spec's rename of rclone's `Rclone` preset (rclone serve s3).
        "Hoody-VFS": "Rclone",
        # Not an rclone 1.75 preset (rclone logs "not known"); Other is its
        # generic S3 profile.
        "StackPath": "Other",
    },
}


def fail(message):
    sys.exit(f"gen_catalog: {message}")


def flag_class(slug, field):
    name, ftype = field["name"], field["type"]
    if (slug, name) in FLAG_OVERRIDES:
        return FLAG_OVERRIDES[(slug, name)]
    if ftype != "string":
        return "plain"
    tables = [("secret", SECRET), ("credential", CREDENTIAL),
              ("identity", IDENTITY), ("plain", PLAIN)]
    hits = [cls for cls, table in tables if name in table]
    if len(hits) != 1:
        fail(f"string field '{name}' ({slug}) must be in exactly one flag "
             f"table, found in {hits or 'none'}")
    return hits[0]


def kind_of(slug, field):
    name, ftype = field["name"], field["type"]
    if ftype == "boolean":
        return "bool"
    if name in DURATION:
        return "duration"
    if ftype == "integer":
        return "int"
    if name in SIZE:
        return "size"
    return "string"


def enrich_field(slug, field, extension=False):
    out = dict(field)
    cls = flag_class(slug, field)
    out["kind"] = kind_of(slug, field)
    allowed, is_list = ALLOWED.get((slug, field["name"]), (None, False))
    if allowed is not None:
        out["allowed"] = list(allowed)
    out["list"] = is_list
    out["secret"] = cls == "secret"
    out["credential"] = cls in ("secret", "credential")
    out["identity"] = cls == "identity"
    out["extension"] = extension
    out["off"] = (slug, field["name"]) in OFF
    check = field.get("check") or CHECKS.get((slug, field["name"]))
    if check:
        out["check"] = check
    else:
        out.pop("check", None)
    msg = INVALID_MESSAGE.get((slug, field["name"]))
    if msg:
        out["invalid_message"] = msg
    return out


# ------------------------------------------------------- rclone mapping ----
def write_snapshot(path):
    """Writes the trimmed option table of the installed rclone to `path`:
    per backend and option its type, IsPassword and default (rclone's
    Default; for choice types its name). Defaults naming the current user's
    home or login are written as `~` and `$USER`, so the file does not
    depend on who ran this."""
    def run(*args):
        try:
            return subprocess.run(["rclone", *args], check=True, text=True,
                                  capture_output=True).stdout
        except (OSError, subprocess.CalledProcessError) as e:
            fail(f"cannot run rclone {' '.join(args)}: {e}")

    version = run("version").split()[1]
    home, user = os.path.expanduser("~"), getpass.getuser()

    def portable(value):
        if not isinstance(value, str):
            return value
        if value == user:
            return "$USER"
        if value == home or value.startswith(home + "/"):
            return "~" + value[len(home):]
        return value

    backends = {}
    for b in sorted(json.loads(run("config", "providers")),
                    key=lambda b: b["Name"]):
        options = {}
        for o in b["Options"]:
            default = o["DefaultStr"] if "|" in o["Type"] else o["Default"]
            entry = {"type": o["Type"], "password": o["IsPassword"],
                     "default": portable(default)}
            # koofr lists `password` once per sub-provider, all alike.
            if options.setdefault(o["Name"], entry) != entry:
                fail(f"rclone {b['Name']} has differing options "
                     f"'{o['Name']}'")
        backends[b["Name"]] = options
    lines = [
        "{",
        ' "$comment": ' + json.dumps(
            "Generated by scripts/gen_catalog.py --rclone-snapshot from "
            "`rclone config providers`: per backend and option its type, "
            "IsPassword and default. Do not edit."),
        ' "rclone_version": ' + json.dumps(version) + ",",
        ' "backends": {',
    ]
    for i, (name, options) in enumerate(backends.items()):
        lines.append(f"  {json.dumps(name)}: {{")
        for j, (oname, entry) in enumerate(options.items()):
            comma = "," if j + 1 < len(options) else ""
            lines.append(f"   {json.dumps(oname)}: "
                         f"{json.dumps(entry, ensure_ascii=False)}{comma}")
        lines.append("  }" + ("," if i + 1 < len(backends) else ""))
    lines += [" }", "}"]
    lines[1] += ","
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"gen_catalog: wrote rclone {version}'s {len(backends)} backends "
          f"to {path}")


def size_bytes(text):
    """Bytes of a size as the catalog writes it (`5242880`, `32Ki`, `-1`)."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmgtp]?)(?:i?b?)", text.strip(),
                     re.IGNORECASE)
    if text.strip() in ("-1", "off"):
        return -1
    if not m:
        return None
    power = "_kmgtp".index(m.group(2).lower() or "_")
    return int(float(m.group(1)) * 1024 ** power)


def same_default(default, option):
    """Whether a catalog default (list defaults comma-joined) is rclone's."""
    rtype, rdefault = option["type"], option["default"]
    if rtype == "Tristate":
        return default is None and not rdefault["Valid"]
    if default is None:
        return rdefault in ("", [], None)
    if rtype == "bool" or isinstance(default, bool):
        return default is rdefault
    if rtype == "Duration":
        return isinstance(default, int) and default * 10**9 == rdefault
    if rtype == "SizeSuffix":
        return size_bytes(str(default)) == rdefault
    if rtype in ("Encoding", "Bits"):
        return str(default) == str(rdefault)
    if rtype == "CommaSepList":
        return default == ",".join(rdefault or [])
    if rtype == "SpaceSepList":
        return default == " ".join(rdefault or [])
    return default == rdefault


def rclone_field(slug, backend, options, field):
    """The `rclone` entry of an enriched field of a provider whose rclone
    backend `backend` has `options` (from the snapshot)."""
    name, at = field["name"], f"{slug}.{field['name']}"
    rule = RCLONE_FIELDS.get((slug, name), RCLONE_FIELDS.get(name, name))
    if isinstance(rule, dict):
        return rule
    option = options.get(rule)
    if option is None:
        fail(f"{at}: rclone's {backend} has no option '{rule}'; decide it "
             f"in RCLONE_FIELDS")
    rtype = "enum" if "|" in option["type"] else option["type"]
    form = RCLONE_FORMS.get((field["kind"], rtype))
    if form is None:
        fail(f"{at}: no RCLONE_FORMS entry for kind {field['kind']} and "
             f"rclone type {rtype}")
    if option["password"] and not field["secret"]:
        fail(f"{at}: rclone obscures it but the catalog does not keep it "
             f"secret")
    default = field["default"]
    if isinstance(default, list):
        default = ",".join(default)
    differs = not field["required"] and not same_default(default, option)
    decision = RCLONE_DEFAULTS.get((slug, name))
    if differs != (decision is not None):
        what = "decide it in" if differs else "remove it from"
        fail(f"{at}: default {default!r}, rclone's {option['default']!r}: "
             f"{what} RCLONE_DEFAULTS")
    mapping = {"name": rule, "obscure": option["password"], "form": form,
               "send_default": bool(decision) and decision[0] == "berth"}
    values = RCLONE_VALUES.get((slug, name))
    if values:
        unknown = set(values) - set(field.get("allowed") or values)
        if form != "plain" or unknown:
            fail(f"{at}: RCLONE_VALUES needs a plain field with these "
                 f"values allowed ({sorted(unknown)})")
        mapping["values"] = values
    return {"option": mapping}


def add_rclone(provider, snapshot):
    """Adds rclone_type or rclone_unavailable to an enriched provider, and
    the `rclone` entry to each of its fields."""
    slug = provider["slug"]
    backend = RCLONE_TYPE.get(slug, provider["backend_type"])
    if slug in RCLONE_UNAVAILABLE:
        if backend in snapshot:
            fail(f"{slug}: rclone has a {backend} backend, remove it from "
                 f"RCLONE_UNAVAILABLE")
        provider["rclone_unavailable"] = RCLONE_UNAVAILABLE[slug]
        return
    if backend not in snapshot:
        fail(f"{slug}: rclone has no backend '{backend}'; decide it in "
             f"RCLONE_TYPE or RCLONE_UNAVAILABLE")
    provider["rclone_type"] = backend
    seen = {}
    for field in provider["fields"]:
        field["rclone"] = rclone_field(slug, backend, snapshot[backend], field)
        option = field["rclone"].get("option", {}).get("name")
        if option is None:
            continue
        if option in seen:
            fail(f"{slug}: fields {seen[option]} and {field['name']} are "
                 f"both rclone's {option}")
        seen[option] = field["name"]


# ----------------------------------------------------------------- main ----
def main():
    args = sys.argv[1:]
    refresh = "--rclone-snapshot" in args
    args = [a for a in args if a != "--rclone-snapshot"]
    spec_path = args[0] if len(args) > 0 else SPEC
    out_path = args[1] if len(args) > 1 else OUT
    if refresh:
        write_snapshot(SNAPSHOT)
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    with open(SNAPSHOT, encoding="utf-8") as f:
        snapshot = json.load(f)["backends"]

    sources = spec["providers"] + EXTRA_PROVIDERS
    slugs = [p["slug"] for p in sources]
    if len(set(slugs)) != len(slugs):
        fail("a provider beyond the spec clashes with a spec slug")
    names = {(p["slug"], fl["name"]) for p in sources for fl in p["fields"]}
    names |= {(slug, ext["name"]) for slug, exts in EXTENSIONS.items()
              for ext in exts}
    names |= {(slug, NAME_FIELD["name"]) for slug in slugs}
    names |= {(slug, "engine") for slug in slugs
              if slug not in RCLONE_UNAVAILABLE}
    for table in (FLAG_OVERRIDES, ALLOWED, CHECKS, INVALID_MESSAGE, OFF,
                  RCLONE_DEFAULTS, RCLONE_VALUES):
        for key in table:
            if key not in names:
                fail(f"rule for unknown field {key}")
    for key in RCLONE_FIELDS:
        if key not in names and key not in {n for _, n in names}:
            fail(f"RCLONE_FIELDS rule for unknown field {key}")
    for table in (EXTENSIONS, RCLONE_TYPE, RCLONE_UNAVAILABLE):
        for slug in table:
            if slug not in slugs:
                fail(f"rule for unknown provider {slug}")

    providers = []
    for p in sources:
        slug = p["slug"]
        extra = any(p is e for e in EXTRA_PROVIDERS)
        q = dict(p)
        q.setdefault("success_message", None)
        q["extension"] = extra
        fields = [enrich_field(slug, fl) for fl in p["fields"]]
        exts = [NAME_FIELD] + EXTENSIONS.get(slug, [])
        if slug not in RCLONE_UNAVAILABLE:
            exts.append(engine_field(slug))
        for ext in exts:
            if any(fl["name"] == ext["name"] for fl in p["fields"]):
                fail(f"extension '{ext['name']}' clashes with a field of "
                     f"{slug}")
            fields.append(enrich_field(slug, ext, extension=True))
        q["fields"] = fields
        add_rclone(q, snapshot)
        providers.append(q)

    doc = {
        "$comment": "Generated by scripts/gen_catalog.py from "
                    "shared/spec/providers.json and "
                    "storage/catalog/rclone-options.json; edit the rule "
                    "tables there, not this file.",
        "providers": providers,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(len(p["fields"]) for p in providers)
    print(f"gen_catalog: wrote {len(providers)} providers "
          f"({len(EXTRA_PROVIDERS)} beyond the spec), {total} fields "
          f"to {out_path}")


if __name__ == "__main__":
    main()
