//! A partition's view of transactions: the open ones (each producer's first offset in its
//! ongoing transaction), the aborted ones (the index read_committed fetches are answered
//! from), and the last stable offset that follows from them.
//!
//! Everything here is derived from the log: a transactional data batch opens (or continues)
//! its producer's transaction, a control batch (COMMIT or ABORT marker) ends it; an ABORT
//! ends it in the aborted index as `(producer id, first offset, marker offset)`. The same
//! [`PartitionTxns::observe`] runs on every append and on every batch walked at start-up.
//!
//! So that start-up need not walk every segment, each sealed segment of a transactional log
//! gets a [`SegmentTxns`] file beside it (`<base>.txnindex`, layout in `FORMAT.md`): the
//! transactions aborted by a marker in the segment, and those open at its end. A start-up
//! takes a segment from that file, or walks it when the file is missing or does not match;
//! either way the state after a restart is the state before it.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Buf, BufMut, BytesMut};

use crate::batch::{self, BatchHeader};

/// A producer's transaction open in this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTxn {
    pub producer_epoch: i16,
    /// Offset of its first batch here.
    pub first_offset: i64,
    /// Offset of its last batch here.
    pub last_offset: i64,
    /// Timestamp of its first batch here (DescribeProducers' transaction start).
    pub start_timestamp: i64,
}

/// An aborted transaction: read_committed consumers drop `producer_id`'s batches from
/// `first_offset` up to the marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Transaction state of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionTxns {
    open: BTreeMap<i64, OpenTxn>,
    /// In marker (= `last_offset`) order.
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTxns {
    /// Takes in a batch appended (or walked) at its offsets. `bytes` is the whole batch (a
    /// control batch's marker is in its record).
    pub fn observe(&mut self, h: &BatchHeader, bytes: &[u8]) {
        if !h.is_transactional() || !h.has_producer_id() {
            return;
        }
        if h.is_control() {
            let Some(marker) = batch::parse_marker(bytes) else { return };
            if let Some(open) = self.open.remove(&h.producer_id)
                && !marker.commit
            {
                self.aborted.push_back(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset: open.first_offset,
                    last_offset: h.base_offset,
                });
            }
            return;
        }
        let e = self.open.entry(h.producer_id).or_insert(OpenTxn {
            producer_epoch: h.producer_epoch,
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            start_timestamp: h.base_timestamp,
        });
        e.producer_epoch = e.producer_epoch.max(h.producer_epoch);
        e.last_offset = h.last_offset();
    }

    /// The last stable offset: the first offset of the oldest open transaction, else the high
    /// watermark.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.open.values().map(|o| o.first_offset).min().map_or(high_watermark, |f| f.min(high_watermark))
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must name: those
    /// whose marker is at or after `from` and whose first batch is before `upto`.
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        // markers are in order: skip those before `from` without scanning them all
        let skip = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted.iter().skip(skip).filter(|a| a.first_offset < upto).copied().collect()
    }

    /// The open transaction of `producer_id`, if any.
    pub fn open_of(&self, producer_id: i64) -> Option<OpenTxn> {
        self.open.get(&producer_id).copied()
    }

    /// Every open transaction, by producer id.
    pub fn open(&self) -> impl Iterator<Item = (i64, OpenTxn)> + '_ {
        self.open.iter().map(|(p, o)| (*p, *o))
    }

    /// Forgets aborted transactions wholly below the log start (retention, DeleteRecords).
    pub fn forget_before(&mut self, log_start: i64) {
        while self.aborted.front().is_some_and(|a| a.last_offset < log_start) {
            self.aborted.pop_front();
        }
    }

    /// Whether the partition has ever seen a transaction that is still open or in its index.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.aborted.is_empty()
    }

    /// The snapshot file of a segment `[base, end)` of `size` bytes that ends where the log
    /// ends now: its aborted transactions, and every transaction open now.
    pub(crate) fn segment(&self, base: i64, end: i64, size: u64) -> SegmentTxns {
        let from = self.aborted.partition_point(|a| a.last_offset < base);
        let aborted = self.aborted.iter().skip(from).take_while(|a| a.last_offset < end).copied().collect();
        SegmentTxns { size, end, aborted, open: self.open().collect() }
    }

    /// Takes in a segment from its snapshot file, as if it had been walked: its aborted
    /// transactions join the index, and the open ones are those open at its end.
    pub(crate) fn take_segment(&mut self, s: &SegmentTxns) {
        self.aborted.extend(s.aborted.iter().copied());
        self.open = s.open.iter().copied().collect();
    }
}

/// What a sealed segment's transaction file holds (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentTxns {
    /// The segment's size in bytes and its end (the next segment's base): a file that does not
    /// match its segment (one rewritten by compaction, say) is not used.
    pub size: u64,
    pub end: i64,
    /// Transactions whose ABORT marker is in the segment, in marker order.
    pub aborted: Vec<AbortedTxn>,
    /// Transactions open at the segment's end, by producer id.
    pub open: Vec<(i64, OpenTxn)>,
}

