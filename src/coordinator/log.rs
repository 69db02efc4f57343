//! Where the coordinator's records go: one compacted keyed log per shard
//! (`coordinator/NN` in the data dir, or in memory for `--ephemeral`), with a group-commit
//! flusher, and the durable offset replies wait for.

use std::io;
use std::sync::{Arc, OnceLock};

use super::record::RawRecord;
use crate::log::LogError;
use crate::log::datadir::DataDir;
use crate::log::keyed::{KeyedConfig, KeyedLog};

/// The offsets logs of all shards.
#[derive(Debug)]
pub struct ShardLogs {
    data: Arc<DataDir>,
    config: KeyedConfig,
    logs: Vec<OnceLock<Arc<KeyedLog>>>,
}

impl ShardLogs {
    pub fn new(data: Arc<DataDir>, partitions: usize, config: KeyedConfig) -> Self {
        ShardLogs { data, config, logs: (0..partitions).map(|_| OnceLock::new()).collect() }
    }

    /// The log of a shard, once opened.
    pub fn get(&self, shard: usize) -> Option<&Arc<KeyedLog>> {
        self.logs[shard].get()
    }

    fn log(&self, shard: usize) -> io::Result<&Arc<KeyedLog>> {
        self.get(shard).ok_or_else(|| io::Error::other(format!("offsets log {shard} is not open")))
    }

    /// Opens a shard's log, replaying every record through `each` in log order.
    pub fn open(&self, shard: usize, mut each: impl FnMut(&[u8], Option<&[u8]>)) -> Result<Arc<KeyedLog>, LogError> {
        let path = format!("coordinator/{shard:02}");
        let storage = self.data.storage(&path).map_err(|e| LogError::Io { what: path.clone(), source: e })?;
        let log = KeyedLog::open(&path, storage, self.config.clone(), |e| {
            each(e.key, e.value)
        })?;
        let _ = self.logs[shard].set(log.clone());
        Ok(log)
    }

    /// Appends a shard's records (under its lock); returns the offset after them.
    pub fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<i64> {
        let entries: Vec<(bytes::Bytes, Option<bytes::Bytes>)> =
            records.iter().map(|r| (r.key.clone(), r.value.clone())).collect();
        self.log(shard)?.append(&entries, super::now_ms())
    }

    /// The offset after the last append.
    pub fn appended(&self, shard: usize) -> i64 {
        self.get(shard).map_or(0, |l| l.next_offset())
    }

    /// Resolves once every record below `offset` is durable.
    pub async fn wait_durable(&self, shard: usize, offset: i64) -> io::Result<()> {
        self.log(shard)?.wait_durable(offset).await
    }
}
