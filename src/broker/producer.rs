//! Idempotent-producer state of one partition: the epoch and the last batches of each
//! producer id, so retries are answered with their original offsets and gaps are refused.
//!
//! Rules (Kafka's `ProducerStateManager`): an epoch older than the one we know is
//! INVALID_PRODUCER_EPOCH; a newer epoch must start at sequence 0; within an epoch a batch must
//! start right after the last sequence (wrapping at i32::MAX to 0), else
//! OUT_OF_ORDER_SEQUENCE_NUMBER; a batch equal to one of the last five is a duplicate and is
//! answered with the first one's offsets. A producer id we hold no state for (new, or its
//! state went with retention) may start at any sequence.

use std::collections::{HashMap, VecDeque};

use crate::batch::BatchHeader;
use crate::error::ErrorCode;

/// How many recent batches per producer are kept for duplicate detection.
pub const BATCHES_KEPT: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    first_seq: i32,
    last_seq: i32,
    base_offset: i64,
    timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    recent: VecDeque<Seen>,
    /// Offset of the last batch, so retention can forget producers whose data is gone.
    last_offset: i64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Append it.
    Append,
    /// It was appended before: answer with these offsets and append nothing.
    Duplicate { base_offset: i64, timestamp: i64 },
    /// Refuse it with this error code.
    Reject(ErrorCode),
}

/// Producer state of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerTable {
    entries: HashMap<i64, Entry>,
}

fn next_seq(s: i32) -> i32 {
    if s == i32::MAX { 0 } else { s + 1 }
}

impl ProducerTable {
    /// Judges a batch before it is appended (`h` is the batch as the client sent it).
    pub fn check(&self, h: &BatchHeader) -> Verdict {
        if !h.has_producer_id() {
            return Verdict::Append;
        }
        if h.base_sequence < 0 {
            return Verdict::Reject(ErrorCode::INVALID_RECORD);
        }
        let Some(e) = self.entries.get(&h.producer_id) else {
            return Verdict::Append;
        };
        if h.producer_epoch < e.epoch {
            return Verdict::Reject(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        if h.producer_epoch > e.epoch {
            return if h.base_sequence == 0 { Verdict::Append } else { Verdict::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER) };
        }
        let last = h.last_sequence();
        if let Some(s) = e.recent.iter().find(|s| s.first_seq == h.base_sequence && s.last_seq == last) {
            return Verdict::Duplicate { base_offset: s.base_offset, timestamp: s.timestamp };
        }
        match e.recent.back() {
            Some(prev) if h.base_sequence != next_seq(prev.last_seq) => Verdict::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            _ => Verdict::Append,
        }
    }

    /// Takes in a transaction marker written for `producer_id` at `epoch` (at `offset`): a
    /// newer epoch (a fenced producer's transaction aborted with a bumped epoch) replaces the
    /// producer's, so batches of the older epoch are refused from now on. Sequences go on
    /// within an epoch.
    pub fn marker(&mut self, producer_id: i64, epoch: i16, offset: i64) {
        let e = self.entries.entry(producer_id).or_insert_with(|| Entry { epoch, recent: VecDeque::new(), last_offset: offset });
        if epoch > e.epoch {
            e.epoch = epoch;
            e.recent.clear();
        }
        e.last_offset = e.last_offset.max(offset);
    }

    /// The epoch this partition knows for `producer_id`.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.entries.get(&producer_id).map(|e| e.epoch)
    }

    /// Every producer with state here: (id, epoch, last sequence, last timestamp, last offset)
    /// for DescribeProducers.
    pub fn describe(&self) -> Vec<(i64, i16, i32, i64, i64)> {
        let mut v: Vec<_> = self
            .entries
            .iter()
            .map(|(pid, e)| {
                let last = e.recent.back();
                (*pid, e.epoch, last.map_or(-1, |s| s.last_seq), last.map_or(-1, |s| s.timestamp), e.last_offset)
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Records a batch that was appended at `base_offset` (a control batch: [`Self::marker`]).
    pub fn record(&mut self, h: &BatchHeader, base_offset: i64, timestamp: i64) {
        if !h.has_producer_id() {
            return;
        }
        if h.is_control() {
            self.marker(h.producer_id, h.producer_epoch, base_offset);
            return;
        }
        let e = self.entries.entry(h.producer_id).or_insert_with(|| Entry {
            epoch: h.producer_epoch,
            recent: VecDeque::new(),
            last_offset: -1,
        });
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.recent.clear();
        }
        if e.recent.len() == BATCHES_KEPT {
            e.recent.pop_front();
        }
        e.recent.push_back(Seen { first_seq: h.base_sequence, last_seq: h.last_sequence(), base_offset, timestamp });
        e.last_offset = base_offset + h.last_offset_delta as i64;
    }

    /// Forgets producers whose every batch lies below `log_start` (retention, DeleteRecords).
    pub fn forget_before(&mut self, log_start: i64) {
        self.entries.retain(|_, e| e.last_offset >= log_start);
    }

    /// Number of producers with state here.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer has state here.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::client_batch;

    fn header(pid: i64, epoch: i16, seq: i32, n: i32) -> BatchHeader {
        let mut b = client_batch(n, pid, seq);
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        BatchHeader::parse(&b).unwrap()
    }

    #[test]
    fn in_order_duplicate_gap_and_epochs() {
        let mut t = ProducerTable::default();
        let a = header(1, 0, 0, 3);
        assert_eq!(t.check(&a), Verdict::Append);
        t.record(&a, 100, 5);
        // the same batch again is a duplicate with the original offsets
        assert_eq!(t.check(&a), Verdict::Duplicate { base_offset: 100, timestamp: 5 });
        // next in sequence
        let b = header(1, 0, 3, 2);
        assert_eq!(t.check(&b), Verdict::Append);
        t.record(&b, 103, 6);
        // a gap
        assert_eq!(t.check(&header(1, 0, 9, 1)), Verdict::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
        // an older epoch
        let mut t2 = t.clone();
        t2.record(&header(1, 2, 0, 1), 105, 7);
        assert_eq!(t2.check(&header(1, 1, 0, 1)), Verdict::Reject(ErrorCode::INVALID_PRODUCER_EPOCH));
        // a newer epoch must start at 0
        assert_eq!(t.check(&header(1, 1, 5, 1)), Verdict::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
        assert_eq!(t.check(&header(1, 1, 0, 1)), Verdict::Append);
        // an unknown producer may start anywhere; no producer id means no checks
        assert_eq!(t.check(&header(2, 0, 17, 1)), Verdict::Append);
        assert_eq!(t.check(&header(-1, -1, -1, 1)), Verdict::Append);
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut t = ProducerTable::default();
        for i in 0..6 {
            let h = header(1, 0, i, 1);
            assert_eq!(t.check(&h), Verdict::Append);
            t.record(&h, i as i64, 0);
        }
        assert!(matches!(t.check(&header(1, 0, 5, 1)), Verdict::Duplicate { .. }));
        assert!(matches!(t.check(&header(1, 0, 1, 1)), Verdict::Duplicate { .. }));
        // the first batch fell out of the window: it is now simply out of order
        assert_eq!(t.check(&header(1, 0, 0, 1)), Verdict::Reject(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER));
        t.forget_before(10);
        assert!(t.is_empty());
    }
}
