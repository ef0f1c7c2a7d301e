//! Policy selection of the union over a small mock storage whose usage
//! figures and contents are set by each test.

use super::*;
use berth_storage::once;
use std::sync::Mutex;

type Node = (EntryKind, u64, Option<SystemTime>);

/// Holds paths in a map, reports a fixed usage and logs every change.
#[derive(Debug, Default)]
struct Fake {
    nodes: Mutex<BTreeMap<String, Node>>,
    usage: Mutex<Usage>,
    log: Mutex<Vec<String>>,
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

impl Fake {
    fn new(free: u64, used: u64) -> Arc<Fake> {
        let fake = Fake::default();
        *fake.usage.lock().unwrap() = Usage {
            total: Some(free + used),
            used: Some(used),
            free: Some(free),
        };
        Arc::new(fake)
    }

    fn put(&self, path: &str, kind: EntryKind, modified: u64) -> &Self {
        let mut nodes = self.nodes.lock().unwrap();
        let mut dir = parent_of(path);
        while !dir.is_empty() {
            nodes
                .entry(dir.to_string())
                .or_insert((EntryKind::Dir, 0, None));
            dir = parent_of(dir);
        }
        nodes.insert(path.to_string(), (kind, 1, Some(at(modified))));
        self
    }

    fn set_free(&self, free: u64) {
        self.usage.lock().unwrap().free = Some(free);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn record(&self, what: String) {
        self.log.lock().unwrap().push(what);
    }
}

#[async_trait]
impl Storage for Fake {
    fn capability(&self) -> Capability {
        Capability {
            directories: true,
            ranged_read: true,
            copy: true,
            atomic_rename: true,
            set_mtime: true,
            usage: true,
            append: false,
        }
    }

    async fn stat(&self, path: &str) -> Result<Entry> {
        if path.is_empty() {
            return Ok(Entry {
                path: String::new(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            });
        }
        let nodes = self.nodes.lock().unwrap();
        let (kind, size, modified) = *nodes
            .get(path)
            .ok_or_else(|| StorageError::not_found(path))?;
        Ok(Entry {
            path: path.to_string(),
            kind,
            size,
            modified,
        })
    }

    async fn list(&self, dir: &str, cursor: Option<String>, _limit: usize) -> Result<ListPage> {
        let nodes = self.nodes.lock().unwrap();
        if !dir.is_empty() && !nodes.contains_key(dir) {
            return Err(StorageError::not_found(dir));
        }
        let entries = nodes
            .iter()
            .filter(|(p, _)| parent_of(p) == dir && p.as_str() != dir)
            .map(|(p, &(kind, size, modified))| Entry {
                path: p.clone(),
                kind,
                size,
                modified,
            })
            .filter(|e| cursor.as_deref().is_none_or(|c| e.name() > c))
            .collect();
        Ok(ListPage {
            entries,
            next: None,
        })
    }

    async fn read(&self, path: &str, _range: Option<(u64, u64)>) -> Result<ByteStream> {
        self.record(format!("read {path}"));
        Ok(once(path.to_string()))
    }

    async fn write(&self, path: &str, body: ByteStream) -> Result<Entry> {
        let data = berth_storage::collect(body).await?;
        self.put(path, EntryKind::File, 0);
        self.record(format!("write {path}"));
        Ok(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            size: data.len() as u64,
            modified: None,
        })
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.nodes.lock().unwrap().remove(path);
        self.record(format!("delete {path}"));
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        self.record(format!("copy {from} {to}"));
        Ok(())
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.record(format!("rename {from} {to}"));
        Ok(())
    }

    async fn mkdir(&self, path: &str) -> Result<()> {
        self.put(path, EntryKind::Dir, 0);
        self.record(format!("mkdir {path}"));
        Ok(())
    }

    async fn rmdir(&self, path: &str) -> Result<()> {
        self.record(format!("rmdir {path}"));
        Ok(())
    }

    async fn usage(&self) -> Result<Usage> {
        Ok(*self.usage.lock().unwrap())
    }

