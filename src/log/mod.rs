//! corral's own log engine: segment files over a small storage seam with a file twin and a
//! memory twin. The byte layouts, what a torn write looks like and what recovery does are in
//! `FORMAT.md` beside this file.
//!
//! - [`storage`]: the seam (a directory of append-only files) and its twins.
//! - [`segments`]: the segment engine both logs share: segment files and names, walking
//!   entries, recovery (torn tails, corruption, missing segments, interrupted compactions),
//!   appends that leave no partial entry, rolls, and the compaction swap.
//! - [`keyed`]: compacted logs of keyed entries — the coordinator's offsets logs (one per
//!   shard) and the topic metadata log — with group-commit fsync.
//! - [`batches`]: partition logs of Kafka record batches, with a sparse offset index,
//!   retention, DeleteRecords and compaction of user topics.
//! - [`txns`]: a partition's transactions as its log holds them (open ones, the aborted
//!   index, the last stable offset), and their per-segment snapshot files.
//! - [`datadir`]: the data directory: its lock, its format version, where everything lives.

pub mod batches;
pub mod datadir;
pub mod keyed;
pub mod segments;
pub mod storage;
pub mod txns;

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

/// A segment file's name: `<base>.log` for a segment written by appends (its offsets run on
/// from `base` without gaps), or `<base>-<end>.log` for one written by compaction (it covers
/// `[base, end)`, with gaps where records were dropped). Both numbers have 20 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentName {
    pub base: i64,
    pub end: Option<i64>,
}

impl SegmentName {
    pub(crate) fn parse(name: &str) -> Option<SegmentName> {
        let stem = name.strip_suffix(".log")?;
        match stem.split_once('-') {
            None => Some(SegmentName { base: stem.parse().ok()?, end: None }),
            Some((b, e)) => Some(SegmentName { base: b.parse().ok()?, end: Some(e.parse().ok()?) }),
        }
    }

    pub(crate) fn file(&self) -> String {
        match self.end {
            None => format!("{:020}.log", self.base),
            Some(end) => format!("{:020}-{end:020}.log", self.base),
        }
    }
}

/// Segment names found in a listing, by base offset.
pub(crate) fn segment_names(names: &[String]) -> Vec<SegmentName> {
    let mut v: Vec<SegmentName> = names.iter().filter_map(|n| SegmentName::parse(n)).collect();
    v.sort_by_key(|s| s.base);
    v
}
