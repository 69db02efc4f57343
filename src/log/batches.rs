//! A partition's log: segment files of Kafka record batches with a sparse offset index,
//! recovery of a torn tail, retention, DeleteRecords, and compaction for compacted topics.
//!
//! Byte layout: `FORMAT.md` beside this file ("Batch logs").

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::{LogError, SegmentName, segment_names};
use super::storage::{Storage, StorageFile};
use crate::broker::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};

/// Bytes between sparse index entries.
const INDEX_INTERVAL: u64 = 4096;
/// How much is read at once while scanning batch headers.
const READ_CHUNK: usize = 1 << 20;
/// The file holding the log start offset moved by DeleteRecords.
const LOG_START_FILE: &str = "log-start-offset";

/// Settings a batch log acts on (a topic's resolved config).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    pub segment_bytes: u64,
    /// Sync after this many batches; `i64::MAX` = never.
    pub flush_messages: i64,
}

#[derive(Debug)]
struct Segment {
    name: String,
    file: Arc<dyn StorageFile>,
    size: u64,
    /// (offset, byte position) of batch starts, about every INDEX_INTERVAL bytes.
    index: Vec<(i64, u32)>,
    last_offset: i64,
    max_timestamp: i64,
    bytes_since_index: u64,
    sealed: bool,
}

/// A batch found while scanning: where it starts and its header.
#[derive(Debug, Clone, Copy)]
struct Found {
    pos: u64,
    header: BatchHeader,
}

fn segment_name(base: i64) -> String {
    format!("{base:020}.log")
}
fn index_name(base: i64) -> String {
    format!("{base:020}.index")
}

/// Walks the batches of a file from `from`, calling `each` with every whole batch found (and
/// its bytes when `with_bytes`); stops at the end, at a batch running past the end, or at bytes
/// that are not a batch. Returns where it stopped and why (None = clean end).
fn walk(
    file: &dyn StorageFile,
    from: u64,
    check_crc: bool,
    mut each: impl FnMut(Found, Option<&[u8]>) -> bool,
) -> io::Result<(u64, Option<&'static str>)> {
    let len = file.len()?;
    let mut pos = from;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = from;
    loop {
        if pos >= len {
            return Ok((pos, None));
        }
        let in_buf = (pos - buf_start) as usize;
        let have = buf.len().saturating_sub(in_buf);
        // We need the header, and with CRC checks the whole batch, in the buffer.
        let need = if have >= LOG_OVERHEAD {
            let l = i32::from_be_bytes(buf[in_buf + 8..in_buf + 12].try_into().expect("4 bytes"));
            if l < (HEADER_LEN - LOG_OVERHEAD) as i32 {
                return Ok((pos, Some("impossible batch length")));
            }
            let total = LOG_OVERHEAD as u64 + l as u64;
            if pos + total > len {
                return Ok((pos, Some("batch runs past the end of the file")));
            }
            if check_crc { total as usize } else { HEADER_LEN }
        } else {
            LOG_OVERHEAD
        };
        if have < need {
            let want = (need.max(READ_CHUNK) as u64).min(len - pos) as usize;
            if want < need {
                return Ok((pos, Some("batch runs past the end of the file")));
            }
            buf = vec![0u8; want];
            file.read_at(pos, &mut buf)?;
            buf_start = pos;
            continue;
        }
        let Some(h) = BatchHeader::parse(&buf[in_buf..]) else {
            return Ok((pos, Some("short batch header")));
        };
        if h.magic != 2 {
            return Ok((pos, Some("batch magic is not 2")));
        }
        let whole = if check_crc {
            let b = &buf[in_buf..in_buf + h.total_len()];
            if batch::compute_crc(b) != h.crc {
                return Ok((pos, Some("batch CRC-32C mismatch")));
            }
            Some(b)
        } else {
            None
        };
        if !each(Found { pos, header: h }, whole) {
            return Ok((pos, None));
        }
        pos += h.total_len() as u64;
    }
}

