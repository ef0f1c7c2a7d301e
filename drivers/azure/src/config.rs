//! Reads a validated `azureblob` config into [`Settings`]: the endpoint, the
//! authentication method and the driver options. Everything the driver cannot
//! honour is refused here, naming the option.

use crate::sas::{Clock, SasSigner, SasSource};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::Url;
use azure_storage_blob::models::{AccessTier, DeleteSnapshotsOptionType, PublicAccessType};
use base64::Engine;
use berth_storage::catalog::Config;
use berth_storage::units::parse_size;
use berth_storage::{ErrorKind, Result, StorageError};
use std::path::Path;
use std::sync::Arc;

/// Azurite's well-known account (`use_emulator`).
pub(crate) const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented, public key for [`EMULATOR_ACCOUNT`].
pub(crate) const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default blob endpoint.
pub(crate) const EMULATOR_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";
/// rclone's default `encoding` for azureblob, the only value accepted.
const DEFAULT_ENCODING: &str = "21078018";
/// Azure's largest page of a listing.
pub(crate) const MAX_LIST_CHUNK: i64 = 5000;
/// Azure's largest block (4000 MiB).
const MAX_BLOCK: u64 = 4000 * 1024 * 1024;

/// How requests are authorized.
#[derive(Clone)]
pub(crate) enum Auth {
    /// A SAS token on every request (account key, `sas_url`, emulator).
    Sas(SasSource),
    /// An Entra ID bearer token.
    Token(Arc<dyn TokenCredential>),
}

/// Which authentication method a config chose (for messages and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Key,
    SasUrl,
    Emulator,
    ClientSecret,
    ServicePrincipalFile,
    ManagedIdentity,
    AzureCli,
    Environment,
}

/// Everything the driver needs from a config.
pub(crate) struct Settings {
    /// The blob service URL (no query, no trailing `/` after a path).
    pub service_url: Url,
    /// The container a container-level `sas_url` is limited to.
    pub container: Option<String>,
    /// The authentication method.
    pub method: Method,
    /// How requests are authorized.
    pub auth: Auth,
    /// Driver behaviour.
    pub options: Options,
}

/// Driver behaviour from the config.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub access_tier: Option<AccessTier>,
    pub chunk_size: u64,
    pub upload_cutoff: u64,
    pub upload_concurrency: usize,
    pub list_chunk: i32,
    pub directory_markers: bool,
    pub no_check_container: bool,
    pub delete_snapshots: Option<DeleteSnapshotsOptionType>,
    pub public_access: Option<PublicAccessType>,
    pub archive_tier_delete: bool,
    pub disable_checksum: bool,
    pub no_head_object: bool,
}

fn text<'a>(config: &'a Config, key: &str) -> &'a str {
    config
        .get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .trim()
}

