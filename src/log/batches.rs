//! A partition's log: Kafka record batches on the segment engine ([`super::segments`]), with a
//! sparse offset index per segment, retention, DeleteRecords, and compaction for compacted
//! topics.
//!
//! Byte layout: `FORMAT.md` beside this file ("Batch logs").
//!
//! # Locks and I/O
//!
//! The log lives under its partition's lock. Appends write there (a `write`, and a sync only
//! when `flush.messages` asks for one). A roll seals the segment without syncing it: the sync,
//! its index file and the recovery point are [`FlushWork`] the caller runs outside the lock.
//! Reads are planned under the lock ([`BatchLog::read_plan`]: which file, from where, up to
//! where — no I/O) and done outside it. Compaction is prepared under the lock, copies outside
//! it, and swaps the result in under it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::LogError;
use super::segments::{self, Compaction, Framing, Parsed, Segment, Segments};
use super::storage::{Storage, StorageFile};
use super::txns::{OpenTxn, PartitionTxns, SegmentTxns};
use crate::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};

/// Bytes between sparse index entries.
const INDEX_INTERVAL: u64 = 4096;
/// The file holding the log start offset moved by DeleteRecords.
const LOG_START_FILE: &str = "log-start-offset";
/// Present in a partition that has been part of a transaction: its sealed segments get
/// transaction files (`<base>.txnindex`, [`SegmentTxns`]), and at open a segment without a
/// matching one is walked, so the transactions (open ones, the aborted index) come back whole.
const TRANSACTIONAL_FILE: &str = "transactional";

/// Marks a partition's log as holding transactional batches (before the first can be
/// written): file work, for a blocking thread. Idempotent.
pub fn mark_transactional(storage: &dyn Storage) -> io::Result<()> {
    if segments::read_number(storage, TRANSACTIONAL_FILE)?.is_none() {
        segments::write_number(storage, TRANSACTIONAL_FILE, 1)?;
    }
    Ok(())
}

/// Settings a batch log acts on (a topic's resolved config).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    pub segment_bytes: u64,
    /// Sync after this many batches; `i64::MAX` = never.
    pub flush_messages: i64,
}

/// What a partition keeps about each segment besides its file.
#[derive(Debug, Clone)]
pub(crate) struct BatchMeta {
    /// (offset, byte position) of batch starts, about every INDEX_INTERVAL bytes.
    index: Vec<(i64, u32)>,
    last_offset: i64,
    max_timestamp: i64,
    bytes_since_index: u64,
    /// Of a sealed segment of a transactional log: the transactions open at its end (what a
    /// compaction ending with it writes into its transaction file). `None`: none were.
    open_at_end: Option<Arc<Vec<(i64, OpenTxn)>>>,
}

impl BatchMeta {
    fn empty(base: i64) -> Self {
        BatchMeta { index: Vec::new(), last_offset: base - 1, max_timestamp: -1, bytes_since_index: INDEX_INTERVAL, open_at_end: None }
    }

    /// Records a batch at `pos` in the index and the segment's bounds.
    fn note(&mut self, pos: u64, h: &BatchHeader) {
        if self.bytes_since_index >= INDEX_INTERVAL {
            self.index.push((h.base_offset, pos as u32));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.total_len() as u64;
        self.last_offset = self.last_offset.max(h.last_offset());
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
    }
}

/// Kafka record batches (magic 2), for the segment engine. Without `check`, only the header
/// is needed (a walk that wants positions reads no records); with it, the CRC too.
pub(crate) struct BatchFraming;

impl Framing for BatchFraming {
    type Head = BatchHeader;

    fn parse(buf: &[u8], check: bool) -> Parsed<BatchHeader> {
        if buf.len() < LOG_OVERHEAD {
            return Parsed::Short { need: None };
        }
        let l = i32::from_be_bytes(buf[8..12].try_into().expect("4 bytes"));
        if l < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Parsed::Bad("impossible batch length");
        }
        let total = LOG_OVERHEAD + l as usize;
        let need = if check { total } else { HEADER_LEN };
        if buf.len() < need {
            return Parsed::Short { need: Some(total) };
        }
        let Some(h) = BatchHeader::parse(buf) else { return Parsed::Short { need: Some(total) } };
        if h.magic != 2 {
            return Parsed::Bad("batch magic is not 2");
        }
        if check && batch::compute_crc(&buf[..total]) != h.crc {
            return Parsed::Bad("batch CRC-32C mismatch");
        }
        Parsed::Whole { head: h, len: total }
    }

    fn offsets(h: &BatchHeader) -> (i64, i64) {
        (h.base_offset, h.last_offset())
    }
}

fn index_name(base: i64) -> String {
    format!("{base:020}.index")
}

fn txn_index_name(base: i64) -> String {
    format!("{base:020}.txnindex")
}

/// One partition's log.
#[derive(Debug)]
pub struct BatchLog {
    name: String,
    storage: Arc<dyn Storage>,
    config: BatchConfig,
    segs: Segments<BatchMeta>,
    start: i64,
    next: i64,
    unflushed: i64,
    /// Sealed segments whose sync, index file and recovery point are owed ([`FlushWork`]).
    owed: Arc<Owed>,
    /// The log start offset last written to its file (writes happen outside the partition's
    /// lock, one at a time, never moving it back).
    start_written: Arc<std::sync::Mutex<i64>>,
    /// The transactions the log holds.
    txns: PartitionTxns,
    /// The log holds transactional batches (its sealed segments get transaction files).
    transactional: bool,
    /// The base of the last segment removed from the front, whose transaction file stays: the
    /// transactions open where the log now starts, for a walk of its first segment.
    txn_start_file: Option<i64>,
}

/// A sealed segment whose sync, index file(s) and recovery point are owed.
#[derive(Debug, Clone)]
struct Sealed {
    base: i64,
    file: Arc<dyn StorageFile>,
    meta: BatchMeta,
    size: u64,
    /// The base of the segment after it.
    next_base: i64,
    /// Its transaction file, in a transactional log.
    txns: Option<SegmentTxns>,
}

/// The sealed segments a log owes work for, shared between the log (under its partition's
/// lock) and the [`FlushWork`] that does the work (outside it).
#[derive(Debug, Default)]
struct Owed {
    sealed: std::sync::Mutex<Vec<Sealed>>,
    /// One flush at a time, so that the recovery point only ever moves past segments that
    /// were synced: two rolls in a row must not race each other's syncs.
    running: std::sync::Mutex<()>,
}

impl Owed {
    fn sealed(&self) -> std::sync::MutexGuard<'_, Vec<Sealed>> {
        self.sealed.lock().expect("owed segments lock")
    }
}

/// File work a roll left owed, done outside the partition's lock: sync the sealed segments,
/// write their index files, sync the directory, move the recovery point past them. Work that
/// fails stays owed, and the next flush of the log tries it again.
#[derive(Debug)]
pub struct FlushWork {
    storage: Arc<dyn Storage>,
    owed: Arc<Owed>,
}

impl FlushWork {
    /// Does the work. Blocking I/O: run it on a blocking thread.
    pub fn run(self) -> io::Result<()> {
        let _one = self.owed.running.lock().expect("flush lock");
        let todo: Vec<Sealed> = self.owed.sealed().clone();
        for s in &todo {
            s.file.sync()?;
            write_index(&*self.storage, s.base, &s.meta, s.size)?;
            if let Some(t) = &s.txns {
                write_txn_index(&*self.storage, s.base, t)?;
            }
        }
        self.storage.sync_dir()?;
        if let Some(last) = todo.last() {
            segments::write_recovery_point(&*self.storage, last.next_base)?;
        }
        self.owed.sealed().retain(|s| !todo.iter().any(|t| t.base == s.base));
        Ok(())
    }
}

/// A sync planned under the partition's lock ([`BatchLog::sync_plan`]), run outside it.
#[derive(Debug)]
pub struct SyncPlan {
    files: Vec<Arc<dyn StorageFile>>,
    batches: i64,
}

impl SyncPlan {
    /// Syncs the files, in order. Blocking I/O. Returns the batches now durable.
    pub fn run(self) -> io::Result<i64> {
        for f in &self.files {
            f.sync()?;
        }
        Ok(self.batches)
    }
}

/// Segments retention took out of a log (under the partition's lock, no I/O), whose files go
/// outside it ([`Removal::run`]).
#[derive(Debug, Default)]
#[must_use = "the removed segments' files are still on disk until the removal runs"]
pub struct Removal {
    storage: Option<Arc<dyn Storage>>,
    segments: usize,
    files: Vec<String>,
    /// The transaction file the last segment removed leaves behind, written first.
    start_txns: Option<(String, Vec<u8>)>,
    /// The new log start offset, written before any file goes.
    start: Option<i64>,
    start_written: Option<Arc<std::sync::Mutex<i64>>>,
}

impl Removal {
    /// A segment's files go with the removal.
    fn take(&mut self, name: String, base: i64) {
        self.segments += 1;
        self.files.extend([name, index_name(base)]);
    }

