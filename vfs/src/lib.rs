//! The filesystem behind berth's FUSE mounts.
//!
//! [`Vfs`] holds all filesystem logic over a [`berth_storage::Storage`]:
//! inodes with stable numbers, listing and attribute caches (trusted for
//! `dir_cache_time`, updated at once by changes made through the mount),
//! streaming reads with sequential read-ahead, streaming sequential writes,
//! and a disk cache with write-back and crash recovery. It is driven by inode
//! number and testable without FUSE. [`mount`] puts a thin fuser adapter in
//! front of it: callbacks hand their work to the tokio runtime and answer the
//! kernel when it completes, on several fuser threads.
//!
//! What each [`CacheMode`] guarantees is written down in `docs/SEMANTICS.md`.

#![warn(missing_docs)]

mod cache;
mod config;
mod error;
mod fuse;
mod inode;
mod journal;
mod ranges;
mod reader;
mod vfs;
mod writer;

pub use config::{CacheMode, VfsConfig};
pub use error::{errno, VfsError};
pub use fuse::{mount, MountHandle, MountOptions};
pub use inode::{Attr, FileKind, ROOT_INO};
pub use vfs::{DirEntry, StatFs, Vfs};