fn flag(config: &Config, key: &str) -> bool {
    config.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn int(config: &Config, key: &str) -> Option<i64> {
    config.get(key).and_then(|v| v.as_i64())
}

fn invalid(message: impl Into<String>) -> StorageError {
    StorageError::invalid_config(message)
}

fn unsupported(message: impl Into<String>) -> StorageError {
    StorageError::unsupported(message)
}

fn size(config: &Config, key: &str) -> Result<Option<u64>> {
    match text(config, key) {
        "" => Ok(None),
        value => parse_size(value)
            .map(Some)
            .map_err(|e| invalid(format!("Invalid {key}: {e}"))),
    }
}

/// Refuses deprecated or unsupported options that are set to anything but
/// their default.
fn refuse_unsupported(config: &Config) -> Result<()> {
    for key in ["client_certificate_path", "client_certificate_password"] {
        if !text(config, key).is_empty() {
            return Err(unsupported(format!(
                "{key}: certificate authentication is not supported by the native azureblob driver; use client_secret, service_principal_file, use_msi, use_az or env_auth"
            )));
        }
    }
    if flag(config, "client_send_certificate_chain") {
        return Err(unsupported(
            "client_send_certificate_chain: certificate authentication is not supported by the native azureblob driver",
        ));
    }
    for key in ["username", "password"] {
        if !text(config, key).is_empty() {
            return Err(unsupported(format!(
                "{key}: username/password authentication is not supported by the native azureblob driver (Microsoft's SDK has no such credential); use a service principal, managed identity, the Azure CLI, a key or a SAS URL"
            )));
        }
    }
    let encoding = text(config, "encoding");
    if !encoding.is_empty() && encoding != DEFAULT_ENCODING {
        return Err(unsupported(format!(
            "encoding: only the default ({DEFAULT_ENCODING}) is supported; the native driver stores names as given and refuses names Azure would change"
        )));
    }
    if flag(config, "memory_pool_use_mmap") {
        return Err(unsupported(
            "memory_pool_use_mmap: deprecated and not supported (the driver keeps no memory pool)",
        ));
    }
    if int(config, "memory_pool_flush_time").is_some_and(|t| t != 60) {
        return Err(unsupported(
            "memory_pool_flush_time: deprecated and not supported (the driver keeps no memory pool)",
        ));
    }
    Ok(())
}

/// The driver options.
fn options(config: &Config) -> Result<Options> {
    let access_tier = match text(config, "access_tier").to_ascii_lowercase().as_str() {
        "" => None,
        "hot" => Some(AccessTier::Hot),
        "cool" => Some(AccessTier::Cool),
        "cold" => Some(AccessTier::Cold),
        "archive" => Some(AccessTier::Archive),
        other => {
            return Err(invalid(format!(
                "Invalid access_tier: '{other}' (hot, cool, cold or archive)"
            )))
        }
    };
    let chunk_size = size(config, "chunk_size")?.unwrap_or(4 * 1024 * 1024);
    if chunk_size == 0 || chunk_size > MAX_BLOCK {
        return Err(invalid(
            "Invalid chunk_size: must be between 1 byte and 4000 MiB (Azure's block size limit)",
        ));
    }
    let upload_cutoff = size(config, "upload_cutoff")?.unwrap_or(chunk_size);
    if upload_cutoff > 5000 * 1024 * 1024 {
        return Err(invalid(
            "Invalid upload_cutoff: must be at most 5000 MiB (Azure's single upload limit)",
        ));
    }
    let upload_concurrency = int(config, "upload_concurrency").unwrap_or(16);
    if !(1..=256).contains(&upload_concurrency) {
        return Err(invalid("Invalid upload_concurrency: must be 1 to 256"));
    }
    let list_chunk = int(config, "list_chunk").unwrap_or(MAX_LIST_CHUNK);
    if !(1..=MAX_LIST_CHUNK).contains(&list_chunk) {
        return Err(invalid("Invalid list_chunk: must be 1 to 5000"));
    }
    let delete_snapshots = match text(config, "delete_snapshots") {
        "" => None,
        "include" => Some(DeleteSnapshotsOptionType::Include),
        "only" => Some(DeleteSnapshotsOptionType::Only),
        other => {
            return Err(invalid(format!(
                "Invalid delete_snapshots: '{other}' (\"\", include or only)"
            )))
        }
    };
    let public_access = match text(config, "public_access") {
        "" => None,
        "blob" => Some(PublicAccessType::Blob),
        "container" => Some(PublicAccessType::Container),
        other => {
            return Err(invalid(format!(
                "Invalid public_access: '{other}' (\"\", blob or container)"
            )))
        }
    };
    Ok(Options {
        access_tier,
        chunk_size,
        upload_cutoff,
        upload_concurrency: upload_concurrency as usize,
        list_chunk: list_chunk as i32,
        directory_markers: flag(config, "directory_markers"),
        no_check_container: flag(config, "no_check_container"),
        delete_snapshots,
        public_access,
        archive_tier_delete: flag(config, "archive_tier_delete"),
        disable_checksum: flag(config, "disable_checksum"),
        no_head_object: flag(config, "no_head_object"),
    })
}

/// Parses a service endpoint, dropping a trailing `/` after a path.
fn parse_endpoint(field: &str, value: &str) -> Result<Url> {
    let mut url = Url::parse(value).map_err(|e| {
        invalid(format!(
            "Invalid {field}: not a URL ({e}); expected e.g. https://ACCOUNT.blob.core.windows.net"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "Invalid {field}: must be an http:// or https:// URL with a host"
        )));
    }
    if field == "endpoint" && url.query().is_some() {
        return Err(invalid(
            "Invalid endpoint: must not have a query (put a SAS token in sas_url)",
        ));
    }
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
    }
    Ok(url)
}