    /// How many segments went.
    pub fn segments(&self) -> usize {
        self.segments
    }

    /// Writes the new log start offset, removes the files, syncs the directory. Blocking I/O.
    /// (A crash midway leaves segments below the start offset, which the next open drops.)
    pub fn run(self) -> io::Result<()> {
        let Some(storage) = self.storage else { return Ok(()) };
        if let (Some(start), Some(written)) = (self.start, &self.start_written) {
            let mut written = written.lock().expect("log start lock");
            // a later move may have been written first: the file never goes back
            if start > *written {
                segments::write_number(&*storage, LOG_START_FILE, start)?;
                *written = start;
            }
        }
        if let Some((name, bytes)) = &self.start_txns {
            write_whole(&*storage, name, bytes)?;
        }
        for name in &self.files {
            storage.remove(name)?;
        }
        storage.sync_dir()
    }
}

/// A read planned under the partition's lock: done outside it with [`ReadPlan::read`].
#[derive(Debug)]
pub struct ReadPlan {
    file: Arc<dyn StorageFile>,
    /// Where to start looking (an index position at or before the batch holding `offset`).
    from: u64,
    /// The segment's valid length when planned: nothing past it is read.
    size: u64,
    offset: i64,
    max_bytes: usize,
    min_one: bool,
}

impl ReadPlan {
    /// Whole batches from the one holding the offset, within the byte limit (at least one
    /// batch when asked), as one buffer ready for a Fetch response.
    pub fn read(&self) -> io::Result<Bytes> {
        let mut start = None;
        let mut first_len = 0usize;
        let offset = self.offset;
        segments::walk::<BatchFraming>(&*self.file, self.from, false, |pos, h, _| {
            if pos >= self.size {
                return false;
            }
            if h.last_offset() >= offset {
                start = Some(pos);
                first_len = h.total_len();
                false
            } else {
                true
            }
        })?;
        let Some(start) = start else { return Ok(Bytes::new()) };
        let limit = if self.min_one { self.max_bytes.max(first_len) } else { self.max_bytes };
        let len = (self.size.saturating_sub(start)).min(limit as u64) as usize;
        if len < first_len {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; len];
        self.file.read_at(start, &mut buf)?;
        // Keep whole batches only.
        let mut end = 0usize;
        while end + LOG_OVERHEAD <= buf.len() {
            let l = i32::from_be_bytes(buf[end + 8..end + 12].try_into().expect("4 bytes")) as usize;
            if end + LOG_OVERHEAD + l > buf.len() {
                break;
            }
            end += LOG_OVERHEAD + l;
        }
        buf.truncate(end);
        Ok(Bytes::from(buf))
    }
}

/// A search by timestamp planned under the partition's lock: every live segment that may hold
/// the target, in order.
#[derive(Debug)]
pub struct TimestampPlan {
    segments: Vec<(Arc<dyn StorageFile>, u64)>,
    start: i64,
    target: Option<i64>,
}

impl TimestampPlan {
    /// The first batch (from the log start) whose max timestamp reaches the target.
    pub fn find(&self) -> io::Result<Option<Bytes>> {
        let Some(target) = self.target else { return Ok(None) };
        for (file, size) in &self.segments {
            let mut found = None;
            segments::walk::<BatchFraming>(&**file, 0, false, |pos, h, _| {
                if pos >= *size {
                    return false;
                }
                if h.last_offset() >= self.start && h.max_timestamp >= target {
                    found = Some((pos, h.total_len()));
                    false
                } else {
                    true
                }
            })?;
            if let Some((pos, len)) = found {
                let mut buf = vec![0u8; len];
                file.read_at(pos, &mut buf)?;
                return Ok(Some(Bytes::from(buf)));
            }
        }
        Ok(None)
    }
}

/// What compaction must know of a partition's transactions: nothing at or past the last
/// stable offset is compacted (its transactions are undecided), and the batches of aborted
/// transactions are dropped rather than allowed to supersede committed records. Control
/// batches (markers) are always kept.
#[derive(Debug, Clone)]
struct Settled {
    last_stable_offset: i64,
    aborted: Vec<super::txns::AbortedTxn>,
}

impl Settled {
    fn aborted(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self
                .aborted
                .iter()
                .any(|a| a.producer_id == h.producer_id && h.base_offset >= a.first_offset && h.base_offset < a.last_offset)
    }
}

/// Compaction of a `cleanup.policy=compact` partition, between its three steps (see
/// [`BatchLog::begin_compaction`]).
#[derive(Debug)]
pub struct CompactionPlan {
    name: String,
    storage: Arc<dyn Storage>,
    /// The sealed segments to rewrite: (base, file, size).
    inputs: Vec<(i64, Arc<dyn StorageFile>, u64)>,
    /// The segments after the inputs, as they were (read for newer keys up to the last stable
    /// offset, never rewritten).
    newer: Vec<(i64, Arc<dyn StorageFile>, u64)>,
    end: i64,
    now: i64,
    delete_retention_ms: i64,
    settled: Settled,
    /// In a transactional log, the compacted segment's transaction file, its size to be filled
    /// in (compaction keeps every marker, so the aborted transactions are those of the inputs,
    /// and the open ones at its end those at the last input's end).
    txns: Option<SegmentTxns>,
}

/// A compacted segment written and sealed, ready to swap in.
#[derive(Debug)]
pub struct CompactedSegment {
    c: Compaction,
    meta: BatchMeta,
    size: u64,
    inputs: usize,
    txns: Option<SegmentTxns>,
}

impl CompactionPlan {
    /// Writes the compacted segment (blocking I/O, outside the lock): pass 1 finds the newest
    /// offset of every key (keys only in memory), pass 2 copies the batches, each keeping the
    /// newest record per key (records without a key are kept; tombstones go once older than
    /// `delete.retention.ms`).
    pub fn write(self) -> Result<Option<CompactedSegment>, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("compacting partition {}", self.name), source: e };
        if self.inputs.is_empty() {
            return Ok(None);
        }
        let mut newest: HashMap<Bytes, i64> = HashMap::new();
        let every = self.inputs.iter().chain(self.newer.iter()).map(|(b, f, s)| (*b, f, *s));
        for (base, file, size) in every {
            let mut bad = None;
            segments::walk::<BatchFraming>(&**file, 0, true, |pos, h, bytes| {
                if pos >= size || h.base_offset >= self.settled.last_stable_offset {
                    return false;
                }
                if h.is_control() || self.settled.aborted(&h) {
                    return true;
                }
                match crate::batch::records::read_records(&Bytes::copy_from_slice(bytes)) {
                    Ok(records) => {
                        for r in records {
                            if let Some(k) = r.key {
                                newest.insert(k, r.offset);
                            }
                        }
                        true
                    }
                    Err(e) => {
                        bad = Some(e.to_string());
                        false
                    }
                }
            })
            .map_err(err)?;
            if let Some(e) = bad {
                return Err(LogError::Corrupt { file: format!("{}/{}", self.name, segments_file(base)), offset: 0, reason: e });
            }
        }
        let first = self.inputs[0].0;
        let c = Compaction::begin(&self.storage, first, self.end).map_err(err)?;
        let mut meta = BatchMeta::empty(first);
        meta.open_at_end = self.txns.as_ref().map(|t| Arc::new(t.open.clone()));
        let mut size = 0u64;
        let mut copy = || -> Result<(), LogError> {
            for (_, file, in_size) in &self.inputs {
                let mut io_err = None;
                segments::walk::<BatchFraming>(&**file, 0, true, |pos, h, bytes| {
                    if pos >= *in_size {
                        return false;
                    }
                    if self.settled.aborted(&h) {
                        return true;
                    }
                    if let Some(kept) = compact_batch(&Bytes::copy_from_slice(bytes), &newest, self.now, self.delete_retention_ms) {
                        let h = BatchHeader::parse(&kept).expect("built batch");
                        if let Err(e) = c.file().append(&kept) {
                            io_err = Some(e);
                            return false;
                        }
                        meta.note(size, &h);
                        size += kept.len() as u64;
                    }
                    true
                })
                .map_err(err)?;
                if let Some(e) = io_err {
                    return Err(err(e));
                }
            }
            c.seal().map_err(err)
        };
        if let Err(e) = copy() {
            c.abandon();
            return Err(e);
        }
        let txns = self.txns.map(|t| SegmentTxns { size, ..t });
        Ok(Some(CompactedSegment { c, meta, size, inputs: self.inputs.len(), txns }))
    }
}

fn segments_file(base: i64) -> String {
    format!("{base:020}.log")
}

impl CompactedSegment {
    /// The last step, outside the lock: old files go, the new segment takes its name and gets
    /// its index file (and transaction file).
    pub fn finish(self, old: Vec<String>, storage: &Arc<dyn Storage>) -> io::Result<usize> {
        let base = self.c.first();
        let mut doomed = old.clone();
        for name in &old {
            if let Some(n) = crate::log::SegmentName::parse(name) {
                doomed.push(index_name(n.base));
                doomed.push(txn_index_name(n.base));
            }
        }
        let (meta, size, inputs, txns) = (self.meta.clone(), self.size, self.inputs, self.txns.clone());
        self.c.finish(&doomed)?;
        write_index(&**storage, base, &meta, size)?;
        if let Some(t) = &txns {
            write_txn_index(&**storage, base, t)?;
        }
        Ok(inputs)
    }
}

