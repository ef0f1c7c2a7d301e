//! Actor tests on a real SQLite database and the real memory/local drivers.

use crate::backend::Crash as CrashBackend;
use crate::mount::actor::Crash as CrashMount;
use crate::mount::VfsSettings;
use crate::registry::{
    ActorHealthList, BackendAddr, Crash, CreateBackend, CreateMount, DeleteBackend, DeleteMount,
    GetBackend, ListBackends, MountAddr, TestBackend, UpdateCredentials,
};
use crate::{ActorBook, Registry, RegistryError, RegistrySettings, Timing};
use actix::prelude::*;
use berth_db::{Db, MasterKey};
use berth_engines::EngineEnv;
use berth_storage::catalog::catalog;
use berth_storage::drivers::DriverEnv;
use berth_storage::testkit::{available, fuse_device};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tracing::Span;

struct Fixture {
    _dir: tempfile::TempDir,
    settings: RegistrySettings,
    _data: DataRuntime,
}

/// The data path's own runtime, as in the service: a mount served from the
/// test's single-threaded runtime would deadlock as soon as the test itself
/// touched the mount.
struct DataRuntime(Option<tokio::runtime::Runtime>);

impl Drop for DataRuntime {
    fn drop(&mut self) {
        // Dropping a runtime inside the test's async context would panic.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = Db::connect(dir.path().join("berth.db").to_str().unwrap()).unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let settings = RegistrySettings {
        db,
        key: Arc::new(MasterKey::generate()),
        env: EngineEnv {
            drivers: DriverEnv {
                local_roots: vec![local.canonicalize().unwrap()],
                host_credentials: false,
            },
            state_dir: dir.path().join("state"),
            hashes: Arc::new(berth_layers::MemoryHashStore::new()),
            rclone: Err("rclone is not used here".into()),
        },
        timing: Timing {
            probe_timeout: Duration::from_secs(5),
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_millis(200),
        },
        book: ActorBook::default(),
        mount_root: dir.path().join("mounts"),
        cache_root: dir.path().join("vfs"),
        data_runtime: data.handle().clone(),
    };
    Fixture {
        _dir: dir,
        settings,
        _data: DataRuntime(Some(data)),
    }
}

fn start(settings: &RegistrySettings) -> Addr<Registry> {
    let registry = Registry::load(settings.clone()).unwrap();
    Supervisor::start(move |_| registry)
}

async fn create(
    registry: &Addr<Registry>,
    org: &str,
    slug: &str,
    body: serde_json::Value,
) -> Result<String, RegistryError> {
    let config = catalog().get(slug).unwrap().validate_create(&body).unwrap();
    let msg = CreateBackend {
        org: org.into(),
        slug: slug.into(),
        config,
        span: Span::none(),
    };
    registry.send(msg).await.unwrap().map(|view| view.id)
}

async fn restarts(registry: &Addr<Registry>, kind: &str) -> u32 {
    let health = registry
        .send(ActorHealthList { org: "acme".into() })
        .await
        .unwrap();
    health
        .iter()
        .find(|h| h.kind == kind)
        .map_or(0, |h| h.restarts)
}

#[actix::test]
async fn backends_are_created_listed_and_deleted() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let id = create(&registry, "acme", "memory", json!({"name": "m"}))
        .await
        .unwrap();
    let view = registry
        .send(GetBackend {
            org: "acme".into(),
            id: id.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(view.connected);
    assert_eq!(view.name.as_deref(), Some("m"));
    assert_eq!(
        fx.settings.db.get_backend(&id).unwrap().unwrap().state,
        "connected"
    );
    let err = create(&registry, "acme", "memory", json!({"name": "m"}))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Conflict(_)), "{err:?}");
    let err = create(&registry, "acme", "drive", json!({}))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::ProbeFailed(
            "provider 'drive' is served by rclone, which is not available: rclone is not used here"
                .into()
        )
    );
    assert_eq!(
        registry
            .send(ListBackends { org: "acme".into() })
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(registry
        .send(ListBackends {
            org: "other".into()
        })
        .await
        .unwrap()
        .is_empty());
    let delete = DeleteBackend {
        org: "acme".into(),
        id: id.clone(),
        span: Span::none(),
    };
    registry.send(delete).await.unwrap().unwrap();
    assert!(fx.settings.db.get_backend(&id).unwrap().is_none());
    let err = registry
        .send(GetBackend {
            org: "acme".into(),
            id,
        })
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err, RegistryError::backend_not_found());
}

#[actix::test]
async fn credential_updates_refuse_non_credential_fields() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let id = create(&registry, "acme", "memory", json!({}))
        .await
        .unwrap();
    let msg = UpdateCredentials {
        org: "acme".into(),
        id,
        body: json!({"description": "x"}),
        span: Span::none(),
    };
    let err = registry.send(msg).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invalid(m) if m.starts_with("Invalid request: only credential fields are allowed")),
        "{err:?}"
    );
}

