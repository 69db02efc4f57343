//! corral's own log engine: segment files over a small storage seam with a file twin and a
//! memory twin. The byte layouts, what a torn write looks like and what recovery does are in
//! `FORMAT.md` beside this file.
//!
//! - [`storage`]: the seam (a directory of append-only files) and its twins.
//! - [`keyed`]: compacted logs of keyed entries — the coordinator's offsets logs (one per
//!   shard) and the topic metadata log — with group-commit fsync.
//! - [`batches`]: partition logs of Kafka record batches, with a sparse offset index,
//!   retention, DeleteRecords and compaction of user topics.
//! - [`datadir`]: the data directory: its lock, its format version, where everything lives.

pub mod batches;
pub mod datadir;
pub mod keyed;
pub mod storage;

/// A storage problem.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Bytes that are not what we wrote, somewhere recovery may not cut (not the tail of the
    /// last segment). Start-up stops: nothing is dropped silently.
    #[error("corrupt log data in {file} at byte {offset}: {reason}")]
    Corrupt { file: String, offset: u64, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}