impl BatchLog {
    /// Opens (or creates) a partition log. Segments before the recovery point with a valid
    /// index file (and, in a log marked with [`mark_transactional`], a transaction file that
    /// matches) are trusted as they are; the others are walked (CRC-checked), and a torn tail
    /// cut (see the engine's recovery rules). `each` sees the header and bytes of every batch
    /// walked, in order (to rebuild producer state); the log's transactions are rebuilt from
    /// the transaction files and the walked batches.
    pub fn open(
        name: &str,
        storage: Arc<dyn Storage>,
        config: BatchConfig,
        mut each: impl FnMut(&BatchHeader, &[u8]),
    ) -> Result<Self, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("partition {name}"), source: e };
        let names = Segments::<BatchMeta>::recover_names(name, &storage)?;
        let logged_start = segments::read_number(&*storage, LOG_START_FILE).map_err(err)?;
        // Without a recovery point file (a new log, whose first flush has not run yet), a
        // sealed segment was synced if it has its index file (the flush writes the index after
        // the sync): those are trusted, the others walked leniently.
        let has_point = segments::has_recovery_point(&*storage).map_err(err)?;
        let transactional = segments::read_number(&*storage, TRANSACTIONAL_FILE).map_err(err)?.is_some();
        let mut txns = PartitionTxns::default();
        let txn_start_file = if transactional { take_start_txns(&*storage, &names, &mut txns).map_err(err)? } else { None };
        let recovery_point = if has_point { segments::recovery_point(&*storage, &names).map_err(err)? } else { i64::MAX };
        let mut segs = Segments::new(name, storage.clone());
        let mut next = 0i64;
        for (i, seg_id) in names.iter().enumerate() {
            let base = seg_id.base;
            let seg_name = seg_id.file();
            // Segments follow each other without gaps; the first holds the log start offset.
            let missing = if i == 0 { logged_start.is_some_and(|s| s < base) } else { base != next };
            if missing {
                let from = if i == 0 { logged_start.unwrap_or(0) } else { next };
                return Err(LogError::Corrupt {
                    file: format!("{name}/{seg_name}"),
                    offset: 0,
                    reason: format!("a segment is missing: offsets {from}..{base} are in no segment"),
                });
            }
            let last = i + 1 == names.len();
            let mut indexed = if base >= recovery_point || last { None } else { load_index(&*storage, base, &seg_name).map_err(err)? };
            let lenient = base >= recovery_point || last || indexed.is_none() && !has_point;
            if transactional && let Some(s) = &mut indexed {
                // the transaction file must be there and match the segment, else the segment is walked
                let end = seg_id.end.or_else(|| names.get(i + 1).map(|n| n.base));
                match load_txn_index(&*storage, base).map_err(err)? {
                    Some(t) if t.size == s.size && Some(t.end) == end => {
                        txns.take_segment(&t);
                        s.meta.open_at_end = Some(Arc::new(t.open));
                    }
                    _ => indexed = None,
                }
            }
            let (segment, cut) = match indexed {
                Some(s) => (s, false),
                None => {
                    let mut meta = BatchMeta::empty(base);
                    let mut walked = txns.clone();
                    let r = segs.recover::<BatchFraming>(seg_id, lenient, |pos, h, bytes| {
                        meta.note(pos, &h);
                        walked.observe(&h, bytes);
                        each(&h, bytes);
                    })?;
                    if !last && !r.cut {
                        let end = seg_id.end.unwrap_or(meta.last_offset + 1).max(base);
                        // a transaction file that matches the segment as walked is used rather
                        // than the walk: it knows the transactions whose batches compaction
                        // dropped (a walk sees their markers only)
                        let file = if transactional { load_txn_index(&*storage, base).map_err(err)? } else { None };
                        let file = file.filter(|t| t.size == r.size && t.end == end);
                        let has_file = file.is_some();
                        let t = match file {
                            Some(t) => {
                                txns.take_segment(&t);
                                Some(t)
                            }
                            None => {
                                txns = walked;
                                transactional.then(|| txns.segment(base, end, r.size))
                            }
                        };
                        meta.open_at_end = t.as_ref().map(|t| Arc::new(t.open.clone()));
                        // derived data: without it (a full disk, say) the next open walks the
                        // segment again; it must not keep the log from opening
                        let written = write_index(&*storage, base, &meta, r.size).and_then(|()| match &t {
                            Some(t) if !has_file => write_txn_index(&*storage, base, t),
                            _ => Ok(()),
                        });
                        if let Err(e) = written {
                            tracing::warn!(partition = name, segment = seg_name.as_str(), "cannot write the segment's index files: {e}");
                        }
                    } else {
                        txns = walked;
                    }
                    (Segment { name: seg_name, file: r.file, size: r.size, sealed: !last && !r.cut, meta }, r.cut)
                }
            };
            next = seg_id.end.unwrap_or(segment.meta.last_offset + 1).max(base);
            segs.map.insert(base, segment);
            if cut && !last {
                Segments::<BatchMeta>::discard_after(name, &storage, &names[i + 1..])?;
                break;
            }
        }
        if let Some(last) = segs.map.values_mut().last() {
            last.sealed = false;
        }
        let start = logged_start.unwrap_or_else(|| names.first().map_or(0, |n| n.base));
        let mut log = BatchLog {
            name: name.to_string(),
            storage,
            config,
            segs,
            start,
            next,
            unflushed: 0,
            owed: Arc::default(),
            start_written: Arc::new(std::sync::Mutex::new(start)),
            txns,
            transactional,
            txn_start_file,
        };
        log.txns.forget_before(start);
        // a removal that wrote the new start offset but crashed before its files went
        if !log.sealed_below(start).is_empty() {
            log.drop_segments_below(start).map_err(err)?;
        }
        if log.segs.map.is_empty() {
            log.segs.start_segment(0, BatchMeta::empty(0)).map_err(err)?;
            log.storage.sync_dir().map_err(err)?;
            let _ = log.segs.take_dir_dirty();
        }
        Ok(log)
    }

    /// Seals the active segment (no I/O beyond creating the next file: its sync and index are
    /// owed as [`FlushWork`]).
    fn roll(&mut self) -> io::Result<()> {
        let (&base, seg) = self.segs.active();
        if seg.size == 0 {
            return Ok(());
        }
        let size = seg.size;
        let txns = self.transactional.then(|| self.txns.segment(base, self.next, size));
        let active = self.segs.map.last_entry().expect("segment").into_mut();
        active.meta.open_at_end = txns.as_ref().map(|t| Arc::new(t.open.clone()));
        let meta = active.meta.clone();
        let file = self.segs.seal_active();
        self.owed.sealed().push(Sealed { base, file, meta, size, next_base: self.next, txns });
        self.unflushed = 0;
        self.segs.start_segment(self.next, BatchMeta::empty(self.next))
    }

    /// Appends one batch whose offsets are already patched. A failed write leaves nothing of it
    /// behind. Returns whether a roll left [`FlushWork`] owed.
    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> io::Result<bool> {
        debug_assert_eq!(h.base_offset, self.next);
        let (_, active) = self.segs.active();
        let mut rolled = false;
        if active.size > 0 && active.size + batch.len() as u64 > self.config.segment_bytes {
            self.roll()?;
            rolled = true;
        }
        let pos = self.segs.active().1.size;
        let will_sync = self.unflushed + 1 >= self.config.flush_messages;
        let before = will_sync.then(|| self.segs.active().1.meta.clone());
        self.segs.append(batch)?;
        let seg = self.segs.map.last_entry().expect("segment").into_mut();
        seg.meta.note(pos, h);
        self.next = h.last_offset() + 1;
        self.unflushed += 1;
        if let Some(before) = before
            && let Err(e) = self.sync()
        {
            // the batch is not acknowledged: it must not stay readable
            self.segs.cut_active(pos)?;
            self.segs.map.last_entry().expect("segment").into_mut().meta = before;
            self.next = h.base_offset;
            self.unflushed -= 1;
            return Err(e);
        }
        self.txns.observe(h, batch);
        self.transactional |= h.is_transactional();
        Ok(rolled)
    }

    /// The file work rolls left owed (to run outside the partition's lock), if any.
    pub fn take_flush_work(&mut self) -> Option<FlushWork> {
        let dir = self.segs.take_dir_dirty();
        if self.owed.sealed().is_empty() && !dir {
            return None;
        }
        Some(FlushWork { storage: self.storage.clone(), owed: self.owed.clone() })
    }

    /// Syncs the active segment (and, first, any sealed segment a roll left unsynced).
    pub fn sync(&mut self) -> io::Result<()> {
        let sealed: Vec<Arc<dyn StorageFile>> = self.owed.sealed().iter().map(|s| s.file.clone()).collect();
        for f in &sealed {
            f.sync()?;
        }
        if self.unflushed > 0 || !sealed.is_empty() {
            self.segs.active().1.file.sync()?;
            self.unflushed = 0;
        }
        Ok(())
    }

    /// A sync of what is appended so far, to run outside the partition's lock (`flush.ms`):
    /// the sealed segments a roll left unsynced, then the active one. Once it ran,
    /// [`BatchLog::synced`] with its count.
    pub fn sync_plan(&self) -> SyncPlan {
        let mut files: Vec<Arc<dyn StorageFile>> = self.owed.sealed().iter().map(|s| s.file.clone()).collect();
        files.push(self.segs.active().1.file.clone());
        SyncPlan { files, batches: self.unflushed }
    }

    /// A [`SyncPlan`] of `batches` batches ran: they no longer count as unsynced.
    pub fn synced(&mut self, batches: i64) {
        self.unflushed = (self.unflushed - batches).max(0);
    }

    /// Batches appended since the last sync.
    pub fn unflushed(&self) -> i64 {
        self.unflushed
    }

    pub fn start_offset(&self) -> i64 {
        self.start
    }

    pub fn next_offset(&self) -> i64 {
        self.next
    }

    pub fn size_bytes(&self) -> u64 {
        self.segs.map.values().map(|s| s.size).sum()
    }

    /// The transactions the log holds: open ones, the aborted index.
    pub fn txns(&self) -> &PartitionTxns {
        &self.txns
    }

    /// The last stable offset (read_committed consumers read up to it): never below the log
    /// start offset, as in Kafka (a transaction whose first batches retention or
    /// DeleteRecords removed holds back nothing before the start).
    pub fn last_stable_offset(&self) -> i64 {
        self.txns.last_stable_offset(self.next).max(self.start)
    }

    /// Plans a read of whole batches from the one holding `offset` (no I/O: do it with
    /// [`ReadPlan::read`] once the partition's lock is released). `None` past the end.
    pub fn read_plan(&self, offset: i64, max_bytes: usize, min_one: bool) -> Option<ReadPlan> {
        let (_, seg) = self
            .segs
            .map
            .range(..=offset)
            .next_back()
            .filter(|(_, s)| s.meta.last_offset >= offset)
            .or_else(|| self.segs.map.range(offset..).find(|(_, s)| s.meta.last_offset >= offset))?;
        let from = seg.meta.index.partition_point(|(o, _)| *o <= offset).checked_sub(1).map_or(0, |i| seg.meta.index[i].1 as u64);
        Some(ReadPlan { file: seg.file.clone(), from, size: seg.size, offset, max_bytes, min_one })
    }

    /// Whole batches from the one holding `offset` (planned and read at once: for callers that
    /// hold the log itself, such as tests).
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        match self.read_plan(offset, max_bytes, min_one) {
            Some(plan) => plan.read(),
            None => Ok(Bytes::new()),
        }
    }

    /// Plans the search for the first batch whose max timestamp is at least `ts`, or with
    /// `ts == i64::MAX` the first batch holding the largest timestamp (no I/O).
    pub fn timestamp_plan(&self, ts: i64) -> TimestampPlan {
        let live: Vec<&Segment<BatchMeta>> = self.segs.map.values().filter(|s| s.meta.last_offset >= self.start && s.size > 0).collect();
        let target = if ts == i64::MAX { live.iter().map(|s| s.meta.max_timestamp).max() } else { Some(ts) };
        let segments = match target {
            Some(t) => live.iter().filter(|s| s.meta.max_timestamp >= t).map(|s| (s.file.clone(), s.size)).collect(),
            None => Vec::new(),
        };
        TimestampPlan { segments, start: self.start, target }
    }

    /// [`BatchLog::timestamp_plan`] searched at once (for tests).
    pub fn batch_by_timestamp(&self, ts: i64) -> io::Result<Option<Bytes>> {
        self.timestamp_plan(ts).find()
    }

    /// Moves the log start offset up to `offset` (DeleteRecords) and takes the segments wholly
    /// below it out of the log. No I/O: the new start is written durably, and the files
    /// removed, when the returned [`Removal`] runs (outside the partition's lock); the reply
    /// waits for that.
    pub fn delete_before(&mut self, offset: i64) -> Removal {
        let offset = offset.min(self.next);
        let mut removal = Removal::default();
        if offset <= self.start {
            return removal;
        }
        self.start = offset;
        self.txns.forget_before(offset);
        removal.start = Some(offset);
        let doomed = self.sealed_below(offset);
        removal.start_txns = self.start_txns_file(&doomed);
        for &base in &doomed {
            if let Some(seg) = self.segs.map.remove(&base) {
                removal.take(seg.name, base);
            }
            self.owed.sealed().retain(|s| s.base != base);
        }
        removal.files.extend(self.txn_files_going(&doomed));
        removal.storage = Some(self.storage.clone());
        removal.start_written = Some(self.start_written.clone());
        removal
    }

    /// The sealed segments that end at or before `offset` (a segment ends where the next one
    /// starts: compaction may have left no record at the end of its range).
    fn sealed_below(&self, offset: i64) -> Vec<i64> {
        let bases: Vec<(i64, bool)> = self.segs.map.iter().map(|(b, s)| (*b, s.sealed)).collect();
        bases.windows(2).take_while(|w| w[1].0 <= offset).filter(|w| w[0].1).map(|w| w[0].0).collect()
    }

    fn drop_segments_below(&mut self, offset: i64) -> io::Result<()> {
        let doomed = self.sealed_below(offset);
        if let Some((name, bytes)) = self.start_txns_file(&doomed) {
            write_whole(&*self.storage, &name, &bytes)?;
        }
        for &base in &doomed {
            if let Some(seg) = self.segs.map.remove(&base) {
                self.storage.remove(&seg.name)?;
            }
            self.owed.sealed().retain(|s| s.base != base);
            self.storage.remove(&index_name(base))?;
        }
        for name in self.txn_files_going(&doomed) {
            self.storage.remove(&name)?;
        }
        self.storage.sync_dir()
    }

    /// Of segments about to be removed from the front (still in the map): the transaction
    /// file the last of them leaves behind (see `txn_start_file`), written from memory, since its
    /// flush may not have run: the transactions open at its end.
    fn start_txns_file(&self, removing: &[i64]) -> Option<(String, Vec<u8>)> {
        let last = *removing.iter().max()?;
        let seg = self.segs.map.get(&last).filter(|_| self.transactional)?;
        let end = self.segs.map.range(last + 1..).next().map_or(seg.meta.last_offset + 1, |(b, _)| *b);
        let open = seg.meta.open_at_end.as_deref().cloned().unwrap_or_default();
        Some((txn_index_name(last), SegmentTxns { size: seg.size, end, aborted: Vec::new(), open }.encode()))
    }

    /// The transaction files that go with segments removed from the front: all but the last
    /// one's, which stays (see `txn_start_file`) in place of the one that stayed before.
    fn txn_files_going(&mut self, removed: &[i64]) -> Vec<String> {
        let Some(&last) = removed.iter().max() else { return Vec::new() };
        let mut going: Vec<String> = removed.iter().filter(|b| **b != last).map(|b| txn_index_name(*b)).collect();
        going.extend(self.txn_start_file.replace(last).filter(|b| *b != last).map(txn_index_name));
        going
    }

    /// Applies retention: takes out sealed segments older than `retention_ms`, and the oldest
    /// while the log is larger than `retention_bytes` (-1 = no limit), moving the log start
    /// offset past them. No I/O: their files go when the returned [`Removal`] runs.
    pub fn enforce_retention(&mut self, now: i64, retention_ms: i64, retention_bytes: i64) -> Removal {
        let mut removal = Removal::default();
        let mut doomed = Vec::new();
        loop {
            let total = self.size_bytes();
            let Some((&base, oldest)) = self.segs.map.first_key_value() else { break };
            if !oldest.sealed {
                break;
            }
            let too_old = retention_ms >= 0 && oldest.meta.max_timestamp >= 0 && now - oldest.meta.max_timestamp > retention_ms;
            let too_big = retention_bytes >= 0 && total - oldest.size >= retention_bytes as u64;
            if !(too_old || too_big) {
                break;
            }
            // its end, not its last offset + 1: compaction may have emptied its tail
            let next_start = self.segs.map.range(base + 1..).next().map_or(oldest.meta.last_offset + 1, |(b, _)| *b);
            if let Some(f) = self.start_txns_file(&[base]) {
                removal.start_txns = Some(f);
            }
            if let Some(seg) = self.segs.map.remove(&base) {
                removal.take(seg.name, base);
                doomed.push(base);
            }
            self.owed.sealed().retain(|s| s.base != base);
            if next_start > self.start {
                self.start = next_start;
                self.txns.forget_before(next_start);
                removal.start = Some(next_start);
            }
        }
        removal.files.extend(self.txn_files_going(&doomed));
        if !removal.files.is_empty() {
            removal.storage = Some(self.storage.clone());
            removal.start_written = Some(self.start_written.clone());
            tracing::info!(partition = self.name.as_str(), removed = removal.segments(), start = self.start, "retention removed segments");
        }
        removal
    }

    /// Seals the active segment (for compaction), if it holds anything.
    pub fn seal_active(&mut self) -> io::Result<()> {
        self.roll()
    }

    /// Step 1 of compaction (under the partition's lock, no I/O beyond a roll): seals the
    /// active segment and plans the rewrite of every sealed segment. `None` when there is
    /// nothing to compact. Then [`CompactionPlan::write`] (outside the lock),
    /// [`BatchLog::swap_compacted`] (under it) and [`CompactedSegment::finish`] (outside).
    pub fn begin_compaction(&mut self, now: i64, delete_retention_ms: i64) -> io::Result<Option<CompactionPlan>> {
        let sealed = self.segs.map.values().filter(|s| s.sealed).count();
        if sealed < 2 && self.segs.map.len() < 2 {
            return Ok(None);
        }
        self.roll()?;
        let settled = Settled { last_stable_offset: self.last_stable_offset(), aborted: self.txns.aborted_between(i64::MIN, i64::MAX) };
        let (&end, _) = self.segs.active();
        // only segments wholly below the last stable offset: their transactions are decided
        let inputs: Vec<(i64, Arc<dyn StorageFile>, u64)> = self
            .segs
            .map
            .range(..end)
            .filter(|(_, s)| s.sealed)
            .take_while(|(_, s)| s.meta.last_offset < settled.last_stable_offset)
            .map(|(b, s)| (*b, s.file.clone(), s.size))
            .collect();
        if inputs.is_empty() {
            return Ok(None);
        }
        let last = inputs.last().expect("one").0;
        let end = self.segs.map.range(last + 1..).next().map_or(end, |(b, _)| *b);
        let newer = self.segs.map.range(end..).map(|(b, s)| (*b, s.file.clone(), s.size)).collect();
        let txns = self.transactional.then(|| {
            let open = self.segs.map.get(&last).and_then(|s| s.meta.open_at_end.clone());
            SegmentTxns { open: open.map(|o| o.to_vec()).unwrap_or_default(), ..self.txns.segment(inputs[0].0, end, 0) }
        });
        Ok(Some(CompactionPlan {
            name: self.name.clone(),
            storage: self.storage.clone(),
            inputs,
            newer,
            end,
            now,
            delete_retention_ms,
            settled,
            txns,
        }))
    }

    /// Step 3 of compaction (under the lock, no I/O): the compacted segment replaces the ones
    /// it was made from. Returns the old segments' names for [`CompactedSegment::finish`].
    pub fn swap_compacted(&mut self, done: &CompactedSegment) -> Vec<String> {
        let old = self.segs.swap_in(&done.c, done.size, done.meta.clone());
        let gone: Vec<i64> = old.iter().filter_map(|n| crate::log::SegmentName::parse(n)).map(|n| n.base).collect();
        self.owed.sealed().retain(|s| !gone.contains(&s.base));
        old
    }

    /// Compaction in one go (for tests and callers that own the log outright).
    pub fn compact(&mut self, now: i64, delete_retention_ms: i64) -> Result<usize, LogError> {
        let name = self.name.clone();
        let err = |e: io::Error| LogError::Io { what: format!("compacting partition {name}"), source: e };
        let Some(plan) = self.begin_compaction(now, delete_retention_ms).map_err(err)? else { return Ok(0) };
        let Some(done) = plan.write()? else { return Ok(0) };
        let old = self.swap_compacted(&done);
        let storage = self.storage.clone();
        done.finish(old, &storage).map_err(err)
    }

    /// The storage the log's files are in.
    pub fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Takes new settings (a topic's config changed).
    pub fn set_config(&mut self, config: BatchConfig) {
        self.config = config;
    }

    /// Removes every file of the log (topic deletion).
    pub fn destroy(&mut self) -> io::Result<()> {
        self.owed.sealed().clear();
        self.segs.destroy()
    }
}

