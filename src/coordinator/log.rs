//! The seam between the coordinator and where its records are kept: one ordered log per shard,
//! with a durability watermark replies wait for.

use std::io;
use std::sync::Mutex;

use tokio::sync::watch;

use super::record::RawRecord;

/// Where a shard's records go.
pub trait OffsetsLog: Send + Sync + std::fmt::Debug {
    /// Appends records (called under the shard lock, so log order is application order) and
    /// returns the log position just after them.
    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<u64>;
    /// The position after the last append.
    fn appended(&self, shard: usize) -> u64;
    /// Resolves once everything up to `position` is durable.
    fn wait_durable(&self, shard: usize, position: u64) -> std::pin::Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>>;
    /// Every record of a shard, in order (start-up replay).
    fn read_all(&self, shard: usize) -> io::Result<Vec<RawRecord>>;
}

/// The in-memory twin: records in a vector per shard, durable at once.
#[derive(Debug)]
pub struct MemoryOffsetsLog {
    shards: Vec<Mutex<Vec<RawRecord>>>,
    durable: Vec<watch::Sender<u64>>,
}

impl MemoryOffsetsLog {
    pub fn new(partitions: usize) -> Self {
        MemoryOffsetsLog {
            shards: (0..partitions).map(|_| Mutex::new(Vec::new())).collect(),
            durable: (0..partitions).map(|_| watch::channel(0).0).collect(),
        }
    }
}

impl OffsetsLog for MemoryOffsetsLog {
    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<u64> {
        let mut v = self.shards[shard].lock().expect("log lock");
        v.extend_from_slice(records);
        let p = v.len() as u64;
        self.durable[shard].send_replace(p);
        Ok(p)
    }

    fn appended(&self, shard: usize) -> u64 {
        self.shards[shard].lock().expect("log lock").len() as u64
    }

    fn wait_durable(&self, shard: usize, position: u64) -> std::pin::Pin<Box<dyn Future<Output = io::Result<()>> + Send + '_>> {
        let mut rx = self.durable[shard].subscribe();
        Box::pin(async move {
            rx.wait_for(|p| *p >= position)
                .await
                .map(|_| ())
                .map_err(|_| io::Error::other("offsets log closed"))
        })
    }

    fn read_all(&self, shard: usize) -> io::Result<Vec<RawRecord>> {
        Ok(self.shards[shard].lock().expect("log lock").clone())
    }
}