    async fn set_modified(&self, path: &str, _time: SystemTime) -> Result<()> {
        self.record(format!("set_modified {path}"));
        Ok(())
    }
}

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const R: usize = 3;
const N: usize = 4;

/// a, b, c read-write, r `:ro`, n `:nc`, with these figures:
///
/// | upstream | free | used | objects | `d/` (mtime) | `shared` (mtime) |
/// |----------|------|------|---------|--------------|------------------|
/// | a        | 100  | 900  | 4       | yes (1)      | yes (1)          |
/// | b        | 500  | 100  | 11      | yes (2)      | yes (3)          |
/// | c        | 300  | 50   | 1       | no           | no               |
/// | r (:ro)  | 1000 | 0    | 1       | yes (9)      | yes (9)          |
/// | n (:nc)  | 2000 | 10   | 1       | yes (3)      | yes (2)          |
fn world() -> Vec<Arc<Fake>> {
    let a = Fake::new(100, 900);
    a.put("d", EntryKind::Dir, 1)
        .put("d/1", EntryKind::File, 1)
        .put("d/2", EntryKind::File, 1)
        .put("d/3", EntryKind::File, 1)
        .put("shared", EntryKind::File, 1);
    let b = Fake::new(500, 100);
    b.put("d", EntryKind::Dir, 2)
        .put("shared", EntryKind::File, 3);
    for i in 0..10 {
        b.put(&format!("bulk/f{i}"), EntryKind::File, 0);
    }
    let c = Fake::new(300, 50);
    c.put("c1", EntryKind::File, 0);
    let r = Fake::new(1000, 0);
    r.put("d", EntryKind::Dir, 9)
        .put("shared", EntryKind::File, 9);
    let n = Fake::new(2000, 10);
    n.put("d", EntryKind::Dir, 3)
        .put("shared", EntryKind::File, 2);
    vec![a, b, c, r, n]
}

fn options(search: &str, create: &str, action: &str) -> Options {
    Options {
        search: Policy::parse(search).unwrap(),
        create: Policy::parse(create).unwrap(),
        action: Policy::parse(action).unwrap(),
        cache_time: Duration::from_secs(60),
        min_free: 0,
    }
}

fn union_of(fakes: &[Arc<Fake>], options: Options) -> Union {
    let modes = [
        UpstreamMode::ReadWrite,
        UpstreamMode::ReadWrite,
        UpstreamMode::ReadWrite,
        UpstreamMode::ReadOnly,
        UpstreamMode::NoCreate,
    ];
    let upstreams = fakes
        .iter()
        .zip(modes)
        .enumerate()
        .map(|(i, (f, mode))| {
            let storage: Arc<dyn Storage> = f.clone();
            (format!("u{i}:"), mode, storage)
        })
        .collect();
    Union::new(upstreams, options)
}

async fn creates(create: &str, min_free: u64) -> Result<Vec<usize>> {
    let mut opts = options("ff", create, "epall");
    opts.min_free = min_free;
    union_of(&world(), opts).create_targets("d/new").await
}

#[tokio::test]
async fn create_policies_pick_as_rclone_documents() {
    let cases: [(&str, &[usize]); 13] = [
        ("ff", &[A]),
        ("epff", &[A]),
        ("all", &[A, B, C]),
        ("epall", &[A, B]),
        ("mfs", &[B]),
        ("epmfs", &[B]),
        ("lfs", &[A]),
        ("eplfs", &[A]),
        ("lus", &[C]),
        ("eplus", &[B]),
        ("lno", &[C]),
        ("eplno", &[A]),
        ("newest", &[B]),
    ];
    for (policy, want) in cases {
        assert_eq!(creates(policy, 0).await.unwrap(), want, "{policy}");
    }
    for _ in 0..20 {
        let got = creates("rand", 0).await.unwrap();
        assert!(
            got.len() == 1 && [A, B, C].contains(&got[0]),
            "rand {got:?}"
        );
        let got = creates("eprand", 0).await.unwrap();
        assert!(got.len() == 1 && [A, B].contains(&got[0]), "eprand {got:?}");
    }
}

#[tokio::test]
async fn min_free_space_only_limits_lfs_creates() {
    assert_eq!(creates("lfs", 200).await.unwrap(), vec![C]);
    assert_eq!(creates("eplfs", 200).await.unwrap(), vec![B]);
    assert_eq!(creates("mfs", 10_000).await.unwrap(), vec![B]);
    let err = creates("lfs", 10_000).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Quota);
    assert!(err.message.contains("min_free_space"), "{}", err.message);
}

#[tokio::test]
async fn path_preserving_create_falls_back_to_the_deepest_existing_ancestor() {
    let fakes = world();
    let union = union_of(&fakes, options("ff", "epmfs", "epall"));
    // "x/y" exists nowhere: the root is where the policy picks (b, most
    // free among a, b, c), and the missing directories are created there.
    assert_eq!(union.create_targets("x/y/z").await.unwrap(), vec![B]);
    assert_eq!(fakes[B].log(), vec!["mkdir x/y"]);
    // "bulk" exists on b only, so eplfs has no choice.
    let union = union_of(&fakes, options("ff", "eplfs", "epall"));
    assert_eq!(union.create_targets("bulk/new").await.unwrap(), vec![B]);
    // A file on the way is a conflict.
    assert_eq!(
        union.create_targets("c1/x").await.unwrap_err().kind,
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn action_policies_skip_read_only_upstreams() {
    let cases: [(&str, &[usize]); 9] = [
        ("epall", &[A, B, N]),
        ("all", &[A, B, N]),
        ("ff", &[A]),
        ("epff", &[A]),
        ("mfs", &[N]),
        ("lfs", &[A]),
        ("lus", &[N]),
        ("lno", &[N]),
        ("newest", &[B]),
    ];
    for (policy, want) in cases {
        let union = union_of(&world(), options("ff", "epmfs", policy));
        let found = union.found("shared").await.unwrap();
        assert_eq!(found.len(), 4);
        let got = union.action_targets(&found, "shared").await.unwrap();
        assert_eq!(got, want, "{policy}");
    }
}

#[tokio::test]
async fn search_policies_pick_one_copy() {
    let cases = [
        ("ff", A),
        ("all", A),
        ("epall", A),
        ("mfs", N),
        ("lfs", A),
        ("lus", R),
        ("lno", R),
        ("newest", R),
    ];
    for (policy, want) in cases {
        let union = union_of(&world(), options(policy, "epmfs", "epall"));
        assert_eq!(union.search("shared").await.unwrap().0, want, "{policy}");
    }
}

#[tokio::test]
async fn epall_delete_reaches_every_writable_copy() {
    let fakes = world();
    let union = union_of(&fakes, options("ff", "epmfs", "epall"));
    union.delete("shared").await.unwrap();
    for i in [A, B, N] {
        assert_eq!(fakes[i].log(), vec!["delete shared"], "upstream {i}");
    }
    assert!(fakes[R].log().is_empty(), "the :ro upstream was changed");
    assert!(fakes[C].log().is_empty());
    // Only the :ro copy is left: visible, but not deletable.
    assert_eq!(union.search("shared").await.unwrap().0, R);
    assert_eq!(
        union.delete("shared").await.unwrap_err().kind,
        ErrorKind::Permission
    );
}

#[tokio::test]
async fn writes_never_reach_read_only_or_no_create_upstreams() {
    let fakes = world();
    let union = union_of(&fakes, options("ff", "all", "epall"));
    union.write("d/new", once("x")).await.unwrap();
    for i in [A, B, C] {
        assert!(fakes[i].log().contains(&"write d/new".to_string()), "{i}");
    }
    assert!(fakes[R].log().is_empty() && fakes[N].log().is_empty());
    // Overwriting an existing file is an action: the :nc copy is updated.
    union.write("shared", once("y")).await.unwrap();
    assert!(fakes[N].log().contains(&"write shared".to_string()));
    assert!(fakes[R].log().is_empty());
}

#[tokio::test]
async fn nothing_creatable_is_permission() {
    let fakes = world();
    let upstreams = vec![
        (
            "r:".to_string(),
            UpstreamMode::ReadOnly,
            fakes[R].clone() as Arc<dyn Storage>,
        ),
        (
            "n:".to_string(),
            UpstreamMode::NoCreate,
            fakes[N].clone() as Arc<dyn Storage>,
        ),
    ];
    let union = Union::new(upstreams, options("ff", "ff", "epall"));
    let err = union.write("new", once("x")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Permission);
    assert!(fakes[R].log().is_empty() && fakes[N].log().is_empty());
}

#[tokio::test]
async fn usage_figures_are_cached_for_cache_time() {
    let fakes = world();
    let union = union_of(&fakes, options("ff", "mfs", "epall"));
    assert_eq!(union.create_targets("n1").await.unwrap(), vec![B]);
    fakes[B].set_free(1);
    assert_eq!(union.create_targets("n2").await.unwrap(), vec![B], "cached");

    let mut opts = options("ff", "mfs", "epall");
    opts.cache_time = Duration::ZERO;
    let union = union_of(&fakes, opts);
    assert_eq!(union.create_targets("n3").await.unwrap(), vec![C]);
}

#[test]
fn options_from_a_validated_config() {
    let config = |v: serde_json::Value| v.as_object().unwrap().clone();
    let good = config(serde_json::json!({
        "search_policy": "newest", "create_policy": "eplfs", "action_policy": "all",
        "cache_time": 5, "min_free_space": "2G",
    }));
    let opts = Options::from_config(&good).unwrap();
    assert_eq!(opts.search.criterion, Criterion::Newest);
    assert_eq!(opts.create.to_string(), "eplfs");
    assert_eq!(opts.action.to_string(), "all");
    assert_eq!(opts.cache_time, Duration::from_secs(5));
    assert_eq!(opts.min_free, 2 << 30);

    let mut bad = good.clone();
    bad.insert("create_policy".into(), "most".into());
    let err = Options::from_config(&bad).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("create_policy"), "{}", err.message);
    let mut bad = good;
    bad.insert("min_free_space".into(), "lots".into());
    let err = Options::from_config(&bad).unwrap_err();
    assert!(err.message.contains("min_free_space"), "{}", err.message);
}