/// The layout version of a transaction file.
const SEGMENT_TXNS_VERSION: i8 = 0;

impl SegmentTxns {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = BytesMut::with_capacity(29 + self.aborted.len() * 24 + self.open.len() * 34);
        b.put_i8(SEGMENT_TXNS_VERSION);
        b.put_u64(self.size);
        b.put_i64(self.end);
        b.put_u32(self.aborted.len() as u32);
        for a in &self.aborted {
            b.put_i64(a.producer_id);
            b.put_i64(a.first_offset);
            b.put_i64(a.last_offset);
        }
        b.put_u32(self.open.len() as u32);
        for (pid, o) in &self.open {
            b.put_i64(*pid);
            b.put_i16(o.producer_epoch);
            b.put_i64(o.first_offset);
            b.put_i64(o.last_offset);
            b.put_i64(o.start_timestamp);
        }
        let crc = crc32c::crc32c(&b);
        b.put_u32(crc);
        b.to_vec()
    }

    /// A file's contents, or `None` if they are not a whole, current-version file.
    pub(crate) fn decode(bytes: &[u8]) -> Option<SegmentTxns> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut b = body;
        if b.remaining() < 21 || b.get_i8() != SEGMENT_TXNS_VERSION {
            return None;
        }
        let (size, end) = (b.get_u64(), b.get_i64());
        let n = b.get_u32() as usize;
        if b.remaining() < n.checked_mul(24)? {
            return None;
        }
        let aborted =
            (0..n).map(|_| AbortedTxn { producer_id: b.get_i64(), first_offset: b.get_i64(), last_offset: b.get_i64() }).collect();
        if b.remaining() < 4 {
            return None;
        }
        let n = b.get_u32() as usize;
        if b.remaining() != n.checked_mul(34)? {
            return None;
        }
        let open = (0..n)
            .map(|_| {
                let pid = b.get_i64();
                let producer_epoch = b.get_i16();
                (pid, OpenTxn { producer_epoch, first_offset: b.get_i64(), last_offset: b.get_i64(), start_timestamp: b.get_i64() })
            })
            .collect();
        Some(SegmentTxns { size, end, aborted, open })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Marker, ProducerStamp, encode_batch, encode_marker, patch_offsets};

    fn data(pid: i64, offset: i64, n: usize) -> (BatchHeader, Vec<u8>) {
        let recs: Vec<_> = (0..n).map(|_| (None, Some(&b"v"[..]))).collect();
        let mut b = encode_batch(&recs, 10, ProducerStamp { producer_id: pid, producer_epoch: 0, base_sequence: 0 }).unwrap();
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes()); // transactional (CRC not needed here)
        patch_offsets(&mut b, offset, 0);
        (BatchHeader::parse(&b).unwrap(), b)
    }

    fn marker(pid: i64, offset: i64, commit: bool) -> (BatchHeader, Vec<u8>) {
        let mut b = encode_marker(pid, 0, Marker { commit, coordinator_epoch: 0 }, 10);
        patch_offsets(&mut b, offset, 0);
        (BatchHeader::parse(&b).unwrap(), b)
    }

    #[test]
    fn lso_follows_the_oldest_open_transaction_and_aborts_are_indexed() {
        let mut t = PartitionTxns::default();
        let see = |t: &mut PartitionTxns, (h, b): (BatchHeader, Vec<u8>)| t.observe(&h, &b);
        assert_eq!(t.last_stable_offset(0), 0);
        see(&mut t, data(1, 0, 3)); // 0..=2
        see(&mut t, data(2, 3, 2)); // 3..=4
        assert_eq!(t.last_stable_offset(5), 0);
        see(&mut t, marker(1, 5, true));
        assert_eq!(t.last_stable_offset(6), 3);
        see(&mut t, data(2, 6, 1));
        see(&mut t, marker(2, 7, false));
        assert_eq!(t.last_stable_offset(8), 8);
        assert_eq!(t.aborted_between(0, 8), vec![AbortedTxn { producer_id: 2, first_offset: 3, last_offset: 7 }]);
        // a fetch from after the marker, or one ending before the first batch, names none
        assert!(t.aborted_between(8, 20).is_empty());
        assert!(t.aborted_between(0, 3).is_empty());
        // a marker for a producer with nothing open changes nothing
        see(&mut t, marker(9, 8, false));
        assert_eq!(t.aborted_between(0, 100).len(), 1);
        t.forget_before(7);
        assert_eq!(t.aborted_between(0, 100).len(), 1);
        t.forget_before(8);
        assert!(t.is_empty());
    }
}
