//! Where the coordinator's records go: the offsets-store seam, and its local implementation.
//!
//! The coordinator writes records (in `__consumer_offsets` schemas) and later replays them;
//! whether they live in the data dir's compacted logs ([`ShardLogs`], on disk or on the
//! in-memory storage twin) or in a compacted topic of an upstream cluster
//! (`proxy::store::UpstreamStore`) is hidden behind [`OffsetsStore`]. A shard's records are
//! appended under its lock (so [`OffsetsStore::append`] must not block), and replies wait for
//! [`OffsetsStore::wait_durable`] of the position the append returned.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::record::RawRecord;
use crate::log::LogError;
use crate::log::datadir::DataDir;
use crate::log::keyed::{KeyedConfig, KeyedLog};

/// A boxed future (the seam is a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a replay hands each record to: key bytes, and value bytes or `None` for a tombstone.
pub type Replay<'a> = dyn FnMut(&[u8], Option<&[u8]>) + 'a;

/// Where a coordinator keeps its shards' records.
pub trait OffsetsStore: Send + Sync + std::fmt::Debug {
    /// Reads every record of `shard`, in order, into `each` (key bytes, value bytes or `None`
    /// for a tombstone). Blocking: it runs on a loader thread before the shard serves.
    fn load(&self, shard: usize, each: &mut Replay<'_>) -> Result<(), LogError>;

    /// Appends records to a loaded shard and returns the position after them. Called under
    /// the shard's lock: it queues, it never waits for I/O.
    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<i64>;

    /// The position after the last append to `shard`.
    fn appended(&self, shard: usize) -> i64;

    /// Resolves once every record of `shard` before `position` is durable.
    fn wait_durable(&self, shard: usize, position: i64) -> BoxFuture<'_, io::Result<()>>;

    /// Starts the background work of a shard that has just loaded (the group-commit flusher,
    /// the upstream producer, compaction).
    fn start(self: Arc<Self>, shard: usize, shutdown: CancellationToken);

    /// After a failed write or sync: stops the shard's background work and discards whatever
    /// of it is not known durable, so that loading the shard again ([`OffsetsStore::load`])
    /// finds exactly what was acknowledged. Blocking; an error means the storage is still
    /// failing (the caller tries again later).
    fn reset(&self, shard: usize) -> Result<(), LogError>;

    /// Makes everything appended durable now (at shutdown).
    fn sync_all(&self);

    /// Whether the shard's last write failed because another writer fenced this one (several
    /// proxies sharing the coordinator: the shard is someone else's now).
    fn fenced(&self, _shard: usize) -> bool {
        false
    }

    /// The shard is served elsewhere from now on: stop writing it and drop what is queued
    /// (never acknowledged). Does not wait; a later [`OffsetsStore::reset`] does.
    fn release(&self, _shard: usize) {}
}

/// The offsets logs of all shards in a data dir: one compacted keyed log per shard
/// (`coordinator/NN`), with a group-commit flusher each and one compaction task.
#[derive(Debug)]
pub struct ShardLogs {
    data: Arc<DataDir>,
    config: KeyedConfig,
    logs: Vec<Mutex<Option<Open>>>,
    compacting: AtomicBool,
}

/// A shard's open log and what stops its flusher.
#[derive(Debug)]
struct Open {
    log: Arc<KeyedLog>,
    stop: CancellationToken,
}

impl ShardLogs {
    pub fn new(data: Arc<DataDir>, partitions: usize, config: KeyedConfig) -> Self {
        ShardLogs { data, config, logs: (0..partitions).map(|_| Mutex::new(None)).collect(), compacting: AtomicBool::new(false) }
    }

    /// The log of a shard, once opened.
    pub fn get(&self, shard: usize) -> Option<Arc<KeyedLog>> {
        self.logs[shard].lock().expect("shard log slot").as_ref().map(|o| o.log.clone())
    }

    fn log(&self, shard: usize) -> io::Result<Arc<KeyedLog>> {
        self.get(shard).ok_or_else(|| io::Error::other(format!("offsets log {shard} is not open")))
    }

    /// Compacts shard logs that are mostly superseded records, one at a time.
    async fn run_compaction(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            for i in 0..self.logs.len() {
                let Some(log) = self.get(i) else { continue };
                if !log.needs_compaction() {
                    continue;
                }
                match tokio::task::spawn_blocking(move || log.compact(crate::clock::now_ms())).await {
                    Ok(Ok(stats)) => tracing::debug!(shard = i, ?stats, "compacted the offsets log"),
                    Ok(Err(e)) => tracing::error!(shard = i, "compaction failed: {e}"),
                    Err(e) => tracing::error!(shard = i, "compaction task failed: {e}"),
                }
            }
        }
    }
}

impl OffsetsStore for ShardLogs {
    fn load(&self, shard: usize, each: &mut Replay<'_>) -> Result<(), LogError> {
        let path = format!("coordinator/{shard:02}");
        let storage = self.data.storage(&path).map_err(|e| LogError::Io { what: path.clone(), source: e })?;
        let log = KeyedLog::open(&path, storage, self.config.clone(), |e| each(e.key, e.value))?;
        if let Some(old) = self.logs[shard].lock().expect("shard log slot").replace(Open { log, stop: CancellationToken::new() }) {
            old.stop.cancel();
        }
        Ok(())
    }

    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<i64> {
        let entries: Vec<(bytes::Bytes, Option<bytes::Bytes>)> = records.iter().map(|r| (r.key.clone(), r.value.clone())).collect();
        self.log(shard)?.append(&entries, crate::clock::now_ms())
    }

    fn appended(&self, shard: usize) -> i64 {
        self.get(shard).map_or(0, |l| l.next_offset())
    }

    fn wait_durable(&self, shard: usize, position: i64) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move { self.log(shard)?.wait_durable(position).await })
    }

    fn start(self: Arc<Self>, shard: usize, shutdown: CancellationToken) {
        if let Some(open) = self.logs[shard].lock().expect("shard log slot").as_mut() {
            // stopped by shutdown, or by a reset of this log
            open.stop = shutdown.child_token();
            tokio::spawn(open.log.clone().run_flusher(open.stop.clone()));
        }
        if !self.compacting.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.run_compaction(shutdown));
        }
    }

    fn reset(&self, shard: usize) -> Result<(), LogError> {
        let open = self.logs[shard].lock().expect("shard log slot").as_ref().map(|o| (o.log.clone(), o.stop.clone()));
        if let Some((log, stop)) = open {
            stop.cancel();
            // the log stays in its slot until it is cut back: a reset that fails is tried again
            log.discard_unsynced().map_err(|e| LogError::Io { what: format!("cutting back coordinator/{shard:02}"), source: e })?;
        }
        self.logs[shard].lock().expect("shard log slot").take();
        Ok(())
    }

    fn sync_all(&self) {
        for i in 0..self.logs.len() {
            if let Some(log) = self.get(i)
                && let Err(e) = log.sync_now()
            {
                tracing::error!(shard = i, "final sync of the offsets log failed: {e}");
            }
        }
    }
}
