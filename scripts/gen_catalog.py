#!/usr/bin/env python3
"""Build berth's enriched provider catalog from the spec's provider tables.

    scripts/gen_catalog.py [SPEC_JSON] [OUT_JSON]

Defaults: ../shared/spec/providers.json (next to the repository) and
storage/catalog/providers.json. The output keeps every spec key of every
provider and field unchanged (slug, category, backend_type, response_type,
summary, success_message, fields[name/type/required/default/description],
example_request, example_errors) and adds, per field:

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

Every string field name of the spec must appear in exactly one of the flag
tables below (SECRET, CREDENTIAL, IDENTITY, PLAIN), so a new spec field makes
this script fail until someone decides what it is. Boolean and integer fields
are never secret, credential or identity.

Run it after changing the spec file or a rule table; the Rust unit tests
(`cargo test -p berth-storage catalog`) check the result against the spec.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SPEC = os.path.join(os.path.dirname(REPO), "shared", "spec", "providers.json")
OUT = os.path.join(REPO, "storage", "catalog", "providers.json")

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
    "file_password", "folder_password", "key", "library_key",
    "link_password", "mailbox_password", "pass", "passphrase", "password",
    "permanent_token", "plex_password", "plex_token", "private_access_key",
    "private_key", "refresh_token",
    "sas_url",  # the URL embeds the SAS signature
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
    "config_profile", "device_id", "msi_client_id", "msi_mi_res_id",
    "msi_object_id", "profile", "public_key", "service_account_file",
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
    "hash_memory_limit", "hash_type", "hashes", "impersonate",
    "import_formats", "library", "link_scope", "link_type",
    "list_url_encode", "location", "location_constraint", "max_stream_size",
    "maximal_summary_chunk_size", "md5_memory_limit", "meta_format",
    "metadata_labels", "metadata_owner", "metadata_permissions", "might_gzip",
    "min_free_space", "minimal_chunk_size", "mountid",
    "name",  # berth extension: reference name of the backend
    "name_format",
    "object_acl", "owned_by", "plex_insecure", "plex_url", "plex_username",
    "protocol", "provider", "proxy", "public_access", "quirks", "remote",
    "resource_key",
    "root",  # berth extension: local root directory
    "root_folder_id", "root_folder_slug", "root_id",
    "root_namespace", "root_prefix", "scope", "scope_access", "scope_role",
    "sdk_log_mode", "search_policy", "server_side_encryption", "share_name",
    "shared_folder", "speedup_file_patterns", "speedup_max_disk",
    "speedup_max_memory", "sse_customer_algorithm", "sse_kms_key_id",
    "storage_class", "storage_policy", "storage_tier", "sts_endpoint",
    "team_drive", "test_mode", "time_type", "tmp_upload_path", "token_url",
    "transactions", "upload_cutoff", "upload_prefix", "upload_preset",
    "upload_resume_limit", "upload_tags", "upstreams",
    "use_accept_encoding_gzip", "use_already_exists", "use_multipart_etag",
    "use_multipart_uploads", "use_segments_container",
    "use_unsigned_payload", "user_agent", "user_project",
    "v2_download_min_size", "version", "version_at",
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
    "speedup_max_disk", "speedup_max_memory", "upload_cutoff",
    "upload_resume_limit", "v2_download_min_size",
}
DURATION = {  # integer seconds (or the string "4s" for quatrix)
    "batch_commit_timeout", "batch_timeout", "cache_time",
    "chunk_clean_interval", "copy_timeout", "db_wait_time",
    "download_auth_duration", "effective_upload_time",
    "eventually_consistent_delay", "info_age", "max_age",
    "memory_pool_flush_time", "pacer_min_sleep", "tmp_wait_time",
    "wait_archive",
}
OFF = {("drive", "v2_download_min_size"), ("hasher", "max_age")}

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
        sys.exit(f"gen_catalog: string field '{name}' ({slug}) must be in "
                 f"exactly one flag table, found in {hits or 'none'}")
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


def main():
    spec_path = sys.argv[1] if len(sys.argv) > 1 else SPEC
    out_path = sys.argv[2] if len(sys.argv) > 2 else OUT
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)

    slugs = {p["slug"] for p in spec["providers"]}
    names = {(p["slug"], fl["name"]) for p in spec["providers"]
             for fl in p["fields"]}
    for table in (FLAG_OVERRIDES, ALLOWED, CHECKS, INVALID_MESSAGE):
        for key in table:
            if key not in names:
                sys.exit(f"gen_catalog: rule for unknown field {key}")
    for key in OFF:
        if key not in names:
            sys.exit(f"gen_catalog: rule for unknown field {key}")
    for slug in EXTENSIONS:
        if slug not in slugs:
            sys.exit(f"gen_catalog: extension for unknown provider {slug}")

    providers = []
    for p in spec["providers"]:
        slug = p["slug"]
        q = dict(p)
        q.setdefault("success_message", None)
        fields = [enrich_field(slug, fl) for fl in p["fields"]]
        for ext in [NAME_FIELD] + EXTENSIONS.get(slug, []):
            if any(fl["name"] == ext["name"] for fl in p["fields"]):
                sys.exit(f"gen_catalog: extension '{ext['name']}' clashes "
                         f"with a spec field of {slug}")
            fields.append(enrich_field(slug, ext, extension=True))
        q["fields"] = fields
        providers.append(q)

    doc = {
        "$comment": "Generated by scripts/gen_catalog.py from "
                    "shared/spec/providers.json; edit the rule tables there, "
                    "not this file.",
        "providers": providers,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(len(p["fields"]) for p in providers)
    print(f"gen_catalog: wrote {len(providers)} providers, {total} fields "
          f"to {out_path}")


if __name__ == "__main__":
    main()