/// Whether a valid batch starts anywhere after `from` (torn tail versus corruption).
fn valid_batch_after(file: &dyn StorageFile, from: u64) -> io::Result<bool> {
    let len = file.len()?;
    if len <= from + HEADER_LEN as u64 {
        return Ok(false);
    }
    let mut buf = vec![0u8; (len - from) as usize];
    file.read_at(from, &mut buf)?;
    for i in 1..buf.len().saturating_sub(HEADER_LEN) {
        if let Some(h) = BatchHeader::parse(&buf[i..])
            && h.magic == 2
            && h.batch_length >= (HEADER_LEN - LOG_OVERHEAD) as i32
            && i + h.total_len() <= buf.len()
            && batch::compute_crc(&buf[i..i + h.total_len()]) == h.crc
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One partition's log.
#[derive(Debug)]
pub struct BatchLog {
    name: String,
    storage: Arc<dyn Storage>,
    config: BatchConfig,
    segments: BTreeMap<i64, Segment>,
    start: i64,
    next: i64,
    unflushed: i64,
}

impl BatchLog {
    /// Opens (or creates) a partition log, recovering the last segment. `each` sees the header
    /// of every batch of the last segment, in order (to rebuild producer state).
    pub fn open(name: &str, storage: Arc<dyn Storage>, config: BatchConfig, mut each: impl FnMut(&BatchHeader)) -> Result<Self, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("partition {name}"), source: e };
        recover_compaction(&*storage).map_err(err)?;
        let names = segment_names(&storage.list().map_err(err)?);
        let logged_start = read_log_start(&*storage).map_err(err)?;
        let mut segments = BTreeMap::new();
        let mut next = 0i64;
        for (i, seg_id) in names.iter().enumerate() {
            let base = seg_id.base;
            let seg_name = seg_id.file();
            let shown = format!("{name}/{seg_name}");
            // Segments follow each other without gaps; the first holds the log start offset.
            let missing = if i == 0 { logged_start.is_some_and(|s| s < base) } else { base != next };
            if missing {
                let from = if i == 0 { logged_start.unwrap_or(0) } else { next };
                return Err(LogError::Corrupt {
                    file: shown,
                    offset: 0,
                    reason: format!("a segment is missing: offsets {from}..{base} are in no segment"),
                });
            }
            let file = storage.open(&seg_name, false).map_err(err)?;
            let last = i + 1 == names.len();
            let loaded = if last { None } else { load_index(&*storage, base, &seg_name, &*file).map_err(err)? };
            let seg = match loaded {
                Some(seg) => seg,
                None => {
                    let mut seg = Segment {
                        name: seg_name.clone(),
                        file: file.clone(),
                        size: 0,
                        index: Vec::new(),
                        last_offset: base - 1,
                        max_timestamp: -1,
                        bytes_since_index: INDEX_INTERVAL,
                        sealed: !last,
                    };
                    let (end, bad) = walk(&*file, 0, last, |f, _| {
                        seg.note(f.pos, &f.header);
                        if last {
                            each(&f.header);
                        }
                        true
                    })
                    .map_err(err)?;
                    let size = file.len().map_err(err)?;
                    if let Some(why) = bad {
                        if !last || valid_batch_after(&*file, end).map_err(err)? {
                            return Err(LogError::Corrupt { file: shown, offset: end, reason: why.into() });
                        }
                        tracing::warn!(partition = name, segment = seg_name.as_str(), at = end, cut = size - end, "cutting a torn tail off the partition log: {why}");
                        file.truncate(end).map_err(err)?;
                        file.sync().map_err(err)?;
                    }
                    seg.size = end;
                    if !last {
                        write_index(&*storage, base, &seg).map_err(err)?;
                    }
                    seg
                }
            };
            next = seg_id.end.unwrap_or(seg.last_offset + 1).max(base);
            segments.insert(base, seg);
        }
        let start = logged_start.unwrap_or_else(|| names.first().map_or(0, |n| n.base));
        let mut log = BatchLog { name: name.to_string(), storage, config, segments, start, next, unflushed: 0 };
        if log.segments.is_empty() {
            log.new_segment(0).map_err(err)?;
        }
        Ok(log)
    }

    fn new_segment(&mut self, base: i64) -> io::Result<()> {
        let name = segment_name(base);
        let file = self.storage.open(&name, true)?;
        self.storage.sync_dir()?;
        self.segments.insert(
            base,
            Segment { name, file, size: 0, index: Vec::new(), last_offset: base - 1, max_timestamp: -1, bytes_since_index: INDEX_INTERVAL, sealed: false },
        );
        Ok(())
    }

    /// Seals the active segment: synced, its index written.
    fn roll(&mut self) -> io::Result<()> {
        let (&base, seg) = self.segments.last_key_value().expect("a log always has a segment");
        if seg.size == 0 {
            return Ok(());
        }
        seg.file.sync()?;
        write_index(&*self.storage, base, seg)?;
        self.segments.get_mut(&base).expect("active").sealed = true;
        self.unflushed = 0;
        self.new_segment(self.next)
    }

    /// Appends one batch whose offsets are already patched.
    pub fn append(&mut self, batch: &[u8], h: &BatchHeader) -> io::Result<()> {
        debug_assert_eq!(h.base_offset, self.next);
        let active = self.segments.last_key_value().expect("segment").1;
        if active.size > 0 && active.size + batch.len() as u64 > self.config.segment_bytes {
            self.roll()?;
        }
        let seg = self.segments.last_entry().expect("segment").into_mut();
        seg.file.append(batch)?;
        seg.note(seg.size, h);
        seg.size += batch.len() as u64;
        self.next = h.last_offset() + 1;
        self.unflushed += 1;
        if self.unflushed >= self.config.flush_messages {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs the active segment.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unflushed > 0 {
            self.segments.last_key_value().expect("segment").1.file.sync()?;
            self.unflushed = 0;
        }
        Ok(())
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
        self.segments.values().map(|s| s.size).sum()
    }

    /// Whole batches from the one holding `offset`, within `max_bytes` (at least one batch when
    /// `min_one`), from a single segment, as one buffer ready for a Fetch response.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> io::Result<Bytes> {
        let Some((_, seg)) = self.segments.range(..=offset).next_back().filter(|(_, s)| s.last_offset >= offset).or_else(|| {
            self.segments.range(offset..).find(|(_, s)| s.last_offset >= offset)
        }) else {
            return Ok(Bytes::new());
        };
        let from = seg.index.partition_point(|(o, _)| *o <= offset).checked_sub(1).map_or(0, |i| seg.index[i].1 as u64);
        let mut start = None;
        let mut first_len = 0usize;
        walk(&*seg.file, from, false, |f, _| {
            if f.header.last_offset() >= offset {
                start = Some(f.pos);
                first_len = f.header.total_len();
                false
            } else {
                true
            }
        })?;
        let Some(start) = start else { return Ok(Bytes::new()) };
        let limit = if min_one { max_bytes.max(first_len) } else { max_bytes };
        let len = (seg.size - start).min(limit as u64) as usize;
        if len < first_len {
            return Ok(Bytes::new());
        }
        let mut buf = vec![0u8; len];
        seg.file.read_at(start, &mut buf)?;
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

    /// The first batch whose max timestamp is at least `ts`, or with `ts == i64::MAX` the first
    /// batch holding the largest timestamp.
    pub fn batch_by_timestamp(&self, ts: i64) -> io::Result<Option<Bytes>> {
        let live = self.segments.iter().filter(|(_, s)| s.last_offset >= self.start && s.size > 0);
        let target = if ts == i64::MAX {
            let Some(max) = live.clone().map(|(_, s)| s.max_timestamp).max() else { return Ok(None) };
            max
        } else {
            ts
        };
        for (_, seg) in live {
            if seg.max_timestamp < target {
                continue;
            }
            let mut found = None;
            walk(&*seg.file, 0, false, |f, _| {
                if f.header.last_offset() >= self.start && f.header.max_timestamp >= target {
                    found = Some(f);
                    false
                } else {
                    true
                }
            })?;
            if let Some(f) = found {
                let mut buf = vec![0u8; f.header.total_len()];
                seg.file.read_at(f.pos, &mut buf)?;
                return Ok(Some(Bytes::from(buf)));
            }
        }
        Ok(None)
    }

    /// Moves the log start offset up to `offset` (durably) and removes segments wholly below it.
    pub fn delete_before(&mut self, offset: i64) -> io::Result<()> {
        let offset = offset.min(self.next);
        if offset <= self.start {
            return Ok(());
        }
        write_log_start(&*self.storage, offset)?;
        self.start = offset;
        self.drop_segments_below(offset)
    }

    fn drop_segments_below(&mut self, offset: i64) -> io::Result<()> {
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.sealed && s.last_offset < offset)
            .map(|(b, _)| *b)
            .collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                self.storage.remove(&seg.name)?;
            }
            self.storage.remove(&index_name(base))?;
        }
        self.storage.sync_dir()
    }

    /// Applies retention: drops sealed segments older than `retention_ms`, and the oldest while
    /// the log is larger than `retention_bytes` (-1 = no limit). Returns segments removed.
    pub fn enforce_retention(&mut self, now: i64, retention_ms: i64, retention_bytes: i64) -> io::Result<usize> {
        let mut removed = 0;
        loop {
            let total = self.size_bytes();
            let Some((&base, oldest)) = self.segments.first_key_value() else { break };
            if !oldest.sealed {
                break;
            }
            let too_old = retention_ms >= 0 && oldest.max_timestamp >= 0 && now - oldest.max_timestamp > retention_ms;
            let too_big = retention_bytes >= 0 && total - oldest.size >= retention_bytes as u64;
            if !(too_old || too_big) {
                break;
            }
            let next_start = oldest.last_offset + 1;
            if let Some(seg) = self.segments.remove(&base) {
                self.storage.remove(&seg.name)?;
            }
            self.storage.remove(&index_name(base))?;
            if next_start > self.start {
                self.start = next_start;
                write_log_start(&*self.storage, next_start)?;
            }
            removed += 1;
        }
        if removed > 0 {
            self.storage.sync_dir()?;
            tracing::info!(partition = self.name.as_str(), removed, start = self.start, "retention removed segments");
        }
        Ok(removed)
    }

    /// Seals the active segment (for compaction), if it holds anything.
    pub fn seal_active(&mut self) -> io::Result<()> {
        self.roll()
    }

    /// Compaction of a `cleanup.policy=compact` topic: rewrites the sealed segments keeping the
    /// newest record per key (records without a key are kept; tombstones go once older than
    /// `delete_retention_ms`). Offsets are kept; kept records are rewritten uncompressed.
    pub fn compact(&mut self, now: i64, delete_retention_ms: i64) -> Result<usize, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("compacting partition {}", self.name), source: e };
        let sealed: Vec<i64> = self.segments.iter().filter(|(_, s)| s.sealed).map(|(b, _)| *b).collect();
        if sealed.len() < 2 && self.segments.len() < 2 {
            return Ok(0);
        }
        // Newest offset of every key, over the whole log.
        let mut newest: HashMap<Bytes, i64> = HashMap::new();
        let mut batches: Vec<(i64, Bytes)> = Vec::new();
        for (&base, seg) in &self.segments {
            let mut bad = None;
            walk(&*seg.file, 0, true, |_, bytes| {
                let b = Bytes::copy_from_slice(bytes.expect("with bytes"));
                match crate::broker::records::read_records(&b) {
                    Ok(records) => {
                        for r in records {
                            if let Some(k) = r.key {
                                newest.insert(k, r.offset);
                            }
                        }
                    }
                    Err(e) => bad = Some(e.to_string()),
                }
                if seg.sealed {
                    batches.push((base, b));
                }
                true
            })
            .map_err(err)?;
            if let Some(e) = bad {
                return Err(LogError::Corrupt { file: format!("{}/{}", self.name, segment_name(base)), offset: 0, reason: e });
            }
        }
        let Some(&first) = sealed.first() else { return Ok(0) };
        let end = *self.segments.last_key_value().expect("segment").0;
        let tmp = format!("{first:020}-{end:020}.compact");
        let swap = format!("{first:020}-{end:020}.swap");
        let out = self.storage.open(&tmp, true).map_err(err)?;
        out.truncate(0).map_err(err)?;
        let compacted = SegmentName { base: first, end: Some(end) }.file();
        let mut written = Segment {
            name: compacted.clone(),
            file: out.clone(),
            size: 0,
            index: Vec::new(),
            last_offset: first - 1,
            max_timestamp: -1,
            bytes_since_index: INDEX_INTERVAL,
            sealed: true,
        };
        for (_, b) in &batches {
            if let Some(kept) = compact_batch(b, &newest, now, delete_retention_ms) {
                let h = BatchHeader::parse(&kept).expect("built batch");
                out.append(&kept).map_err(err)?;
                written.note(written.size, &h);
                written.size += kept.len() as u64;
            }
        }
        out.sync().map_err(err)?;
        self.storage.rename(&tmp, &swap).map_err(err)?;
        self.storage.sync_dir().map_err(err)?;
        for base in &sealed {
            if let Some(seg) = self.segments.remove(base) {
                self.storage.remove(&seg.name).map_err(err)?;
            }
            self.storage.remove(&index_name(*base)).map_err(err)?;
        }
        self.storage.rename(&swap, &compacted).map_err(err)?;
        write_index(&*self.storage, first, &written).map_err(err)?;
        self.storage.sync_dir().map_err(err)?;
        written.file = self.storage.open(&compacted, false).map_err(err)?;
        self.segments.insert(first, written);
        Ok(sealed.len())
    }

    /// Takes new settings (a topic's config changed).
    pub fn set_config(&mut self, config: BatchConfig) {
        self.config = config;
    }

    /// Removes every file of the log (topic deletion).
    pub fn destroy(&mut self) -> io::Result<()> {
        self.segments.clear();
        for name in self.storage.list()? {
            self.storage.remove(&name)?;
        }
        self.storage.sync_dir()
    }
}