#[actix::test]
async fn a_panicking_backend_actor_is_restarted_and_counted() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let id = create(&registry, "acme", "memory", json!({}))
        .await
        .unwrap();
    let backend = registry
        .send(BackendAddr(id.clone()))
        .await
        .unwrap()
        .unwrap();
    backend.send(CrashBackend).await.unwrap();
    // The supervisor restarts it and it probes again on start.
    let mut health = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        health = fx.settings.book.get("backend", &id);
        if health
            .as_ref()
            .is_some_and(|h| h.restarts == 1 && h.state == "connected")
        {
            break;
        }
    }
    let health = health.unwrap();
    assert_eq!(health.restarts, 1);
    assert_eq!(health.state, "connected");
    assert_eq!(health.last_error.as_deref(), Some("panic: injected"));
    let test = TestBackend {
        org: "acme".into(),
        id,
        span: Span::none(),
    };
    assert!(registry.send(test).await.unwrap().unwrap().success);
}

#[actix::test]
async fn a_panicking_registry_is_restarted_and_keeps_its_backends() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let id = create(&registry, "acme", "memory", json!({}))
        .await
        .unwrap();
    let err = registry.send(Crash).await.unwrap().unwrap_err();
    assert!(matches!(err, RegistryError::Internal(_)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(restarts(&registry, "registry").await, 1);
    let view = registry
        .send(GetBackend {
            org: "acme".into(),
            id,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(view.connected);
}

#[actix::test]
async fn failed_backends_retry_until_the_remote_is_back() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let root = fx.settings.env.drivers.local_roots[0].join("flaky");
    std::fs::create_dir_all(&root).unwrap();
    let id = create(&registry, "acme", "local", json!({"root": root}))
        .await
        .unwrap();
    std::fs::remove_dir(&root).unwrap();
    let test = || TestBackend {
        org: "acme".into(),
        id: id.clone(),
        span: Span::none(),
    };
    assert!(!registry.send(test()).await.unwrap().unwrap().success);
    assert_eq!(
        fx.settings.db.get_backend(&id).unwrap().unwrap().state,
        "failed"
    );
    std::fs::create_dir_all(&root).unwrap();
    let mut state = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        state = fx.settings.book.get("backend", &id).unwrap().state;
        if state == "connected" {
            break;
        }
    }
    assert_eq!(state, "connected");
    assert_eq!(
        fx.settings.db.get_backend(&id).unwrap().unwrap().state,
        "connected"
    );
}

#[actix::test]
async fn restored_backends_keep_their_id_and_state() {
    let fx = fixture();
    let id = {
        let registry = start(&fx.settings);
        create(&registry, "acme", "memory", json!({"description": "kept"}))
            .await
            .unwrap()
    };
    let registry = start(&fx.settings);
    let view = registry
        .send(GetBackend {
            org: "acme".into(),
            id,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.description, "kept");
    assert_eq!(view.state, "connected");
}

#[actix::test]
async fn wrappers_resolve_references_inside_their_org() {
    let fx = fixture();
    let registry = start(&fx.settings);
    let base = create(&registry, "acme", "memory", json!({"name": "m"}))
        .await
        .unwrap();
    let alias = create(&registry, "acme", "alias", json!({"remote": "m:sub"}))
        .await
        .unwrap();
    let view = registry
        .send(GetBackend {
            org: "acme".into(),
            id: alias.clone(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(view.connected, "{view:?}");
    // By id works too; other orgs cannot see `m`; unknown names and self-references are refused.
    create(
        &registry,
        "acme",
        "alias",
        json!({"remote": format!("{base}:x")}),
    )
    .await
    .unwrap();
    let err = create(&registry, "globex", "alias", json!({"remote": "m:"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invalid(m) if m.contains("'m' does not exist")),
        "{err:?}"
    );
    let err = create(
        &registry,
        "acme",
        "alias",
        json!({"name": "loop", "remote": "loop:"}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, RegistryError::Invalid(m) if m.contains("cycle")),
        "{err:?}"
    );
    // A referenced backend cannot be deleted until its wrappers are.
    let delete = |id: &str| DeleteBackend {
        org: "acme".into(),
        id: id.into(),
        span: Span::none(),
    };
    let err = registry.send(delete(&base)).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, RegistryError::Conflict(m) if m.contains("used by backend")),
        "{err:?}"
    );
    for backend in registry
        .send(ListBackends { org: "acme".into() })
        .await
        .unwrap()
    {
        if backend.slug == "alias" {
            registry.send(delete(&backend.id)).await.unwrap().unwrap();
        }
    }
    registry.send(delete(&base)).await.unwrap().unwrap();
}

#[actix::test]
async fn restored_wrappers_find_their_upstreams_in_any_order() {
    let fx = fixture();
    {
        let registry = start(&fx.settings);
        create(&registry, "acme", "memory", json!({"name": "m"}))
            .await
            .unwrap();
        create(&registry, "acme", "union", json!({"upstreams": "m:a m:b"}))
            .await
            .unwrap();
    }
    let registry = start(&fx.settings);
    let mut states = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        states = registry
            .send(ListBackends { org: "acme".into() })
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.state)
            .collect();
        if states.iter().all(|s| s == "connected") {
            break;
        }
    }
    assert_eq!(states, vec!["connected", "connected"]);
}

/// Polls the actor book until `check` holds for the mount (5 s at most).
async fn mount_health_until(
    fx: &Fixture,
    id: &str,
    check: impl Fn(&crate::ActorHealth) -> bool,
) -> crate::ActorHealth {
    for _ in 0..100 {
        if let Some(health) = fx.settings.book.get("mount", id).filter(|h| check(h)) {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("mount {id}: {:?}", fx.settings.book.get("mount", id));
}

#[actix::test]
async fn a_panicking_mount_actor_is_restarted_and_keeps_serving() {
    let test = "a_panicking_mount_actor_is_restarted_and_keeps_serving";
    if !available("BERTH_REQUIRE_FUSE", test, fuse_device()) {
        return;
    }
    let fx = fixture();
    let registry = start(&fx.settings);
    let backend_id = create(&registry, "acme", "memory", json!({}))
        .await
        .unwrap();
    let create = CreateMount {
        org: "acme".into(),
        backend_id,
        label: None,
        mount_path: None,
        remote_path: None,
        vfs_config: None,
        span: Span::none(),
    };
    let view = registry.send(create).await.unwrap().unwrap();
    assert_eq!(view.status, "active");
    let path = Path::new(&view.mount_path);
    std::fs::write(path.join("before"), b"kept").unwrap();

    let mount = registry.send(MountAddr(view.id.clone())).await.unwrap();
    mount.unwrap().send(CrashMount).await.unwrap();
    let health = mount_health_until(&fx, &view.id, |h| h.restarts == 1).await;
    assert_eq!(health.state, "active");
    assert_eq!(health.last_error.as_deref(), Some("panic: injected"));
    // The same session goes on serving through the restart.
    assert_eq!(std::fs::read(path.join("before")).unwrap(), b"kept");

    // The restarted actor watches again: an external unmount is healed.
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
    mount_health_until(&fx, &view.id, |h| {
        h.state == "active" && crate::mount::engine::is_mount_point(path)
    })
    .await;
    assert_eq!(std::fs::read(path.join("before")).unwrap(), b"kept");

    let delete = DeleteMount {
        org: "acme".into(),
        id: view.id.clone(),
        span: Span::none(),
    };
    registry.send(delete).await.unwrap().unwrap();
    assert!(!crate::mount::engine::is_mount_point(path));
}

/// An engine whose mounts vanish at once, recording when it was asked to mount.
#[derive(Default)]
struct Vanishing {
    mounts: std::sync::Mutex<Vec<std::time::Instant>>,
}

#[async_trait::async_trait]
impl crate::mount::engine::MountEngine for Vanishing {
    async fn mount(&self, _path: &Path, _settings: &VfsSettings) -> Result<(), String> {
        self.mounts.lock().unwrap().push(std::time::Instant::now());
        Ok(())
    }

    fn is_serving(&self) -> bool {
        false
    }

    fn reconfigure(&self, _settings: &VfsSettings) -> crate::mount::engine::Reconfigured {
        crate::mount::engine::Reconfigured::Live
    }

    async fn unmount(&self, _path: &Path) -> Result<(), String> {
        Ok(())
    }
}

#[actix::test]
async fn a_mount_that_keeps_vanishing_is_mounted_again_with_growing_delays() {
    use crate::mount::actor::{MountActor, MountServices, MountSpec};
    let fx = fixture();
    let engine = Arc::new(Vanishing::default());
    let timing = Timing {
        retry_base: Duration::from_millis(700),
        retry_max: Duration::from_secs(10),
        ..fx.settings.timing
    };
    let spec = MountSpec {
        id: "mount_0123456789abcdef0123456789abcdef".into(),
        org: "acme".into(),
        mount_path: fx._dir.path().join("vanishing"),
        settings: VfsSettings::default(),
        engine: engine.clone(),
    };
    let services = MountServices {
        db: fx.settings.db.clone(),
        book: fx.settings.book.clone(),
        timing,
        data_runtime: fx.settings.data_runtime.clone(),
    };
    let _addr = Supervisor::start(move |_| MountActor::new(spec, services));
    let four_mounts = async {
        while engine.mounts.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), four_mounts)
        .await
        .expect("mounted again and again");
    let at = engine.mounts.lock().unwrap().clone();
    // Lost at the next watch (every second), then mounted again after
    // 0.7 s, 1.4 s, 2.8 s: an engine crashing in a loop is not hammered.
    let (first, third) = (at[1] - at[0], at[3] - at[2]);
    assert!(
        third > first + Duration::from_millis(500),
        "gaps {first:?} then {third:?}"
    );
}
