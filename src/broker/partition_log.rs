//! The storage seam of one partition: an ordered log of record batches, and its in-memory twin.
//!
//! Batches are stored exactly as they go out on Fetch (base offset and leader epoch already
//! patched), so a read is a copy of stored bytes and never a re-encoding.

use std::collections::VecDeque;
use std::io;

use bytes::Bytes;

use super::batch::BatchHeader;

/// An append-only log of record batches with a movable start.
pub trait PartitionLog: Send + std::fmt::Debug {
    /// Appends one batch whose offsets are already patched; `header` is its parsed header.
    fn append(&mut self, batch: Bytes, header: &BatchHeader) -> io::Result<()>;
    /// The batches from the one holding `offset` on, while their total stays within
    /// `max_bytes`; the first batch is returned even if larger when `min_one` is set (KIP-74).
    fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> io::Result<Vec<Bytes>>;
    /// The log start offset: the first offset a consumer may read.
    fn start_offset(&self) -> i64;
    /// The log end offset: the offset the next record gets.
    fn next_offset(&self) -> i64;
    /// Moves the start offset up to `offset` and drops the batches wholly below it.
    fn delete_before(&mut self, offset: i64) -> io::Result<()>;
    /// The first batch whose max timestamp is at least `ts` (`None`: no such batch), or with
    /// `ts == i64::MAX`, the batch holding the largest timestamp.
    fn batch_by_timestamp(&self, ts: i64) -> io::Result<Option<Bytes>>;
    /// Makes every appended batch durable (no-op for memory).
    fn sync(&mut self) -> io::Result<()>;
    /// Bytes held, for DescribeLogDirs and retention by size.
    fn size_bytes(&self) -> u64;
}

#[derive(Debug, Clone)]
struct Stored {
    last: i64,
    max_ts: i64,
    bytes: Bytes,
}

/// The in-memory twin: a deque of batches.
#[derive(Debug, Default)]
pub struct MemoryLog {
    batches: VecDeque<Stored>,
    start: i64,
    next: i64,
    size: u64,
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }
}

impl PartitionLog for MemoryLog {
    fn append(&mut self, batch: Bytes, h: &BatchHeader) -> io::Result<()> {
        debug_assert_eq!(h.base_offset, self.next);
        self.next = h.last_offset() + 1;
        self.size += batch.len() as u64;
        self.batches.push_back(Stored {
            last: h.last_offset(),
            max_ts: h.max_timestamp,
            bytes: batch,
        });
        Ok(())
    }

    fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> io::Result<Vec<Bytes>> {
        let first = self.batches.partition_point(|b| b.last < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in self.batches.range(first..) {
            let len = b.bytes.len();
            if total + len > max_bytes && !(min_one && out.is_empty()) {
                break;
            }
            total += len;
            out.push(b.bytes.clone());
        }
        Ok(out)
    }

    fn start_offset(&self) -> i64 {
        self.start
    }

    fn next_offset(&self) -> i64 {
        self.next
    }

    fn delete_before(&mut self, offset: i64) -> io::Result<()> {
        let offset = offset.min(self.next);
        if offset <= self.start {
            return Ok(());
        }
        self.start = offset;
        while self.batches.front().is_some_and(|b| b.last < offset) {
            if let Some(b) = self.batches.pop_front() {
                self.size -= b.bytes.len() as u64;
            }
        }
        Ok(())
    }

    fn batch_by_timestamp(&self, ts: i64) -> io::Result<Option<Bytes>> {
        let live = self.batches.iter().filter(|b| b.last >= self.start);
        if ts == i64::MAX {
            // the first batch holding the largest timestamp
            let mut best: Option<&Stored> = None;
            for b in live {
                if best.is_none_or(|x| b.max_ts > x.max_ts) {
                    best = Some(b);
                }
            }
            return Ok(best.map(|b| b.bytes.clone()));
        }
        Ok(live.into_iter().find(|b| b.max_ts >= ts).map(|b| b.bytes.clone()))
    }

    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.size
    }
}