impl Segment {
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

/// Keeps the newest record per key of one batch; `None` if nothing is left.
fn compact_batch(b: &Bytes, newest: &HashMap<Bytes, i64>, now: i64, delete_retention_ms: i64) -> Option<Bytes> {
    let h = BatchHeader::parse(b)?;
    if h.is_control() {
        return None;
    }
    let records = crate::broker::records::read_records(b).ok()?;
    let keep: Vec<&Bytes> = records
        .iter()
        .filter(|r| match &r.key {
            None => true,
            Some(k) => {
                newest.get(k) == Some(&r.offset)
                    && (r.has_value || r.timestamp.saturating_add(delete_retention_ms) > now)
            }
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

/// Index file: `i64 last_offset, i64 max_timestamp, u64 size`, then `(i64 offset, u32 pos)`
/// pairs, then a CRC-32C of all of it.
fn write_index(storage: &dyn Storage, base: i64, seg: &Segment) -> io::Result<()> {
    let mut b = BytesMut::with_capacity(28 + seg.index.len() * 12);
    b.put_i64(seg.last_offset);
    b.put_i64(seg.max_timestamp);
    b.put_u64(seg.size);
    for (o, p) in &seg.index {
        b.put_i64(*o);
        b.put_u32(*p);
    }
    let crc = crc32c::crc32c(&b);
    b.put_u32(crc);
    let name = index_name(base);
    storage.remove(&name)?;
    let f = storage.open(&name, true)?;
    f.append(&b)?;
    f.sync()
}

fn load_index(storage: &dyn Storage, base: i64, seg_name: &str, file: &dyn StorageFile) -> io::Result<Option<Segment>> {
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
    if size != file.len()? {
        return Ok(None);
    }
    let index = b[24..len - 4]
        .chunks(12)
        .map(|c| (i64::from_be_bytes(c[..8].try_into().expect("8")), u32::from_be_bytes(c[8..].try_into().expect("4"))))
        .collect();
    Ok(Some(Segment {
        name: seg_name.to_string(),
        file: storage.open(seg_name, false)?,
        size,
        index,
        last_offset: i64::from_be_bytes(b[0..8].try_into().expect("8 bytes")),
        max_timestamp: i64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
        bytes_since_index: 0,
        sealed: true,
    }))
}

fn write_log_start(storage: &dyn Storage, offset: i64) -> io::Result<()> {
    let tmp = format!("{LOG_START_FILE}.tmp");
    storage.remove(&tmp)?;
    let f = storage.open(&tmp, true)?;
    f.append(format!("{offset}\n").as_bytes())?;
    f.sync()?;
    storage.rename(&tmp, LOG_START_FILE)?;
    storage.sync_dir()
}

fn read_log_start(storage: &dyn Storage) -> io::Result<Option<i64>> {
    let Ok(f) = storage.open(LOG_START_FILE, false) else { return Ok(None) };
    let mut b = vec![0u8; f.len()? as usize];
    f.read_at(0, &mut b)?;
    String::from_utf8_lossy(&b)
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "unreadable log-start-offset file"))
}

/// Finishes or discards an interrupted compaction (same protocol as keyed logs).
fn recover_compaction(storage: &dyn Storage) -> io::Result<()> {
    for name in storage.list()? {
        if name.ends_with(".compact") || name.ends_with(".tmp") {
            storage.remove(&name)?;
        } else if let Some(stem) = name.strip_suffix(".swap") {
            let bounds: Option<(i64, i64)> = stem.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            let Some((first, end)) = bounds else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unreadable compaction file {name}")));
            };
            for other in storage.list()? {
                let base = SegmentName::parse(&other)
                    .map(|n| n.base)
                    .or_else(|| other.strip_suffix(".index").and_then(|b| b.parse::<i64>().ok()));
                if base.is_some_and(|b| b >= first && b < end) {
                    storage.remove(&other)?;
                }
            }
            storage.rename(&name, &SegmentName { base: first, end: Some(end) }.file())?;
        }
    }
    storage.sync_dir()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::batch::tests::client_batch;
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
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(1000), |_| {}).unwrap();
        fill(&mut log, 40, 3);
        assert_eq!(log.next_offset(), 120);
        assert!(log.segments.len() > 3);
        let all = log.read(0, usize::MAX, true).unwrap();
        assert_eq!(offsets_in(&all)[0], 0);
        let mid = log.read(61, 1, true).unwrap();
        assert_eq!(offsets_in(&mid), vec![60], "min_one returns the batch holding the offset");
        assert!(log.read(61, 1, false).unwrap().is_empty());
        assert!(log.read(120, 1 << 20, true).unwrap().is_empty());
        log.sync().unwrap();
        let mut headers = 0;
        let again = BatchLog::open("p", Arc::new(mem), config(1000), |_| headers += 1).unwrap();
        assert_eq!(again.next_offset(), 120);
        assert!(headers > 0);
        assert_eq!(offsets_in(&again.read(99, 1 << 20, true).unwrap())[0], 99);
    }

    /// Every cut of an unsynced tail recovers to a prefix of whole batches.
    #[test]
    fn torn_tails_recover_to_whole_batches() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(1 << 20), |_| {}).unwrap();
        fill(&mut log, 3, 2);
        log.sync().unwrap();
        fill(&mut log, 3, 2);
        let tail = mem.unsynced(&segment_name(0));
        for cut in 0..=tail {
            let image = mem.crash_image(Crash::KeepUnsynced(cut));
            let mut seen = Vec::new();
            let r = BatchLog::open("p", Arc::new(image), config(1 << 20), |h| seen.push(h.base_offset)).unwrap();
            assert!(r.next_offset() >= 6, "cut {cut}: synced batches lost");
            assert_eq!(seen, (0..seen.len() as i64).map(|i| i * 2).collect::<Vec<_>>());
            assert_eq!(r.next_offset(), seen.len() as i64 * 2);
        }
    }

    #[test]
    fn damage_before_the_tail_stops_start_up() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(1 << 20), |_| {}).unwrap();
        fill(&mut log, 3, 2);
        log.sync().unwrap();
        let mut b = mem.bytes(&segment_name(0)).unwrap();
        b[70] ^= 0x01; // inside the first batch's records
        mem.set_bytes(&segment_name(0), b);
        match BatchLog::open("p", Arc::new(mem), config(1 << 20), |_| {}) {
            Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, 0),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_segment_stops_start_up() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(400), |_| {}).unwrap();
        fill(&mut log, 12, 2);
        log.sync().unwrap();
        let logs: Vec<String> = mem.list().unwrap().into_iter().filter(|n| n.ends_with(".log")).collect();
        assert!(logs.len() >= 3);
        mem.remove(&logs[1]).unwrap();
        match BatchLog::open("p", Arc::new(mem), config(400), |_| {}) {
            Err(LogError::Corrupt { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
            other => panic!("expected a missing-segment error, got {other:?}"),
        }
    }

    #[test]
    fn delete_records_and_retention_move_the_start() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(500), |_| {}).unwrap();
        fill(&mut log, 20, 2);
        let segments = log.segments.len();
        log.delete_before(13).unwrap();
        assert_eq!(log.start_offset(), 13);
        assert!(log.segments.len() < segments);
        assert_eq!(offsets_in(&log.read(13, 1 << 20, true).unwrap())[0], 12, "the batch holding 13");
        let reopened = BatchLog::open("p", Arc::new(mem.clone()), config(500), |_| {}).unwrap();
        assert_eq!(reopened.start_offset(), 13);
        // retention by size: the oldest segments go while the rest still holds the limit
        let mut log = reopened;
        let before = log.size_bytes();
        let removed = log.enforce_retention(0, -1, 400).unwrap();
        assert!(removed > 0, "size {before}");
        assert!(log.size_bytes() < 400 + 500);
        assert!(log.start_offset() > 13);
        // retention by time: segments whose newest timestamp is old go (client_batch stamps ~1000 ms)
        let removed = log.enforce_retention(1_000_000, 10_000, -1).unwrap();
        assert!(removed > 0);
        assert_eq!(log.segments.len(), 1, "only the active segment is left");
    }

    #[test]
    fn compaction_keeps_the_newest_record_per_key() {
        let mem = MemoryStorage::new();
        let mut log = BatchLog::open("p", Arc::new(mem.clone()), config(400), |_| {}).unwrap();
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
            for r in crate::broker::records::read_records(&all.slice(at..at + h.total_len())).unwrap() {
                keys.insert(r.key.unwrap(), r.offset);
            }
            at += h.total_len();
        }
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[&Bytes::from("k2")], 35, "the newest k2 is the last record");
        let reopened = BatchLog::open("p", Arc::new(mem), config(400), |_| {}).unwrap();
        assert_eq!(reopened.next_offset(), 36);
    }
}