/// A `sas_url` split into service URL, optional container and token.
fn parse_sas_url(value: &str) -> Result<(Url, Option<String>, String)> {
    let url = Url::parse(value).map_err(|_| {
        invalid("Invalid sas_url: not a URL (expected https://ACCOUNT.blob.core.windows.net/[CONTAINER]?sv=...&sig=...)")
    })?;
    let token = url.query().unwrap_or_default().to_string();
    let has = |key: &str| url.query_pairs().any(|(k, _)| k == key);
    if !has("sig") {
        return Err(invalid(
            "Invalid sas_url: it has no SAS token (no sig parameter)",
        ));
    }
    let resource = url
        .query_pairs()
        .find(|(k, _)| k == "sr")
        .map(|(_, v)| v.into_owned());
    let mut service = parse_endpoint("sas_url", value)?;
    let container = match (resource.as_deref(), has("srt")) {
        (None, true) => None,
        (Some("c"), _) => {
            let name = service
                .path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    invalid("Invalid sas_url: a container SAS must name the container in its path")
                })?;
            if let Ok(mut segments) = service.path_segments_mut() {
                segments.pop();
            }
            Some(name)
        }
        _ => {
            return Err(invalid(
                "Invalid sas_url: must be an account SAS (srt=...) or a container SAS (sr=c)",
            ))
        }
    };
    Ok((service, container, token))
}

fn decode_key(key: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| invalid("Invalid key: the storage account key must be base64"))
}

/// The default public-cloud endpoint of `account`.
fn account_endpoint(config: &Config, what: &str) -> Result<Url> {
    let endpoint = text(config, "endpoint");
    if !endpoint.is_empty() {
        return parse_endpoint("endpoint", endpoint);
    }
    let account = text(config, "account");
    if account.is_empty() {
        return Err(invalid(format!(
            "Missing account: {what} needs the storage account name (or an endpoint)"
        )));
    }
    if !account
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(
            "Invalid account: storage account names are lowercase letters and digits",
        ));
    }
    parse_endpoint(
        "account",
        &format!("https://{account}.blob.core.windows.net"),
    )
}

/// The authentication methods a config selects, in a fixed order.
fn chosen_methods(config: &Config) -> Vec<Method> {
    let mut methods = Vec::new();
    if !text(config, "key").is_empty() {
        methods.push(Method::Key);
    }
    if !text(config, "sas_url").is_empty() {
        methods.push(Method::SasUrl);
    }
    if flag(config, "use_emulator") {
        methods.push(Method::Emulator);
    }
    if !text(config, "client_secret").is_empty() {
        methods.push(Method::ClientSecret);
    }
    if !text(config, "service_principal_file").is_empty() {
        methods.push(Method::ServicePrincipalFile);
    }
    if flag(config, "use_msi") {
        methods.push(Method::ManagedIdentity);
    }
    if flag(config, "use_az") {
        methods.push(Method::AzureCli);
    }
    if flag(config, "env_auth") {
        methods.push(Method::Environment);
    }
    methods
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Key => "key",
        Method::SasUrl => "sas_url",
        Method::Emulator => "use_emulator",
        Method::ClientSecret => "client_secret",
        Method::ServicePrincipalFile => "service_principal_file",
        Method::ManagedIdentity => "use_msi",
        Method::AzureCli => "use_az",
        Method::Environment => "env_auth",
    }
}

/// Refuses fields that only make sense with another method.
fn refuse_strays(config: &Config, method: Method) -> Result<()> {
    let uses_sp = method == Method::ClientSecret;
    if !uses_sp && !text(config, "client_id").is_empty() {
        return Err(invalid(
            "client_id is only used with client_secret and tenant (a service principal)",
        ));
    }
    if !matches!(method, Method::ClientSecret | Method::AzureCli)
        && !text(config, "tenant").is_empty()
    {
        return Err(invalid(
            "tenant is only used with client_id/client_secret or use_az",
        ));
    }
    if method != Method::ManagedIdentity {
        for key in ["msi_client_id", "msi_object_id", "msi_mi_res_id"] {
            if !text(config, key).is_empty() {
                return Err(invalid(format!("{key} is only used with use_msi")));
            }
        }
    }
    if matches!(method, Method::SasUrl) && !text(config, "endpoint").is_empty() {
        return Err(invalid(
            "endpoint and sas_url are both set: the SAS URL already names the endpoint",
        ));
    }
    Ok(())
}

