//! The settings of one mount (`vfs_config` in the API), changeable while the
//! mount is live with [`Vfs::update_config`](crate::Vfs::update_config).

use std::time::Duration;

/// How file data is cached on local disk. See `docs/SEMANTICS.md` for the
/// guarantees of each mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheMode {
    /// No disk cache: reads stream from the store with read-ahead, writes
    /// must be sequential and stream to the store; read+write opens fail.
    Off,
    /// Like `Off`, but files opened for read+write go through the disk cache
    /// and are uploaded when closed.
    Minimal,
    /// Files opened for writing go through the disk cache and are uploaded
    /// `write_back` after the last close; reads of them come from the cache.
    #[default]
    Writes,
    /// All reads and writes go through a sparse on-disk chunk cache bounded by
    /// `cache_max_size` and `cache_max_age`.
    Full,
}

impl CacheMode {
    /// The API spelling: `off`, `minimal`, `writes` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::Minimal => "minimal",
            CacheMode::Writes => "writes",
            CacheMode::Full => "full",
        }
    }

    /// Parses the API spelling (case-insensitive).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "off" => Some(CacheMode::Off),
            "minimal" => Some(CacheMode::Minimal),
            "writes" => Some(CacheMode::Writes),
            "full" => Some(CacheMode::Full),
            _ => None,
        }
    }
}

/// The VFS settings of a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VfsConfig {
    /// Which data goes through the disk cache.
    pub cache_mode: CacheMode,
    /// Cached data not accessed for this long is evicted (`full`; uploads
    /// waiting in the cache are never evicted).
    pub cache_max_age: Duration,
    /// Upper bound of the disk cache in bytes, kept by evicting the least
    /// recently used clean files (uploads waiting are never evicted).
    pub cache_max_size: u64,
    /// How long listings and attributes are trusted, and the kernel's entry
    /// and attribute TTL. Changes made through the mount update them at once.
    pub dir_cache_time: Duration,
    /// Delay between the last close of a modified file and its upload
    /// (`writes` and `full`).
    pub write_back: Duration,
}

impl Default for VfsConfig {
    /// The API defaults: `writes`, 1 h, 10 GiB, 5 min, and a 5 s write-back.
    fn default() -> Self {
        Self {
            cache_mode: CacheMode::Writes,
            cache_max_age: Duration::from_secs(3600),
            cache_max_size: 10 * 1024 * 1024 * 1024,
            dir_cache_time: Duration::from_secs(300),
            write_back: Duration::from_secs(5),
        }
    }
}
