//! Start-up: data dir, keys, database, actors, HTTP server.

use crate::auth::JwtKey;
use crate::config::Settings;
use crate::{create_app, AppState};
use actix::Supervisor;
use actix_web::HttpServer;
use berth_actors::registry::Shutdown;
use berth_actors::{ActorBook, Registry, RegistrySettings, Timing};
use berth_db::{Db, MasterKey};
use berth_engines::EngineEnv;
use berth_rclone::TokenVault;
use berth_storage::drivers::DriverEnv;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn ensure_dir(path: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    path.canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Opens the database and runs its migrations.
pub fn open_db(settings: &Settings) -> Result<Db, String> {
    ensure_dir(&settings.data_dir)?;
    Db::connect(&settings.database_url).map_err(|e| format!("database: {e}"))
}

/// The signing key for API tokens.
pub fn jwt_key(settings: &Settings) -> Result<JwtKey, String> {
    JwtKey::load(settings.jwt_secret.as_deref(), &settings.jwt_secret_file())
}

/// Finds the rclone that serves providers without a native engine and logs
/// its version; without one those providers answer why.
async fn locate_rclone(binary: &Path) -> Result<berth_rclone::Rclone, String> {
    match berth_rclone::Rclone::locate(Some(binary)).await {
        Ok(rclone) => {
            tracing::info!(path = %rclone.path().display(), version = %rclone.version(), "rclone engine ready");
            Ok(rclone)
        }
        Err(err) => {
            tracing::warn!(error = %err, "no rclone: providers without a native engine cannot connect");
            Err(err.to_string())
        }
    }
}

/// Where OAuth tokens rclone refreshes are kept: `<data_dir>/rclone`,
/// encrypted under a key derived from the master key.
fn token_vault(settings: &Settings, key: &MasterKey) -> Result<Arc<TokenVault>, String> {
    let dir = settings.data_dir.join("rclone");
    TokenVault::open(&dir, &key.derive("rclone-config"))
        .map(Arc::new)
        .map_err(|e| format!("rclone token file in {}: {e}", dir.display()))
}

/// Runs the service until SIGINT/SIGTERM; the data path of every mount runs
/// on `data_runtime`, apart from the actors.
pub async fn serve(settings: Settings, data_runtime: tokio::runtime::Handle) -> Result<(), String> {
    let db = open_db(&settings)?;
    let mount_root = ensure_dir(&settings.mount_root)?;
    let cache_root = ensure_dir(&settings.data_dir.join("vfs"))?;
    let local_roots = settings
        .local_roots
        .iter()
        .map(|root| ensure_dir(root))
        .collect::<Result<_, _>>()?;
    let key = MasterKey::load_or_create(&settings.master_key_file)
        .map_err(|e| format!("master key {}: {e}", settings.master_key_file.display()))?;
    let jwt = jwt_key(&settings)?;
    // The token vault serves rclone only: without one it is not opened.
    let rclone = match locate_rclone(&settings.rclone).await {
        Ok(rclone) => Ok(Arc::new(
            rclone.keeping_tokens_in(token_vault(&settings, &key)?),
        )),
        Err(why) => Err(why),
    };
    let env = EngineEnv {
        hashes: Arc::new(berth_layers::DbHashStore::new(db.clone())),
        drivers: DriverEnv {
            local_roots,
            host_credentials: settings.host_credentials,
        },
        state_dir: settings.data_dir.join("engines"),
        rclone,
    };
    let registry = Registry::load(RegistrySettings {
        db,
        key: Arc::new(key),
        env,
        timing: Timing {
            probe_timeout: settings.probe_timeout,
            retry_base: settings.retry_base,
            retry_max: settings.retry_max,
        },
        book: ActorBook::default(),
        mount_root,
        cache_root,
        data_runtime,
    })?;
    let registry = Supervisor::start(move |_| registry);
    let state = AppState {
        registry: registry.clone(),
    };
    let server = HttpServer::new(move || create_app(state.clone(), jwt.clone()))
        .bind(&settings.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    for addr in server.addrs() {
        // Scripts and tests read this line to find the port.
        println!("berth listening on http://{addr}");
    }
    tracing::info!(listen = ?server.addrs(), data_dir = %settings.data_dir.display(), "berth started");
    let served = server
        .run()
        .await
        .map_err(|e| format!("server failed: {e}"));
    // Mounts stay desired state: flush their pending uploads and unmount.
    if let Err(err) = registry.send(Shutdown).await {
        tracing::error!(error = %err, "could not unmount at shutdown");
    }
    served?;
    tracing::info!("berth stopped");
    Ok(())
}