/// A service principal from `az ad sp create-for-rbac` output
/// (`appId`, `password`, `tenant`).
fn service_principal_file(path: &str) -> Result<(String, String, String)> {
    let data = std::fs::read_to_string(Path::new(path)).map_err(|e| {
        invalid(format!(
            "service_principal_file: cannot read '{path}': {}",
            e.kind()
        ))
    })?;
    let value: serde_json::Value = serde_json::from_str(&data).map_err(|_| {
        invalid(format!(
            "service_principal_file: '{path}' is not JSON with appId, password and tenant"
        ))
    })?;
    let get = |k: &str| {
        value
            .get(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match (get("appId"), get("password"), get("tenant")) {
        (Some(app), Some(password), Some(tenant)) => Ok((app, password, tenant)),
        _ => Err(if get("fileWithCertAndPrivateKey").is_some() {
            unsupported("service_principal_file: certificate service principals are not supported")
        } else {
            invalid(format!(
                "service_principal_file: '{path}' needs appId, password and tenant"
            ))
        }),
    }
}

fn credential_error(field: &str, err: azure_core::Error) -> StorageError {
    invalid(format!(
        "{field}: {}",
        crate::errors::scrub(&err.to_string())
    ))
}

fn client_secret(
    tenant: &str,
    client_id: &str,
    secret: &str,
    field: &str,
) -> Result<Arc<dyn TokenCredential>> {
    azure_identity::ClientSecretCredential::new(
        tenant,
        client_id.to_string(),
        Secret::new(secret.to_string()),
        None,
    )
    .map(|c| c as Arc<dyn TokenCredential>)
    .map_err(|e| credential_error(field, e))
}

/// The Entra ID credential of a token method.
fn token_credential(config: &Config, method: Method) -> Result<Arc<dyn TokenCredential>> {
    match method {
        Method::ClientSecret => {
            let (tenant, client_id) = (text(config, "tenant"), text(config, "client_id"));
            if tenant.is_empty() || client_id.is_empty() {
                return Err(invalid(
                    "client_secret needs client_id and tenant (a service principal)",
                ));
            }
            client_secret(
                tenant,
                client_id,
                text(config, "client_secret"),
                "client_secret",
            )
        }
        Method::ServicePrincipalFile => {
            let (app, password, tenant) =
                service_principal_file(text(config, "service_principal_file"))?;
            client_secret(&tenant, &app, &password, "service_principal_file")
        }
        Method::ManagedIdentity => {
            use azure_identity::{ManagedIdentityCredentialOptions, UserAssignedId};
            let ids: Vec<UserAssignedId> = [
                (
                    "msi_client_id",
                    UserAssignedId::ClientId as fn(String) -> UserAssignedId,
                ),
                ("msi_object_id", UserAssignedId::ObjectId),
                ("msi_mi_res_id", UserAssignedId::ResourceId),
            ]
            .into_iter()
            .filter(|(key, _)| !text(config, key).is_empty())
            .map(|(key, make)| make(text(config, key).to_string()))
            .collect();
            if ids.len() > 1 {
                return Err(invalid(
                    "use_msi: set at most one of msi_client_id, msi_object_id and msi_mi_res_id",
                ));
            }
            let options = ManagedIdentityCredentialOptions {
                user_assigned_id: ids.into_iter().next(),
                ..Default::default()
            };
            azure_identity::ManagedIdentityCredential::new(Some(options))
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| credential_error("use_msi", e))
        }
        Method::AzureCli => {
            let tenant = text(config, "tenant");
            let options = azure_identity::AzureCliCredentialOptions {
                tenant_id: (!tenant.is_empty()).then(|| tenant.to_string()),
                ..Default::default()
            };
            azure_identity::AzureCliCredential::new(Some(options))
                .map(|c| c as Arc<dyn TokenCredential>)
                .map_err(|e| credential_error("use_az", e))
        }
        Method::Environment => environment_credential(&|k| std::env::var(k).ok()),
        Method::Key | Method::SasUrl | Method::Emulator => {
            unreachable!("not a token method")
        }
    }
}

/// `env_auth`: a service principal from `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`
/// and `AZURE_CLIENT_SECRET`; else workload identity when
/// `AZURE_FEDERATED_TOKEN_FILE` is set; else the managed identity (with
/// `AZURE_CLIENT_ID` as the user-assigned identity when set).
fn environment_credential(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenCredential>> {
    let get = |k: &str| var(k).filter(|v| !v.is_empty());
    if let (Some(tenant), Some(client), Some(secret)) = (
        get("AZURE_TENANT_ID"),
        get("AZURE_CLIENT_ID"),
        get("AZURE_CLIENT_SECRET"),
    ) {
        return client_secret(&tenant, &client, &secret, "env_auth");
    }
    if get("AZURE_FEDERATED_TOKEN_FILE").is_some() {
        return azure_identity::WorkloadIdentityCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>)
            .map_err(|e| credential_error("env_auth", e));
    }
    let options = azure_identity::ManagedIdentityCredentialOptions {
        user_assigned_id: get("AZURE_CLIENT_ID").map(azure_identity::UserAssignedId::ClientId),
        ..Default::default()
    };
    azure_identity::ManagedIdentityCredential::new(Some(options))
        .map(|c| c as Arc<dyn TokenCredential>)
        .map_err(|e| credential_error("env_auth", e))
}

/// Reads `config` into [`Settings`]; `clock` dates account SAS tokens.
pub(crate) fn settings(config: &Config, clock: Arc<dyn Clock>) -> Result<Settings> {
    refuse_unsupported(config)?;
    let options = options(config)?;
    let methods = chosen_methods(config);
    let method = match methods.as_slice() {
        [one] => *one,
        [] => {
            return Err(invalid(
                "No credentials: set account and key, sas_url, use_emulator, or an Entra ID method (client_id/client_secret/tenant, service_principal_file, use_msi, use_az, env_auth)",
            ))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|m| method_name(*m)).collect();
            return Err(invalid(format!(
                "Choose one authentication method: {} are all set",
                names.join(", ")
            )));
        }
    };
    refuse_strays(config, method)?;
    let (service_url, container, auth) = match method {
        Method::Key => {
            let account = text(config, "account");
            if account.is_empty() {
                return Err(invalid(
                    "Missing account: key needs the storage account name",
                ));
            }
            let url = account_endpoint(config, "key")?;
            let signer = SasSigner::new(
                account.to_string(),
                decode_key(text(config, "key"))?,
                url.scheme() == "https",
                clock,
            );
            (url, None, Auth::Sas(SasSource::Signer(Arc::new(signer))))
        }
        Method::Emulator => {
            let account = text(config, "account");
            if !account.is_empty() && account != EMULATOR_ACCOUNT {
                return Err(invalid(format!(
                    "use_emulator uses the account {EMULATOR_ACCOUNT}; leave account empty"
                )));
            }
            let endpoint = match text(config, "endpoint") {
                "" => EMULATOR_ENDPOINT,
                given => given,
            };
            let url = parse_endpoint("endpoint", endpoint)?;
            let signer = SasSigner::new(
                EMULATOR_ACCOUNT.to_string(),
                decode_key(EMULATOR_KEY)?,
                false,
                clock,
            );
            (url, None, Auth::Sas(SasSource::Signer(Arc::new(signer))))
        }
        Method::SasUrl => {
            let (url, container, token) = parse_sas_url(text(config, "sas_url"))?;
            (url, container, Auth::Sas(SasSource::Fixed(Arc::new(token))))
        }
        token_method => {
            let url = account_endpoint(config, method_name(token_method))?;
            if url.scheme() != "https" {
                return Err(invalid(format!(
                    "{}: Entra ID authentication needs an https:// endpoint",
                    method_name(token_method)
                )));
            }
            (
                url,
                None,
                Auth::Token(token_credential(config, token_method)?),
            )
        }
    };
    if let Some(name) = &container {
        crate::paths::check_container_name(name).map_err(|e| {
            StorageError::new(
                ErrorKind::InvalidConfig,
                format!("Invalid sas_url: {}", e.message),
            )
        })?;
    }
    Ok(Settings {
        service_url,
        container,
        method,
        auth,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sas::SystemClock;
    use serde_json::json;

    fn config(value: serde_json::Value) -> Config {
        let provider = berth_storage::catalog::catalog().get("azureblob").unwrap();
        provider.validate_create(&value).unwrap()
    }

    fn build(value: serde_json::Value) -> Result<Settings> {
        settings(&config(value), Arc::new(SystemClock))
    }

    fn refused(value: serde_json::Value) -> StorageError {
        match build(value) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn key_uses_the_account_endpoint() {
        let s = build(json!({"account": "acct", "key": EMULATOR_KEY})).unwrap();
        assert_eq!(s.method, Method::Key);
        assert_eq!(
            s.service_url.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        let s = build(json!({"account": "devstoreaccount1", "key": EMULATOR_KEY, "endpoint": "http://127.0.0.1:10000/devstoreaccount1/"})).unwrap();
        assert_eq!(
            s.service_url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(s.options.chunk_size, 4 * 1024 * 1024);
        assert_eq!(s.options.upload_cutoff, 4 * 1024 * 1024);
        assert_eq!(s.options.list_chunk, 5000);
    }

    #[test]
    fn emulator_defaults() {
        let s = build(json!({"use_emulator": true})).unwrap();
        assert_eq!(s.method, Method::Emulator);
        assert_eq!(s.service_url.as_str(), EMULATOR_ENDPOINT);
        let e = refused(json!({"use_emulator": true, "key": EMULATOR_KEY, "account": "x"}));
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("key, use_emulator"), "{}", e.message);
    }

    #[test]
    fn sas_urls_of_accounts_and_containers() {
        let s = build(json!({"sas_url": "https://acct.blob.core.windows.net/?sv=2025-11-05&ss=b&srt=sco&sp=rl&sig=abc"})).unwrap();
        assert_eq!(
            s.service_url.as_str(),
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(s.container, None);
        let s = build(json!({"sas_url": "http://127.0.0.1:10000/devstoreaccount1/photos?sv=2025-11-05&sr=c&sp=rl&sig=abc"})).unwrap();
        assert_eq!(
            s.service_url.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(s.container.as_deref(), Some("photos"));
        let e = refused(json!({"sas_url": "https://a.blob.core.windows.net/c/blob?sr=b&sig=abc"}));
        assert!(e.message.contains("account SAS"), "{}", e.message);
        let e = refused(json!({"sas_url": "https://a.blob.core.windows.net/c?sr=c"}));
        assert!(e.message.contains("no SAS token"), "{}", e.message);
    }

    #[test]
    fn missing_or_conflicting_credentials_are_refused() {
        let e = refused(json!({"account": "acct"}));
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.starts_with("No credentials"));
        let e = refused(json!({"key": EMULATOR_KEY}));
        assert!(e.message.contains("Missing account"), "{}", e.message);
        let e = refused(json!({"account": "acct", "key": "not base64!"}));
        assert!(e.message.contains("base64") && !e.message.contains("not base64!"));
        let e = refused(json!({"account": "acct", "key": EMULATOR_KEY, "client_id": "x"}));
        assert!(e.message.contains("client_id"), "{}", e.message);
        let e = refused(json!({"account": "acct", "key": EMULATOR_KEY, "msi_client_id": "x"}));
        assert!(e.message.contains("msi_client_id"), "{}", e.message);
    }

    #[test]
    fn unsupported_methods_name_the_option() {
        for (body, field) in [
            (
                json!({"account": "a", "client_certificate_path": "/c.pem", "client_id": "i", "tenant": "t"}),
                "client_certificate_path",
            ),
            (
                json!({"account": "a", "username": "u@x", "password": "p"}),
                "username",
            ),
            (
                json!({"account": "a", "key": EMULATOR_KEY, "client_send_certificate_chain": true}),
                "client_send_certificate_chain",
            ),
            (
                json!({"account": "a", "key": EMULATOR_KEY, "encoding": "Slash"}),
                "encoding",
            ),
            (
                json!({"account": "a", "key": EMULATOR_KEY, "memory_pool_use_mmap": true}),
                "memory_pool_use_mmap",
            ),
            (
                json!({"account": "a", "key": EMULATOR_KEY, "memory_pool_flush_time": 30}),
                "memory_pool_flush_time",
            ),
        ] {
            let e = refused(body);
            assert_eq!(e.kind, ErrorKind::Unsupported, "{field}");
            assert!(e.message.starts_with(field), "{field}: {}", e.message);
        }
    }

    #[test]
    fn token_methods_need_https_and_build_credentials() {
        let e = refused(
            json!({"client_id": "c", "client_secret": "s", "tenant": "t", "endpoint": "http://127.0.0.1:10000/devstoreaccount1"}),
        );
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        assert!(e.message.contains("https"), "{}", e.message);
        let s = build(
            json!({"account": "acct", "client_id": "c", "client_secret": "s", "tenant": "t"}),
        )
        .unwrap();
        assert_eq!(s.method, Method::ClientSecret);
        assert!(matches!(s.auth, Auth::Token(_)));
        let s = build(json!({"account": "acct", "use_msi": true, "msi_client_id": "id"})).unwrap();
        assert_eq!(s.method, Method::ManagedIdentity);
        let e = refused(
            json!({"account": "acct", "use_msi": true, "msi_client_id": "id", "msi_object_id": "o"}),
        );
        assert!(e.message.contains("at most one"));
        let s = build(json!({"account": "acct", "use_az": true, "tenant": "t"})).unwrap();
        assert_eq!(s.method, Method::AzureCli);
        let e = refused(json!({"account": "acct", "client_secret": "s"}));
        assert!(
            e.message.contains("needs client_id and tenant"),
            "{}",
            e.message
        );
    }

    #[test]
    fn service_principal_files() {
        let dir = std::env::temp_dir().join(format!("berth-azure-sp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("sp.json");
        std::fs::write(&good, r#"{"appId":"a","password":"p","tenant":"t"}"#).unwrap();
        let s = build(json!({"account": "acct", "service_principal_file": good.to_str().unwrap()}))
            .unwrap();
        assert_eq!(s.method, Method::ServicePrincipalFile);
        let cert = dir.join("cert.json");
        std::fs::write(
            &cert,
            r#"{"appId":"a","tenant":"t","fileWithCertAndPrivateKey":"/x.pem"}"#,
        )
        .unwrap();
        let e =
            refused(json!({"account": "acct", "service_principal_file": cert.to_str().unwrap()}));
        assert_eq!(e.kind, ErrorKind::Unsupported);
        let e =
            refused(json!({"account": "acct", "service_principal_file": "/nonexistent/sp.json"}));
        assert_eq!(e.kind, ErrorKind::InvalidConfig);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn env_auth_picks_a_credential_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let sp = environment_credential(&vars(&[
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_CLIENT_SECRET", "s"),
        ]))
        .unwrap();
        assert!(
            format!("{sp:?}").contains("ClientSecretCredential"),
            "{sp:?}"
        );
        let msi = environment_credential(&vars(&[])).unwrap();
        assert!(
            format!("{msi:?}").contains("ManagedIdentityCredential"),
            "{msi:?}"
        );
    }

    #[test]
    fn option_ranges() {
        let base = |extra: serde_json::Value| {
            let mut body = json!({"account": "acct", "key": EMULATOR_KEY});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            body
        };
        let s = build(base(json!({"chunk_size": "1M", "upload_cutoff": "2M", "upload_concurrency": 4, "list_chunk": 100, "access_tier": "cool", "delete_snapshots": "include", "public_access": "blob"}))).unwrap();
        assert_eq!(
            (s.options.chunk_size, s.options.upload_cutoff),
            (1 << 20, 2 << 20)
        );
        assert_eq!(
            (s.options.upload_concurrency, s.options.list_chunk),
            (4, 100)
        );
        assert_eq!(s.options.access_tier, Some(AccessTier::Cool));
        assert_eq!(
            refused(base(json!({"list_chunk": 6000}))).kind,
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            refused(base(json!({"chunk_size": "0"}))).kind,
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            refused(base(json!({"upload_concurrency": 0}))).kind,
            ErrorKind::InvalidConfig
        );
    }
}