/// Keeps the newest record per key of one batch; `None` if nothing is left.
fn compact_batch(b: &Bytes, newest: &HashMap<Bytes, i64>, now: i64, delete_retention_ms: i64) -> Option<Bytes> {
    let h = BatchHeader::parse(b)?;
    if h.is_control() {
        // transaction markers stay: read_committed consumers and start-up need them
        return Some(b.clone());
    }
    let records = crate::batch::records::read_records(b).ok()?;
    let keep: Vec<&Bytes> = records
        .iter()
        .filter(|r| match &r.key {
            None => true,
            Some(k) => newest.get(k) == Some(&r.offset) && (r.has_value || r.timestamp.saturating_add(delete_retention_ms) > now),
        })
        .map(|r| &r.raw)
        .collect();
    if keep.is_empty() {
        return None;
    }
    if keep.len() == records.len() && h.compression() == 0 {
        return Some(b.clone());
    }
    // A new batch: same base offset, offset range and timestamps; uncompressed.
    let mut out = BytesMut::with_capacity(HEADER_LEN + keep.iter().map(|r| r.len()).sum::<usize>());
    out.extend_from_slice(&b[..HEADER_LEN]);
    for r in &keep {
        out.put_slice(r);
    }
    let batch_length = (out.len() - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attrs = h.attributes & !0x07;
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    out[57..61].copy_from_slice(&(keep.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Some(out.freeze())
}

/// Writes a derived file whole: to a temporary name, synced, renamed.
fn write_whole(storage: &dyn Storage, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    storage.remove(&tmp)?;
    let f = storage.open(&tmp, true)?;
    f.append(bytes)?;
    f.sync()?;
    storage.rename(&tmp, name)
}

/// A segment's transaction file ([`SegmentTxns`]).
fn write_txn_index(storage: &dyn Storage, base: i64, t: &SegmentTxns) -> io::Result<()> {
    write_whole(storage, &txn_index_name(base), &t.encode())
}

/// At open: the transaction file of the last segment removed from the front (one ending where
/// the first segment begins) gives the transactions open there; older ones go. Returns its base.
fn take_start_txns(storage: &dyn Storage, names: &[crate::log::SegmentName], txns: &mut PartitionTxns) -> io::Result<Option<i64>> {
    let Some(first) = names.first().map(|n| n.base) else { return Ok(None) };
    let mut older: Vec<i64> =
        storage.list()?.iter().filter_map(|n| n.strip_suffix(".txnindex")?.parse().ok()).filter(|b| *b < first).collect();
    older.sort_unstable();
    let mut kept = None;
    if let Some(&last) = older.last()
        && let Some(t) = load_txn_index(storage, last)?
        && t.end == first
    {
        txns.take_segment(&t);
        kept = Some(last);
    }
    for b in older.into_iter().filter(|b| Some(*b) != kept) {
        storage.remove(&txn_index_name(b))?;
    }
    Ok(kept)
}

/// A segment's transaction file, if it is there and whole.
fn load_txn_index(storage: &dyn Storage, base: i64) -> io::Result<Option<SegmentTxns>> {
    let Ok(f) = storage.open(&txn_index_name(base), false) else { return Ok(None) };
    let mut b = vec![0u8; f.len()? as usize];
    f.read_at(0, &mut b)?;
    Ok(SegmentTxns::decode(&b))
}

/// Index file: `i64 last_offset, i64 max_timestamp, u64 size`, then `(i64 offset, u32 pos)`
/// pairs, then a CRC-32C of all of it. Written to a temporary name, synced, renamed.
fn write_index(storage: &dyn Storage, base: i64, meta: &BatchMeta, size: u64) -> io::Result<()> {
    let mut b = BytesMut::with_capacity(28 + meta.index.len() * 12);
    b.put_i64(meta.last_offset);
    b.put_i64(meta.max_timestamp);
    b.put_u64(size);
    for (o, p) in &meta.index {
        b.put_i64(*o);
        b.put_u32(*p);
    }
    let crc = crc32c::crc32c(&b);
    b.put_u32(crc);
    write_whole(storage, &index_name(base), &b)
}

/// A sealed segment from its index file, if the file is there, whole, and matches the segment.
fn load_index(storage: &dyn Storage, base: i64, seg_name: &str) -> io::Result<Option<Segment<BatchMeta>>> {
    let Ok(f) = storage.open(&index_name(base), false) else { return Ok(None) };
    let len = f.len()? as usize;
    if len < 28 || !(len - 28).is_multiple_of(12) {
        return Ok(None);
    }
    let mut b = vec![0u8; len];
    f.read_at(0, &mut b)?;
    let crc = u32::from_be_bytes(b[len - 4..].try_into().expect("4 bytes"));
    if crc32c::crc32c(&b[..len - 4]) != crc {
        return Ok(None);
    }
    let size = u64::from_be_bytes(b[16..24].try_into().expect("8 bytes"));
    let file = storage.open(seg_name, false)?;
    if size != file.len()? {
        return Ok(None);
    }
    let index = b[24..len - 4]
        .chunks(12)
        .map(|c| (i64::from_be_bytes(c[..8].try_into().expect("8")), u32::from_be_bytes(c[8..].try_into().expect("4"))))
        .collect();
    Ok(Some(Segment {
        name: seg_name.to_string(),
        file,
        size,
        sealed: true,
        meta: BatchMeta {
            index,
            last_offset: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
            max_timestamp: i64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
            bytes_since_index: 0,
            open_at_end: None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::client_batch;
    use crate::log::storage::{Crash, MemoryStorage};

    fn config(segment_bytes: u64) -> BatchConfig {
        BatchConfig { segment_bytes, flush_messages: i64::MAX }
    }

    /// Appends `n` client batches of `per` records, patched like the partition does.
    fn fill(log: &mut BatchLog, n: usize, per: i32) {
        for _ in 0..n {
            let mut b = client_batch(per, -1, -1);
            batch::patch_offsets(&mut b, log.next_offset(), 0);
            let h = BatchHeader::parse(&b).unwrap();
            log.append(&b, &h).unwrap();
        }
    }

    fn offsets_in(bytes: &Bytes) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let h = BatchHeader::parse(&bytes[at..]).unwrap();
            out.push(h.base_offset);
            at += h.total_len();
        }
        out
    }

    #[test]
    fn append_roll_read_reopen() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(1000), |_, _| {}).unwrap();
        fill(&mut log, 40, 3);
        assert_eq!(log.next_offset(), 120);
        assert!(log.segs.map.len() > 3);
        let all = log.read(0, usize::MAX, true).unwrap();
        assert_eq!(offsets_in(&all)[0], 0);
        let mid = log.read(61, 1, true).unwrap();
        assert_eq!(offsets_in(&mid), vec![60], "min_one returns the batch holding the offset");
        assert!(log.read(61, 1, false).unwrap().is_empty());
        assert!(log.read(120, 1 << 20, true).unwrap().is_empty());
        log.sync().unwrap();
        let mut headers = 0;
        let again = BatchLog::open("p", Arc::new(mem), config(1000), |_, _| headers += 1).unwrap();
        assert_eq!(again.next_offset(), 120);
        assert!(headers > 0);
        assert_eq!(offsets_in(&again.read(99, 1 << 20, true).unwrap())[0], 99);
    }

    /// A storage twin for the crash tests: files in memory, or in a temporary directory on
    /// disk. A crash is modelled the same way on both: a copy of the files as the OS has them
    /// (a process crash), edited as a torn write, damage or an interrupted step leaves them.
    enum Twin {
        Mem(MemoryStorage),
        Disk(tempfile::TempDir),
    }

    impl Twin {
        fn both() -> Vec<Twin> {
            vec![Twin::Mem(MemoryStorage::new()), Twin::Disk(tempfile::tempdir().unwrap())]
        }

        fn storage(&self) -> Arc<dyn Storage> {
            match self {
                Twin::Mem(m) => Arc::new(m.clone()),
                Twin::Disk(d) => Arc::new(crate::log::storage::FileStorage::open(d.path()).unwrap()),
            }
        }

        fn kind(&self) -> &'static str {
            match self {
                Twin::Mem(_) => "memory",
                Twin::Disk(_) => "disk",
            }
        }

        /// A copy of the files as they are now.
        fn image(&self) -> Twin {
            match self {
                Twin::Mem(m) => Twin::Mem(m.crash_image(Crash::KeepAll)),
                Twin::Disk(d) => {
                    let copy = tempfile::tempdir().unwrap();
                    for e in std::fs::read_dir(d.path()).unwrap() {
                        let e = e.unwrap();
                        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
                    }
                    Twin::Disk(copy)
                }
            }
        }

        fn bytes(&self, name: &str) -> Vec<u8> {
            match self {
                Twin::Mem(m) => m.bytes(name).unwrap(),
                Twin::Disk(d) => std::fs::read(d.path().join(name)).unwrap(),
            }
        }

        fn set_bytes(&self, name: &str, bytes: Vec<u8>) {
            match self {
                Twin::Mem(m) => m.set_bytes(name, bytes),
                Twin::Disk(d) => std::fs::write(d.path().join(name), bytes).unwrap(),
            }
        }

        fn names(&self) -> Vec<String> {
            let mut v = self.storage().list().unwrap();
            v.sort();
            v
        }

        fn open(&self, segment_bytes: u64) -> Result<BatchLog, LogError> {
            BatchLog::open("p", self.storage(), config(segment_bytes), |_, _| {})
        }
    }

    /// Every cut of an unsynced tail recovers to a prefix of whole batches (both twins).
    #[test]
    fn torn_tails_recover_to_whole_batches() {
        for twin in Twin::both() {
            let mut log = twin.open(1 << 20).unwrap();
            fill(&mut log, 3, 2);
            log.sync().unwrap();
            let synced = twin.bytes(&segments_file(0)).len();
            fill(&mut log, 3, 2);
            let all = twin.bytes(&segments_file(0));
            for cut in 0..=all.len() - synced {
                let image = twin.image();
                image.set_bytes(&segments_file(0), all[..synced + cut].to_vec());
                let mut seen = Vec::new();
                let r = BatchLog::open("p", image.storage(), config(1 << 20), |h, _| seen.push(h.base_offset)).unwrap();
                assert!(r.next_offset() >= 6, "{} cut {cut}: synced batches lost", twin.kind());
                assert_eq!(seen, (0..seen.len() as i64).map(|i| i * 2).collect::<Vec<_>>());
                assert_eq!(r.next_offset(), seen.len() as i64 * 2);
            }
        }
    }

    /// The same, with the memory twin's model of what a crash keeps: every byte count of the
    /// unsynced tail.
    #[test]
    fn modelled_crashes_keep_the_synced_batches() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(1 << 20), |_, _| {}).unwrap();
        fill(&mut log, 3, 2);
        log.sync().unwrap();
        fill(&mut log, 3, 2);
        for cut in 0..=mem.unsynced(&segments_file(0)) {
            let r = BatchLog::open("p", Arc::new(mem.crash_image(Crash::KeepUnsynced(cut))), config(1 << 20), |_, _| {}).unwrap();
            assert!(r.next_offset() >= 6, "cut {cut}");
        }
    }

    #[test]
    fn damage_before_the_tail_stops_start_up() {
        for twin in Twin::both() {
            let mut log = twin.open(1 << 20).unwrap();
            fill(&mut log, 3, 2);
            log.sync().unwrap();
            let mut b = twin.bytes(&segments_file(0));
            b[70] ^= 0x01; // inside the first batch's records
            twin.set_bytes(&segments_file(0), b);
            match twin.open(1 << 20) {
                Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, 0, "{}", twin.kind()),
                other => panic!("{}: expected corruption, got {other:?}", twin.kind()),
            }
        }
    }

    #[test]
    fn a_missing_segment_stops_start_up() {
        for twin in Twin::both() {
            let mut log = twin.open(400).unwrap();
            fill(&mut log, 12, 2);
            log.sync().unwrap();
            let logs: Vec<String> = twin.names().into_iter().filter(|n| n.ends_with(".log")).collect();
            assert!(logs.len() >= 3);
            twin.storage().remove(&logs[1]).unwrap();
            match twin.open(400) {
                Err(LogError::Corrupt { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
                other => panic!("{}: expected a missing-segment error, got {other:?}", twin.kind()),
            }
        }
    }

    /// What a reader sees of a log: its next offset, and the newest offset of each key.
    fn view(log: &BatchLog) -> (i64, std::collections::BTreeMap<Bytes, i64>) {
        let mut keys = std::collections::BTreeMap::new();
        let mut offset = log.start_offset();
        while offset < log.next_offset() {
            // a read returns batches of one segment
            let chunk = log.read(offset, usize::MAX, true).unwrap();
            assert!(!chunk.is_empty(), "nothing at offset {offset}");
            let mut at = 0;
            while at < chunk.len() {
                let h = BatchHeader::parse(&chunk[at..]).unwrap();
                for r in crate::batch::records::read_records(&chunk.slice(at..at + h.total_len())).unwrap() {
                    keys.insert(r.key.unwrap(), r.offset);
                }
                offset = h.last_offset() + 1;
                at += h.total_len();
            }
        }
        (log.next_offset(), keys)
    }

    /// Compaction's crash points (both twins): a crash before the swap file exists (a
    /// `.compact` left behind), after it (the old segments all there, or some already
    /// removed), or after the end, recovers to the same log: the old segments or the new one,
    /// never a mix, and nothing a reader could tell apart.
    #[test]
    fn compaction_crash_points_recover_to_the_old_or_the_new_log() {
        for twin in Twin::both() {
            let kind = twin.kind();
            let mut log = twin.open(400).unwrap();
            fill(&mut log, 12, 3);
            log.seal_active().unwrap();
            log.sync().unwrap();
            if let Some(work) = log.take_flush_work() {
                work.run().unwrap();
            }
            let want = view(&log);
            let before = twin.image();
            let old: Vec<String> = twin.names().into_iter().filter(|n| n.ends_with(".log")).collect();
            log.compact(0, 0).unwrap();
            assert_eq!(view(&log), want, "{kind}: compaction changed what a reader sees");
            let compacted = twin.names().into_iter().find(|n| n.ends_with(".log") && n.contains('-')).expect("a compacted segment");
            let stem = compacted.trim_end_matches(".log").to_string();
            let new_bytes = twin.bytes(&compacted);
            let reopened = |image: &Twin, what: &str| {
                let log = image.open(400).unwrap_or_else(|e| panic!("{kind}, {what}: {e}"));
                assert_eq!(view(&log), want, "{kind}, {what}");
                let left = image.names();
                assert!(!left.iter().any(|n| n.ends_with(".compact") || n.ends_with(".swap")), "{kind}, {what}: {left:?}");
                left
            };
            // the new log after the end
            reopened(&twin.image(), "after the end");
            // before the swap: a half-written .compact
            let image = before.image();
            image.set_bytes(&format!("{stem}.compact"), new_bytes[..new_bytes.len() / 2].to_vec());
            let left = reopened(&image, "a .compact left behind");
            assert!(old.iter().all(|n| left.contains(n)), "{kind}: the old segments must stay");
            // after the swap file was made, every old segment still there
            let image = before.image();
            image.set_bytes(&format!("{stem}.swap"), new_bytes.clone());
            let left = reopened(&image, "a .swap with the old segments");
            assert!(left.contains(&compacted), "{kind}: the swap was not finished: {left:?}");
            // after the swap file was made and the first old segment removed
            let image = before.image();
            image.set_bytes(&format!("{stem}.swap"), new_bytes.clone());
            image.storage().remove(&old[0]).unwrap();
            let left = reopened(&image, "a .swap with an old segment gone");
            assert!(left.contains(&compacted), "{kind}: {left:?}");
        }
    }

    #[test]
    fn delete_records_and_retention_move_the_start() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(500), |_, _| {}).unwrap();
        fill(&mut log, 20, 2);
        let segments = log.segs.map.len();
        log.delete_before(13).run().unwrap();
        assert_eq!(log.start_offset(), 13);
        assert!(log.segs.map.len() < segments);
        assert_eq!(offsets_in(&log.read(13, 1 << 20, true).unwrap())[0], 12, "the batch holding 13");
        let reopened = BatchLog::open("p", Arc::new(mem.clone()), config(500), |_, _| {}).unwrap();
        assert_eq!(reopened.start_offset(), 13);
        // retention by size: the oldest segments go while the rest still holds the limit
        let mut log = reopened;
        let before = log.size_bytes();
        let removal = log.enforce_retention(0, -1, 400);
        let removed = removal.segments();
        removal.run().unwrap();
        assert!(removed > 0, "size {before}");
        assert!(log.size_bytes() < 400 + 500);
        assert!(log.start_offset() > 13);
        // retention by time: segments whose newest timestamp is old go (client_batch stamps ~1000 ms)
        let removal = log.enforce_retention(1_000_000, 10_000, -1);
        let removed = removal.segments();
        removal.run().unwrap();
        assert!(removed > 0);
        assert_eq!(log.segs.map.len(), 1, "only the active segment is left");
    }

    #[test]
    fn compaction_keeps_the_newest_record_per_key() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(400), |_, _| {}).unwrap();
        // client_batch keys are k0..kN: the same keys again and again
        fill(&mut log, 12, 3);
        log.seal_active().unwrap();
        let before = log.size_bytes();
        log.compact(0, 0).unwrap();
        assert!(log.size_bytes() < before);
        let all = log.read(0, usize::MAX, true).unwrap();
        let mut keys = std::collections::BTreeMap::new();
        let mut at = 0;
        while at < all.len() {
            let h = BatchHeader::parse(&all[at..]).unwrap();
            for r in crate::batch::records::read_records(&all.slice(at..at + h.total_len())).unwrap() {
                keys.insert(r.key.unwrap(), r.offset);
            }
            at += h.total_len();
        }
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[&Bytes::from("k2")], 35, "the newest k2 is the last record");
        let reopened = BatchLog::open("p", Arc::new(mem), config(400), |_, _| {}).unwrap();
        assert_eq!(reopened.next_offset(), 36);
    }

    /// Writes one record `key = value` (a transactional batch of `pid` when given).
    fn put(log: &mut BatchLog, key: &str, value: &str, pid: Option<i64>) -> i64 {
        let stamp = batch::ProducerStamp {
            producer_id: pid.unwrap_or(-1),
            producer_epoch: if pid.is_some() { 0 } else { -1 },
            base_sequence: if pid.is_some() { 0 } else { -1 },
        };
        let mut b = batch::encode_batch(&[(Some(key.as_bytes()), Some(value.as_bytes()))], 1, stamp).unwrap();
        if pid.is_some() {
            b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
            let crc = batch::compute_crc(&b);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        let at = log.next_offset();
        batch::patch_offsets(&mut b, at, 0);
        log.append(&b, &BatchHeader::parse(&b).unwrap()).unwrap();
        at
    }

    fn marker(log: &mut BatchLog, pid: i64, commit: bool) -> i64 {
        let mut b = batch::encode_marker(pid, 0, batch::Marker { commit, coordinator_epoch: 0 }, 1);
        let at = log.next_offset();
        batch::patch_offsets(&mut b, at, 0);
        log.append(&b, &BatchHeader::parse(&b).unwrap()).unwrap();
        at
    }

    /// Every record (key, value) and the number of control batches, reading segment by segment.
    fn values(log: &BatchLog) -> (Vec<(String, String)>, usize) {
        let (mut kv, mut markers, mut next) = (Vec::new(), 0, 0);
        while next < log.next_offset() {
            let all = log.read(next, usize::MAX, true).unwrap();
            assert!(!all.is_empty(), "nothing read from {next}");
            let mut at = 0;
            while at < all.len() {
                let h = BatchHeader::parse(&all[at..]).unwrap();
                let b = all.slice(at..at + h.total_len());
                if h.is_control() {
                    markers += 1;
                } else {
                    for r in crate::batch::records::read_records(&b).unwrap() {
                        kv.push((
                            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                            String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                        ));
                    }
                }
                next = h.last_offset() + 1;
                at += h.total_len();
            }
        }
        (kv, markers)
    }

    #[test]
    fn compaction_keeps_markers_drops_aborted_records_and_stops_at_the_last_stable_offset() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(200), |_, _| {}).unwrap();
        put(&mut log, "a", "1", None);
        put(&mut log, "a", "2", Some(7)); // aborted below: must not supersede a=1
        let abort = marker(&mut log, 7, false);
        put(&mut log, "b", "1", Some(8));
        marker(&mut log, 8, true);
        put(&mut log, "b", "2", None);
        let open_from = put(&mut log, "c", "1", Some(9)); // undecided: the last stable offset
        put(&mut log, "c", "0", None);
        log.seal_active().unwrap();
        assert_eq!(log.last_stable_offset(), open_from);
        let aborted = super::super::txns::AbortedTxn { producer_id: 7, first_offset: 1, last_offset: abort };
        assert_eq!(log.txns().aborted_between(0, i64::MAX), vec![aborted]);
        let plan = log.begin_compaction(0, 0).unwrap().unwrap();
        let done = plan.write().unwrap().unwrap();
        let old = log.swap_compacted(&done);
        let storage = log.storage();
        done.finish(old, &storage).unwrap();
        let (kv, markers) = values(&log);
        assert_eq!(markers, 2, "both markers stay");
        let pairs: Vec<(&str, &str)> = kv.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        // a=2 (aborted) is gone and a=1 kept; b=1 superseded by b=2; c untouched past the LSO
        assert_eq!(pairs, vec![("a", "1"), ("b", "2"), ("c", "1"), ("c", "0")]);
        let reopened = BatchLog::open("p", Arc::new(mem), config(200), |_, _| {}).unwrap();
        assert_eq!(reopened.next_offset(), log.next_offset());
    }

    /// One step of a transactional partition's life, for the transaction-file tests.
    #[derive(Debug, Clone)]
    enum Step {
        /// A transactional record of producer `pid` (opens or continues its transaction).
        Txn(i64),
        /// A COMMIT or ABORT marker of `pid`.
        End(i64, bool),
        /// A plain record.
        Plain,
        /// A flush of what rolls left owed (the background flush ran).
        Flush,
        /// Compaction (begin, write, swap, finish).
        Compact,
        /// DeleteRecords up to `n`% of the way to the high watermark.
        DeleteTo(u8),
    }

    fn steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
        use proptest::prelude::*;
        let step = prop_oneof![
            6 => (1i64..5).prop_map(Step::Txn),
            3 => ((1i64..5), any::<bool>()).prop_map(|(p, c)| Step::End(p, c)),
            3 => Just(Step::Plain),
            2 => Just(Step::Flush),
            1 => Just(Step::Compact),
            1 => (0u8..60).prop_map(Step::DeleteTo),
        ];
        proptest::collection::vec(step, 1..120)
    }

    /// Runs the steps on a new transactional log of small segments; flushes at the end.
    fn transactional_log(mem: &MemoryStorage, steps: &[Step]) -> BatchLog {
        let storage: Arc<dyn Storage> = Arc::new(mem.clone());
        mark_transactional(&*storage).unwrap();
        let mut log = BatchLog::open("p", storage.clone(), config(300), |_, _| {}).unwrap();
        let mut n = 0;
        for step in steps {
            n += 1;
            match step {
                Step::Txn(pid) => drop(put(&mut log, &format!("k{}", n % 7), &n.to_string(), Some(*pid))),
                Step::End(pid, commit) => drop(marker(&mut log, *pid, *commit)),
                Step::Plain => drop(put(&mut log, &format!("k{}", n % 7), &n.to_string(), None)),
                Step::Flush => {
                    if let Some(w) = log.take_flush_work() {
                        w.run().unwrap();
                    }
                }
                Step::Compact => {
                    if let Some(plan) = log.begin_compaction(0, i64::MAX).unwrap()
                        && let Some(done) = plan.write().unwrap()
                    {
                        let old = log.swap_compacted(&done);
                        done.finish(old, &storage).unwrap();
                    }
                }
                Step::DeleteTo(pct) => {
                    let to = log.next_offset() * i64::from(*pct) / 100;
                    log.delete_before(to).run().unwrap();
                }
            }
        }
        if let Some(w) = log.take_flush_work() {
            w.run().unwrap();
        }
        log.sync().unwrap();
        log
    }

    /// Reopens `mem`; returns the log and the offsets of the batches start-up walked.
    fn reopen(mem: &MemoryStorage) -> (BatchLog, Vec<i64>) {
        let mut walked = Vec::new();
        let log = BatchLog::open("p", Arc::new(mem.clone()), config(300), |h, _| walked.push(h.base_offset)).unwrap();
        (log, walked)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Start-up takes the sealed segments' transactions from their files (walking only the
        /// last segment) and ends with the state the log had; with a transaction file gone
        /// or damaged, it walks that segment and still ends there.
        #[test]
        fn transaction_files_bring_back_the_state_the_log_had(steps in steps(), victim in 0usize..64, damage in proptest::prelude::any::<bool>()) {
            let mem = MemoryStorage::new();
            let log = transactional_log(&mem, &steps);
            let (again, walked) = reopen(&mem);
            proptest::prop_assert_eq!(again.txns(), log.txns());
            proptest::prop_assert_eq!(again.last_stable_offset(), log.last_stable_offset());
            // (from the recovery point on, segments are walked anyway: compaction does not move it)
            let names = crate::log::segment_names(&mem.list().unwrap());
            let active = segments::recovery_point(&mem, &names).unwrap();
            proptest::prop_assert!(walked.iter().all(|o| *o >= active), "walked {:?}, the recovery point is {}", walked, active);
            // every sealed segment has its file; take one away or damage it
            let first = *log.segs.map.first_key_value().unwrap().0;
            let files: Vec<String> = mem.list().unwrap().into_iter().filter(|n| n.ends_with(".txnindex") && n[..20].parse::<i64>().unwrap() >= first).collect();
            let sealed = log.segs.map.values().filter(|s| s.sealed).count();
            proptest::prop_assert_eq!(files.len(), sealed);
            if !files.is_empty() {
                let name = &files[victim % files.len()];
                let base: i64 = name.trim_end_matches(".txnindex").parse().unwrap();
                let seg = &log.segs.map[&base];
                if damage {
                    let mut b = mem.bytes(name).unwrap();
                    let at = b.len() / 2;
                    b[at] ^= 0x40;
                    mem.set_bytes(name, b);
                } else {
                    mem.remove(name).unwrap();
                }
                let (third, walked) = reopen(&mem);
                proptest::prop_assert!(seg.size == 0 || walked.iter().any(|o| *o >= base && *o <= seg.meta.last_offset), "{} not walked", name);
                proptest::prop_assert_eq!(third.last_stable_offset(), log.last_stable_offset());
                proptest::prop_assert_eq!(third.txns().open().collect::<Vec<_>>(), log.txns().open().collect::<Vec<_>>());
                if seg.name.contains('-') {
                    // a compacted segment walked: the data of its aborted transactions is gone,
                    // so their index entries (which covered nothing left) may be too
                    let end = crate::log::SegmentName::parse(&seg.name).unwrap().end.unwrap();
                    proptest::prop_assert_eq!(third.txns().aborted_between(end, i64::MAX), log.txns().aborted_between(end, i64::MAX));
                } else {
                    proptest::prop_assert_eq!(third.txns(), log.txns());
                }
                // ... and wrote the file again: the next start walks only the last segment
                let (_, walked) = reopen(&mem);
                proptest::prop_assert!(walked.iter().all(|o| *o >= active));
            }
        }
    }

    /// A compacted segment whose last records were dropped (an aborted transaction) ends past
    /// its last offset; DeleteRecords into that gap keeps it, and the log opens again and again.
    #[test]
    fn a_start_in_a_compacted_segments_empty_tail_keeps_the_segment() {
        use Step::*;
        // segments of 300 bytes hold four of these batches: [plain, aborted x3] [open txn, abort ...];
        // the open transaction keeps compaction to the first, whose tail it drops
        let steps = [Plain, Txn(1), Txn(1), Txn(1), Txn(3), End(1, false), Compact];
        let mem = MemoryStorage::new();
        let mut log = transactional_log(&mem, &steps);
        let (&first, seg) = log.segs.map.first_key_value().unwrap();
        let end = crate::log::SegmentName::parse(&seg.name).unwrap().end.expect("a compacted segment");
        assert!(seg.meta.last_offset + 1 < end, "the compacted segment {} ends in a gap (last offset {})", seg.name, seg.meta.last_offset);
        let size = seg.size;
        log.delete_before(end - 1).run().unwrap();
        assert_eq!(log.segs.map.first_key_value().map(|(b, _)| *b), Some(first), "the segment holding the new start stays");
        for _ in 0..2 {
            let (again, _) = reopen(&mem);
            assert_eq!((again.start_offset(), again.next_offset()), (end - 1, log.next_offset()));
            assert_eq!(again.segs.map.first_key_value().map(|(b, _)| *b), Some(first));
        }
        // retention that takes the segment moves the start to its end, where the next begins
        let mut again = reopen(&mem).0;
        let removal = again.enforce_retention(0, -1, (again.size_bytes() - size) as i64);
        assert!(removal.segments() >= 1);
        removal.run().unwrap();
        assert_eq!(again.start_offset(), *again.segs.map.first_key_value().unwrap().0);
        let (third, _) = reopen(&mem);
        assert_eq!(third.start_offset(), again.start_offset());
    }

    /// Retention takes a segment's transaction file with it, and the index forgets the
    /// transactions aborted wholly below the new start.
    #[test]
    fn retention_removes_transaction_files_with_their_segments() {
        let mem = MemoryStorage::new();
        let mut steps = Vec::new();
        for pid in 1..=6 {
            steps.extend([Step::Txn(pid), Step::Txn(pid), Step::End(pid, pid % 2 == 0), Step::Plain]);
        }
        let mut log = transactional_log(&mem, &steps);
        let before = log.txns().aborted_between(0, i64::MAX);
        assert_eq!(before.len(), 3);
        let names = |mem: &MemoryStorage| -> Vec<String> {
            let mut v = mem.list().unwrap().into_iter().filter(|n| n.ends_with(".txnindex")).collect::<Vec<_>>();
            v.sort();
            v
        };
        assert!(names(&mem).len() >= 3, "{:?}", names(&mem));
        let bases: Vec<i64> = log.segs.map.keys().copied().collect();
        let removal = log.enforce_retention(0, -1, (log.size_bytes() / 2) as i64);
        assert!(removal.segments() >= 1);
        removal.run().unwrap();
        // one transaction file per sealed segment left; of those that went, only the last one's
        // (the transactions open where the log now starts)
        let first = *log.segs.map.first_key_value().unwrap().0;
        let last_gone = bases.iter().copied().filter(|b| *b < first).max().unwrap();
        let mut kept: Vec<String> = log.segs.map.iter().filter(|(_, s)| s.sealed).map(|(b, _)| txn_index_name(*b)).collect();
        kept.insert(0, txn_index_name(last_gone));
        assert_eq!(names(&mem), kept);
        let start = log.start_offset();
        let after = log.txns().aborted_between(0, i64::MAX);
        assert_eq!(after, before.iter().copied().filter(|a| a.last_offset >= start).collect::<Vec<_>>());
        assert!(after.len() < before.len(), "the segments that went held an aborted transaction");
        let (again, _) = reopen(&mem);
        assert_eq!(again.txns(), log.txns());
    }
}
