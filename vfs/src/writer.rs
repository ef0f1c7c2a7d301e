//! Streaming writes without the disk cache: one `Storage::write` per open
//! handle, fed through a bounded channel as the application writes (the
//! driver turns it into a multipart upload where the store has one).
//!
//! Writes must arrive in order: the next write starts where the previous one
//! ended. Small writes are gathered into [`SEND_CHUNK`] pieces before they are
//! sent. The upload finishes when the writer flushes the handle (on
//! `close`), and its result is what `close` returns.

use crate::error::VfsError;
use berth_storage::{Entry, Storage, StorageError};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bytes gathered before a piece is handed to the upload.
const SEND_CHUNK: usize = 1024 * 1024;
/// Pieces queued ahead of the upload (back-pressure beyond that).
const QUEUE: usize = 4;

type Piece = Result<Bytes, StorageError>;

/// The upload state of one handle opened for streaming writes.
#[derive(Debug)]
pub(crate) struct Writer {
    storage: Arc<dyn Storage>,
    /// Path the upload goes to (fixed when the upload starts).
    pub path: String,
    buf: BytesMut,
    /// Bytes accepted so far: the offset the next write must start at.
    pub written: u64,
    tx: Option<mpsc::Sender<Piece>>,
    task: Option<JoinHandle<Result<Entry, StorageError>>>,
    /// Result of the finished upload.
    pub done: Option<Result<Entry, VfsError>>,
    /// The thread that wrote last (as FUSE names it; 0 before any write).
    last_writer: u32,
    /// Its process, looked up when the writing thread changes (`None` when
    /// /proc does not show it).
    writer_process: Option<u32>,
}

/// The process (thread group) of thread `tid`, from /proc.
fn thread_group(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

impl Writer {
    pub(crate) fn new(storage: Arc<dyn Storage>, path: String) -> Self {
        Writer {
            storage,
            path,
            buf: BytesMut::new(),
            written: 0,
            tx: None,
            task: None,
            done: None,
            last_writer: 0,
            writer_process: None,
        }
    }

    fn start(&mut self) -> &mpsc::Sender<Piece> {
        let (tx, rx) = mpsc::channel::<Piece>(QUEUE);
        let storage = self.storage.clone();
        let path = self.path.clone();
        let body = Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        }));
        self.task = Some(tokio::spawn(
            async move { storage.write(&path, body).await },
        ));
        self.tx.insert(tx)
    }

    /// Notes that thread `tid` (as FUSE names the caller) wrote.
    pub(crate) fn wrote_from(&mut self, tid: u32) {
        if tid != self.last_writer {
            self.last_writer = tid;
            self.writer_process = thread_group(tid);
        }
    }

    /// Whether thread `tid` belongs to the process that wrote last (FUSE
    /// names threads, not processes; a thread that is gone is no writer).
    pub(crate) fn is_writer(&self, tid: u32) -> bool {
        tid == self.last_writer
            || self
                .writer_process
                .is_some_and(|process| thread_group(tid) == Some(process))
    }

    /// Appends `data` at `offset`, which must be where the last write ended.
    pub(crate) async fn write(&mut self, offset: u64, data: Bytes) -> Result<(), VfsError> {
        if self.done.is_some() {
            return Err(VfsError::errno_msg(
                libc::EBADF,
                format!("{}: the upload of this handle already finished", self.path),
            ));
        }
        if offset != self.written {
            return Err(VfsError::errno_msg(
                libc::ESPIPE,
                format!(
                    "{}: write at {offset} but the stream is at {}: with cache mode off, writes must be sequential (use cache mode writes or full)",
                    self.path, self.written
                ),
            ));
        }
        self.written += data.len() as u64;
        if self.buf.is_empty() && data.len() >= SEND_CHUNK {
            // Large writes go to the upload as they are.
            return self.send(data).await;
        }
        if self.buf.capacity() - self.buf.len() < data.len() {
            self.buf.reserve(SEND_CHUNK.max(data.len()));
        }
        self.buf.extend_from_slice(&data);
        if self.buf.len() >= SEND_CHUNK {
            let piece = self.buf.split().freeze();
            self.send(piece).await?;
        }
        Ok(())
    }

    async fn send(&mut self, piece: Bytes) -> Result<(), VfsError> {
        let tx = match self.tx.as_ref() {
            Some(tx) => tx.clone(),
            None => self.start().clone(),
        };
        if tx.send(Ok(piece)).await.is_err() {
            // The upload ended early: its error is the answer.
            return Err(self.finish().await.err().unwrap_or_else(|| {
                VfsError::errno_msg(libc::EIO, "upload ended before the data was sent")
            }));
        }
        Ok(())
    }

    /// Sends what is buffered, ends the body and waits for the store's answer.
    pub(crate) async fn finish(&mut self) -> Result<Entry, VfsError> {
        if let Some(done) = &self.done {
            return done.clone();
        }
        if self.tx.is_none() {
            self.start();
        }
        if !self.buf.is_empty() {
            let piece = self.buf.split().freeze();
            if let Some(tx) = &self.tx {
                // A closed channel means the upload failed; its result says why.
                let _ = tx.send(Ok(piece)).await;
            }
        }
        self.tx = None;
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r.map_err(VfsError::from),
                Err(e) => Err(VfsError::Cache(format!("upload task failed: {e}"))),
            },
            None => Err(VfsError::errno_msg(libc::EIO, "upload was never started")),
        };
        self.done = Some(result.clone());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_storage::drivers::MemoryStorage;

    fn tid() -> u32 {
        // SAFETY: gettid has no preconditions.
        (unsafe { libc::gettid() }) as u32
    }

    #[test]
    fn the_writer_is_known_by_its_process() {
        let me = std::process::id();
        let mut w = Writer::new(Arc::new(MemoryStorage::new()), "f".into());
        w.wrote_from(tid());
        assert!(w.is_writer(tid()));
        assert!(w.is_writer(me), "another thread of the writing process");
        let thread = std::thread::spawn(tid).join().unwrap();
        assert!(!w.is_writer(thread), "a thread that is gone");
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!w.is_writer(child.id()), "another process");
        // The writing thread may end before the close: its process is kept.
        w.wrote_from(std::thread::spawn(tid).join().unwrap());
        assert!(!w.is_writer(me), "gone before its process was looked up");
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            tx.send(tid()).unwrap();
            let _ = done_rx.recv();
        });
        w.wrote_from(rx.recv().unwrap());
        done_tx.send(()).unwrap();
        writer.join().unwrap();
        assert!(w.is_writer(me), "its process, after the thread ended");
        assert!(!w.is_writer(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
