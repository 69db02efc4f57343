//! A compacted log of keyed entries (the coordinator's offsets logs, the topic metadata log):
//! segment files, CRC-framed entries, group-commit fsync, recovery and compaction.
//!
//! Byte layout: `FORMAT.md` beside this file ("Keyed logs").

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{Notify, watch};

use super::storage::{Storage, StorageFile};
use super::{LogError, SegmentName, segment_names};

/// Bytes of the length and CRC fields before an entry's body.
const FRAME: usize = 8;
/// The smallest body: offset, timestamp, key length, value length.
const MIN_BODY: usize = 24;
/// The largest entry we accept back when reading (a GroupMetadata snapshot of a huge group).
const MAX_BODY: usize = 256 << 20;
/// How much is read at once while scanning.
const READ_CHUNK: usize = 4 << 20;

/// One entry: a key and a value (`None` = tombstone), stamped with its offset and time.
/// Borrowed from the buffer it is read from or written from: replaying a log copies only the
/// keys it has not seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub offset: i64,
    pub timestamp: i64,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Settings of a keyed log.
#[derive(Debug, Clone)]
pub struct KeyedConfig {
    /// Roll to a new segment at this size.
    pub segment_bytes: u64,
    /// Tombstones older than this are dropped by compaction.
    pub delete_retention_ms: i64,
    /// Do not compact logs smaller than this.
    pub min_compaction_bytes: u64,
}

impl Default for KeyedConfig {
    fn default() -> Self {
        KeyedConfig { segment_bytes: 100 << 20, delete_retention_ms: 86_400_000, min_compaction_bytes: 1 << 20 }
    }
}

fn segment_name(base: i64) -> String {
    format!("{base:020}.log")
}

fn encode_entry(out: &mut BytesMut, e: &Entry<'_>) {
    let body_len = MIN_BODY + e.key.len() + e.value.as_ref().map_or(0, |v| v.len());
    let start = out.len();
    out.put_u32(body_len as u32);
    out.put_u32(0);
    out.put_i64(e.offset);
    out.put_i64(e.timestamp);
    out.put_u32(e.key.len() as u32);
    out.put_slice(e.key);
    match e.value {
        Some(v) => {
            out.put_i32(v.len() as i32);
            out.put_slice(v);
        }
        None => out.put_i32(-1),
    }
    let crc = crc32c::crc32c(&out[start + FRAME..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// What the scanner found at a position.
enum Parsed<'a> {
    Entry(Entry<'a>, usize),
    /// Not enough bytes for a whole entry: the end, or a torn write.
    Short,
    /// Bytes that are not a valid entry.
    Bad(&'static str),
}

fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < FRAME {
        return Parsed::Short;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(MIN_BODY..=MAX_BODY).contains(&len) {
        return Parsed::Bad("impossible entry length");
    }
    if buf.len() < FRAME + len {
        return Parsed::Short;
    }
    let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[FRAME..FRAME + len];
    if crc32c::crc32c(body) != crc {
        return Parsed::Bad("CRC-32C mismatch");
    }
    let offset = i64::from_be_bytes(body[0..8].try_into().expect("8 bytes"));
    let timestamp = i64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
    let key_len = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    if 20 + key_len + 4 > len {
        return Parsed::Bad("key length runs past the entry");
    }
    let key = &body[20..20 + key_len];
    let vlen = i32::from_be_bytes(body[20 + key_len..24 + key_len].try_into().expect("4 bytes"));
    let value = if vlen < 0 {
        if 24 + key_len != len {
            return Parsed::Bad("tombstone with trailing bytes");
        }
        None
    } else {
        if 24 + key_len + vlen as usize != len {
            return Parsed::Bad("value length does not match the entry");
        }
        Some(&body[24 + key_len..])
    };
    Parsed::Entry(Entry { offset, timestamp, key, value }, FRAME + len)
}

/// Reads every entry of a segment file, in order. Returns the entries' end position, and the
/// position and reason of the first bytes that are not a valid entry.
fn scan(file: &dyn StorageFile, mut each: impl FnMut(Entry<'_>)) -> io::Result<(u64, Option<(u64, &'static str)>)> {
    let len = file.len()?;
    let mut pos: u64 = 0;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start: u64 = 0;
    loop {
        let in_buf = (pos - buf_start) as usize;
        match parse(&buf[in_buf..]) {
            Parsed::Entry(e, n) => {
                each(e);
                pos += n as u64;
            }
            Parsed::Bad(why) => return Ok((pos, Some((pos, why)))),
            Parsed::Short => {
                if pos >= len {
                    return Ok((pos, None));
                }
                // Refill from `pos`, reading at least a whole entry if its length is known.
                let need = if buf.len() - in_buf >= 4 {
                    let l = u32::from_be_bytes(buf[in_buf..in_buf + 4].try_into().expect("4 bytes")) as usize;
                    (FRAME + l).max(READ_CHUNK)
                } else {
                    READ_CHUNK
                };
                let want = (need as u64).min(len - pos) as usize;
                if buf.len() - in_buf >= want {
                    // The file ends inside an entry: a torn write.
                    return Ok((pos, Some((pos, "entry runs past the end of the file"))));
                }
                // one buffer for the whole scan: a fresh 4 MiB one per chunk cost a page
                // fault per page
                buf.clear();
                buf.resize(want, 0);
                file.read_at(pos, &mut buf)?;
                buf_start = pos;
            }
        }
    }
}

/// Whether any valid entry starts after `from` (distinguishes a torn tail from corruption).
fn valid_entry_after(file: &dyn StorageFile, from: u64) -> io::Result<bool> {
    let len = file.len()?;
    if len <= from + 1 {
        return Ok(false);
    }
    let mut buf = vec![0u8; (len - from) as usize];
    file.read_at(from, &mut buf)?;
    for i in 1..buf.len() {
        if let Parsed::Entry(..) = parse(&buf[i..]) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[derive(Debug)]
struct Segment {
    name: String,
    file: Arc<dyn StorageFile>,
    size: u64,
}

#[derive(Debug)]
struct Inner {
    /// By base offset; the last one is the active segment.
    segments: BTreeMap<i64, Segment>,
    next_offset: i64,
    /// The newest entry of every key: (offset, bytes on disk).
    live: crate::FastMap<Bytes, (i64, u64)>,
    live_bytes: u64,
    total_bytes: u64,
    /// Appends not yet covered by a sync.
    unsynced: bool,
    /// A segment was created or removed since the last directory sync.
    dir_dirty: bool,
    /// A failed write or sync: the log accepts nothing more.
    failed: Option<String>,
}

/// A compacted, CRC-checked log of keyed entries.
#[derive(Debug)]
pub struct KeyedLog {
    name: String,
    storage: Arc<dyn Storage>,
    config: KeyedConfig,
    inner: Mutex<Inner>,
    /// Every entry below this offset is durable.
    durable: watch::Sender<i64>,
    /// Wakes the flusher.
    dirty: Notify,
}

/// What compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    pub segments_in: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub entries_out: u64,
}

impl KeyedLog {
    /// Opens (or creates) a log in `storage`, finishing or discarding an interrupted
    /// compaction, cutting a torn tail off the last segment, and replaying every entry through
    /// `each` in order. Corruption anywhere but the tail is an error naming file and offset.
    pub fn open(name: &str, storage: Arc<dyn Storage>, config: KeyedConfig, mut each: impl FnMut(&Entry<'_>)) -> Result<Arc<Self>, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("log {name}"), source: e };
        recover_compaction(&*storage).map_err(err)?;
        let names = segment_names(&storage.list().map_err(err)?);
        let mut segments = BTreeMap::new();
        let mut live: crate::FastMap<Bytes, (i64, u64)> = Default::default();
        let mut next_offset = 0i64;
        let mut total = 0u64;
        for (i, seg) in names.iter().enumerate() {
            let seg_name = seg.file();
            let shown = format!("{name}/{seg_name}");
            if seg.base != next_offset {
                return Err(LogError::Corrupt {
                    file: shown,
                    offset: 0,
                    reason: format!("a segment is missing: offsets {next_offset}..{} are in no segment", seg.base),
                });
            }
            let file = storage.open(&seg_name, false).map_err(err)?;
            let mut expected = seg.base;
            let mut out_of_order = None;
            let (end, bad) = scan(&*file, |e| {
                let in_place = match seg.end {
                    None => e.offset == expected,
                    Some(limit) => e.offset >= expected && e.offset < limit,
                };
                if !in_place && out_of_order.is_none() {
                    out_of_order = Some(e.offset);
                }
                expected = e.offset + 1;
                let size = (FRAME + MIN_BODY + e.key.len() + e.value.as_ref().map_or(0, |v| v.len())) as u64;
                match live.get_mut(e.key) {
                    Some(slot) => *slot = (e.offset, size),
                    None => {
                        live.insert(Bytes::copy_from_slice(e.key), (e.offset, size));
                    }
                }
                each(&e);
            })
            .map_err(err)?;
            if let Some(o) = out_of_order {
                return Err(LogError::Corrupt { file: shown, offset: 0, reason: format!("entry with offset {o} out of place") });
            }
            let is_last = i + 1 == names.len();
            let mut size = file.len().map_err(err)?;
            if let Some((at, why)) = bad {
                if !is_last || valid_entry_after(&*file, at).map_err(err)? {
                    return Err(LogError::Corrupt { file: shown, offset: at, reason: why.to_string() });
                }
                tracing::warn!(log = name, segment = seg_name.as_str(), at, cut = size - at, "cutting a torn tail off the log: {why}");
                file.truncate(at).map_err(err)?;
                file.sync().map_err(err)?;
                size = at;
            } else if end < size {
                file.truncate(end).map_err(err)?;
                size = end;
            }
            next_offset = seg.end.unwrap_or(expected);
            total += size;
            segments.insert(seg.base, Segment { name: seg_name, file, size });
        }
        // Tombstones hold no value: a key whose newest entry is a tombstone is still "live"
        // (it must outlive the values it deletes) until compaction drops it.
        let live_bytes = live.values().map(|(_, s)| *s).sum();
        if segments.is_empty() {
            let seg = segment_name(0);
            let file = storage.open(&seg, true).map_err(err)?;
            storage.sync_dir().map_err(err)?;
            segments.insert(0, Segment { name: seg, file, size: 0 });
        }
        let (durable, _) = watch::channel(next_offset);
        Ok(Arc::new(KeyedLog {
            name: name.to_string(),
            storage,
            config,
            inner: Mutex::new(Inner {
                segments,
                next_offset,
                live,
                live_bytes,
                total_bytes: total,
                unsynced: false,
                dir_dirty: false,
                failed: None,
            }),
            durable,
            dirty: Notify::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("keyed log lock poisoned")
    }

    /// The offset the next entry gets.
    pub fn next_offset(&self) -> i64 {
        self.lock().next_offset
    }

    /// Bytes on disk, and bytes of the newest entry per key.
    pub fn sizes(&self) -> (u64, u64) {
        let i = self.lock();
        (i.total_bytes, i.live_bytes)
    }

    /// Appends entries (handed to the OS at once; durable after the next sync) and returns
    /// the offset after them.
    pub fn append(&self, entries: &[(Bytes, Option<Bytes>)], timestamp: i64) -> io::Result<i64> {
        let mut i = self.lock();
        if let Some(f) = &i.failed {
            return Err(io::Error::other(format!("log {} failed earlier: {f}", self.name)));
        }
        let mut buf = BytesMut::new();
        let mut sizes = Vec::with_capacity(entries.len());
        let first = i.next_offset;
        for (n, (key, value)) in entries.iter().enumerate() {
            let before = buf.len();
            encode_entry(&mut buf, &Entry { offset: first + n as i64, timestamp, key, value: value.as_deref() });
            sizes.push((buf.len() - before) as u64);
        }
        let (_, active) = i.segments.last_key_value().expect("a log always has a segment");
        if let Err(e) = active.file.append(&buf) {
            i.failed = Some(e.to_string());
            return Err(e);
        }
        let active_base = *i.segments.last_key_value().expect("segment").0;
        i.segments.get_mut(&active_base).expect("active").size += buf.len() as u64;
        i.total_bytes += buf.len() as u64;
        for (n, ((key, _), size)) in entries.iter().zip(sizes).enumerate() {
            if let Some((_, old)) = i.live.insert(key.clone(), (first + n as i64, size)) {
                i.live_bytes -= old;
            }
            i.live_bytes += size;
        }
        i.next_offset = first + entries.len() as i64;
        let next = i.next_offset;
        let syncs = self.storage.syncs();
        i.unsynced = syncs;
        if i.segments.get(&active_base).expect("active").size >= self.config.segment_bytes {
            self.roll(&mut i)?;
        }
        drop(i);
        if syncs {
            self.dirty.notify_one();
        } else {
            // Nothing to wait for: the process is the durability of an ephemeral log.
            self.durable.send_if_modified(|d| {
                let moved = next > *d;
                *d = (*d).max(next);
                moved
            });
        }
        Ok(next)
    }

    /// Seals the active segment (synced) and starts a new one at the next offset.
    fn roll(&self, i: &mut Inner) -> io::Result<()> {
        let next = i.next_offset;
        if i.segments.last_key_value().is_some_and(|(b, s)| *b == next || s.size == 0) {
            return Ok(());
        }
        i.segments.last_key_value().expect("segment").1.file.sync()?;
        let name = segment_name(next);
        let file = self.storage.open(&name, true)?;
        i.segments.insert(next, Segment { name, file, size: 0 });
        i.dir_dirty = true;
        Ok(())
    }

    /// Makes every append so far durable now (the flusher's work, callable directly).
    pub fn sync_now(&self) -> io::Result<()> {
        let (file, upto, dir) = {
            let mut i = self.lock();
            if !i.unsynced && !i.dir_dirty {
                return Ok(());
            }
            i.unsynced = false;
            let dir = std::mem::take(&mut i.dir_dirty);
            (i.segments.last_key_value().expect("segment").1.file.clone(), i.next_offset, dir)
        };
        let result = file.sync().and_then(|()| if dir { self.storage.sync_dir() } else { Ok(()) });
        match result {
            Ok(()) => {
                self.durable.send_if_modified(|d| {
                    let moved = upto > *d;
                    *d = (*d).max(upto);
                    moved
                });
                Ok(())
            }
            Err(e) => {
                self.lock().failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The group-commit flusher: whenever appends are pending, one fsync makes all of them
    /// durable and wakes everyone waiting for them. Runs until `shutdown`, then syncs once more.
    pub async fn run_flusher(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = self.dirty.notified() => {}
                _ = shutdown.cancelled() => {
                    let me = self.clone();
                    let _ = tokio::task::spawn_blocking(move || me.sync_now()).await;
                    return;
                }
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.sync_now()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(log = self.name.as_str(), "fsync failed; the log stops accepting writes: {e}");
                    return;
                }
                Err(e) => {
                    tracing::error!(log = self.name.as_str(), "flusher task failed: {e}");
                    return;
                }
            }
        }
    }

    /// Resolves when every entry below `offset` is durable, or errors if the log failed.
    pub async fn wait_durable(&self, offset: i64) -> io::Result<()> {
        let mut rx = self.durable.subscribe();
        loop {
            if *rx.borrow_and_update() >= offset {
                return Ok(());
            }
            if let Some(f) = &self.lock().failed {
                return Err(io::Error::other(f.clone()));
            }
            if rx.changed().await.is_err() {
                return Err(io::Error::other("log closed"));
            }
        }
    }

    /// Whether compaction would be worth it: the log is big and mostly superseded entries.
    pub fn needs_compaction(&self) -> bool {
        let i = self.lock();
        i.total_bytes >= self.config.min_compaction_bytes && i.live_bytes * 2 < i.total_bytes
    }

    /// Compacts: seals the active segment, then rewrites every sealed segment into one that
    /// keeps the newest entry per key (and tombstones younger than delete.retention.ms). Crash
    /// safe: the new segment is written under a temporary name, synced, renamed to a `.swap`
    /// name that records which segments it replaces, and only then do the old ones go.
    pub fn compact(&self, now: i64) -> Result<Compacted, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("compacting log {}", self.name), source: e };
        // 1. Seal the active segment and snapshot what to compact.
        let (inputs, end, live) = {
            let mut i = self.lock();
            self.roll(&mut i).map_err(err)?;
            let (&active, _) = i.segments.last_key_value().expect("segment");
            let inputs: Vec<(i64, Arc<dyn StorageFile>, u64)> =
                i.segments.range(..active).map(|(b, s)| (*b, s.file.clone(), s.size)).collect();
            let live: crate::FastMap<Bytes, i64> = i.live.iter().map(|(k, (o, _))| (k.clone(), *o)).collect();
            (inputs, active, live)
        };
        if inputs.is_empty() {
            return Ok(Compacted::default());
        }
        let first = inputs[0].0;
        // 2. Copy the live entries into a temporary segment and make it durable.
        let tmp = format!("{first:020}-{end:020}.compact");
        let swap = format!("{first:020}-{end:020}.swap");
        let compacted = SegmentName { base: first, end: Some(end) }.file();
        let out = self.storage.open(&tmp, true).map_err(err)?;
        out.truncate(0).map_err(err)?;
        let mut stats = Compacted { segments_in: inputs.len(), ..Default::default() };
        let mut dropped_tombstones = Vec::new();
        let mut buf = BytesMut::new();
        for (_, file, size) in &inputs {
            stats.bytes_in += size;
            let mut io_err = None;
            let (_, bad) = scan(&**file, |e| {
                if live.get(e.key) != Some(&e.offset) {
                    return;
                }
                if e.value.is_none() && e.timestamp.saturating_add(self.config.delete_retention_ms) <= now {
                    dropped_tombstones.push((Bytes::copy_from_slice(e.key), e.offset));
                    return;
                }
                encode_entry(&mut buf, &e);
                stats.entries_out += 1;
                if buf.len() >= READ_CHUNK {
                    if let Err(x) = out.append(&buf) {
                        io_err.get_or_insert(x);
                    }
                    stats.bytes_out += buf.len() as u64;
                    buf.clear();
                }
            })
            .map_err(err)?;
            if let Some(e) = io_err {
                return Err(err(e));
            }
            if let Some((at, why)) = bad {
                return Err(LogError::Corrupt { file: format!("{}/sealed segment", self.name), offset: at, reason: why.into() });
            }
        }
        out.append(&buf).map_err(err)?;
        stats.bytes_out += buf.len() as u64;
        out.sync().map_err(err)?;
        self.storage.rename(&tmp, &swap).map_err(err)?;
        self.storage.sync_dir().map_err(err)?;
        // 3. Swap it in: drop the old segments, take the first one's name.
        let mut i = self.lock();
        for (base, _, _) in &inputs {
            if let Some(seg) = i.segments.remove(base) {
                i.total_bytes -= seg.size;
                self.storage.remove(&seg.name).map_err(err)?;
            }
        }
        let name = compacted;
        self.storage.rename(&swap, &name).map_err(err)?;
        self.storage.sync_dir().map_err(err)?;
        let file = self.storage.open(&name, false).map_err(err)?;
        i.total_bytes += stats.bytes_out;
        i.segments.insert(first, Segment { name, file, size: stats.bytes_out });
        for (key, offset) in dropped_tombstones {
            if i.live.get(&key).is_some_and(|(o, _)| *o == offset)
                && let Some((_, size)) = i.live.remove(&key)
            {
                i.live_bytes -= size;
            }
        }
        tracing::debug!(log = self.name.as_str(), ?stats, "compacted");
        Ok(stats)
    }
}

/// Finishes a compaction that reached its `.swap` file, or discards one that did not.
fn recover_compaction(storage: &dyn Storage) -> io::Result<()> {
    for name in storage.list()? {
        if name.ends_with(".compact") {
            storage.remove(&name)?;
        } else if let Some(stem) = name.strip_suffix(".swap") {
            let bounds: Option<(i64, i64)> = stem.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            let Some((first, end)) = bounds else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unreadable compaction file {name}")));
            };
            for seg in storage.list()? {
                if let Some(n) = SegmentName::parse(&seg)
                    && n.base >= first
                    && n.base < end
                {
                    storage.remove(&seg)?;
                }
            }
            storage.rename(&name, &SegmentName { base: first, end: Some(end) }.file())?;
            tracing::info!(file = name.as_str(), "finished an interrupted compaction");
        }
    }
    storage.sync_dir()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::{Crash, FileStorage, MemoryStorage};

    fn kv(k: &str, v: Option<&str>) -> (Bytes, Option<Bytes>) {
        (Bytes::from(k.to_string()), v.map(|v| Bytes::from(v.to_string())))
    }

    /// An entry as a test keeps it.
    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        offset: i64,
        timestamp: i64,
        key: Bytes,
        value: Option<Bytes>,
    }

    fn reopen(s: Arc<dyn Storage>, config: KeyedConfig) -> (Arc<KeyedLog>, Vec<Owned>) {
        let mut seen = Vec::new();
        let log = KeyedLog::open("t", s, config, |e| {
            seen.push(Owned { offset: e.offset, timestamp: e.timestamp, key: Bytes::copy_from_slice(e.key), value: e.value.map(Bytes::copy_from_slice) })
        })
        .unwrap();
        (log, seen)
    }

    fn run_on(s: Arc<dyn Storage>) {
        let (log, seen) = reopen(s.clone(), KeyedConfig::default());
        assert!(seen.is_empty());
        assert_eq!(log.append(&[kv("a", Some("1")), kv("b", Some("2"))], 10).unwrap(), 2);
        assert_eq!(log.append(&[kv("a", None)], 11).unwrap(), 3);
        log.sync_now().unwrap();
        let (log2, seen) = reopen(s, KeyedConfig::default());
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2], Owned { offset: 2, timestamp: 11, key: Bytes::from("a"), value: None });
        assert_eq!(log2.next_offset(), 3);
    }

    /// The same scenario on both storage twins.
    #[test]
    fn append_sync_reopen_on_files_and_memory() {
        run_on(Arc::new(MemoryStorage::new()));
        let dir = tempfile::tempdir().unwrap();
        run_on(Arc::new(FileStorage::open(dir.path()).unwrap()));
    }

    /// Crash images: for a log with a synced prefix and an unsynced tail, cut the tail at
    /// every byte; recovery keeps the synced entries, plus whole entries of the tail, and
    /// never a corrupted one.
    #[test]
    fn every_torn_tail_recovers_to_a_prefix() {
        let mem = MemoryStorage::new();
        let s: Arc<dyn Storage> = Arc::new(mem.clone());
        let (log, _) = reopen(s, KeyedConfig::default());
        for n in 0..5 {
            log.append(&[kv(&format!("k{n}"), Some("durable"))], n).unwrap();
        }
        log.sync_now().unwrap();
        let unsynced: Vec<(Bytes, Option<Bytes>)> = (0..4).map(|n| kv(&format!("u{n}"), Some(&"x".repeat(n * 7)))).collect();
        for e in &unsynced {
            log.append(std::slice::from_ref(e), 100).unwrap();
        }
        let tail = mem.unsynced(&segment_name(0));
        assert!(tail > 0);
        let mut seen_counts = std::collections::BTreeSet::new();
        for cut in 0..=tail {
            let image: Arc<dyn Storage> = Arc::new(mem.crash_image(Crash::KeepUnsynced(cut)));
            let (recovered, seen) = reopen(image, KeyedConfig::default());
            assert!(seen.len() >= 5, "cut {cut}: lost synced entries");
            for (i, e) in seen.iter().enumerate() {
                assert_eq!(e.offset, i as i64);
                if i >= 5 {
                    assert_eq!(&e.key, &unsynced[i - 5].0, "cut {cut}: a recovered entry differs");
                    assert_eq!(&e.value, &unsynced[i - 5].1);
                }
            }
            assert_eq!(recovered.next_offset(), seen.len() as i64);
            // the recovered log takes appends again
            recovered.append(&[kv("after", Some("crash"))], 1).unwrap();
            seen_counts.insert(seen.len());
        }
        assert_eq!(seen_counts.into_iter().collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn corruption_before_the_tail_stops_the_open() {
        let mem = MemoryStorage::new();
        let (log, _) = reopen(Arc::new(mem.clone()), KeyedConfig::default());
        for n in 0..4 {
            log.append(&[kv(&format!("k{n}"), Some("value"))], n).unwrap();
        }
        log.sync_now().unwrap();
        let name = segment_name(0);
        let mut bytes = mem.bytes(&name).unwrap();
        bytes[FRAME + 3] ^= 0xff; // inside the first entry's offset
        mem.set_bytes(&name, bytes);
        match KeyedLog::open("t", Arc::new(mem), KeyedConfig::default(), |_| {}) {
            Err(LogError::Corrupt { file, offset, .. }) => {
                assert!(file.ends_with(&name));
                assert_eq!(offset, 0);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_segment_stops_the_open() {
        let mem = MemoryStorage::new();
        let config = KeyedConfig { segment_bytes: 100, ..KeyedConfig::default() };
        let (log, _) = reopen(Arc::new(mem.clone()), config.clone());
        for n in 0..12 {
            log.append(&[kv(&format!("k{n}"), Some("value"))], n).unwrap();
        }
        log.sync_now().unwrap();
        let names = mem.list().unwrap();
        assert!(names.len() >= 3);
        mem.remove(&names[1]).unwrap();
        match KeyedLog::open("t", Arc::new(mem), config, |_| {}) {
            Err(LogError::Corrupt { reason, .. }) => assert!(reason.contains("missing"), "{reason}"),
            other => panic!("expected a missing-segment error, got {other:?}"),
        }
    }

    #[test]
    fn segments_roll_and_compaction_keeps_the_newest_per_key() {
        let mem = MemoryStorage::new();
        let config = KeyedConfig { segment_bytes: 300, delete_retention_ms: 1000, min_compaction_bytes: 0 };
        let (log, _) = reopen(Arc::new(mem.clone()), config.clone());
        for round in 0..50 {
            log.append(&[kv(&format!("k{}", round % 5), Some(&format!("v{round}")))], round).unwrap();
        }
        log.append(&[kv("k0", None)], 100).unwrap();
        assert!(mem.list().unwrap().len() > 3, "rolled");
        assert!(log.needs_compaction());
        let (before, _) = log.sizes();
        let stats = log.compact(500).unwrap();
        let (after, _) = log.sizes();
        assert!(after < before / 3, "{before} -> {after}: {stats:?}");
        log.sync_now().unwrap();
        let (_, seen) = reopen(Arc::new(mem.clone()), config.clone());
        let mut latest: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
        for e in seen {
            latest.insert(e.key, e.value);
        }
        assert_eq!(latest.len(), 5);
        assert_eq!(latest[&Bytes::from("k0")], None, "the young tombstone survives");
        assert_eq!(latest[&Bytes::from("k4")], Some(Bytes::from("v49")));
        // once the tombstone is old enough it goes too
        let (log, _) = reopen(Arc::new(mem.clone()), config.clone());
        log.compact(100_000).unwrap();
        let (_, seen) = reopen(Arc::new(mem), config);
        assert!(seen.iter().all(|e| e.key != "k0"));
    }

    /// A crash at any point of compaction leaves either the old or the new state.
    #[test]
    fn compaction_is_crash_safe() {
        let mem = MemoryStorage::new();
        let config = KeyedConfig { segment_bytes: 200, delete_retention_ms: 0, min_compaction_bytes: 0 };
        let (log, _) = reopen(Arc::new(mem.clone()), config.clone());
        for round in 0..30 {
            log.append(&[kv(&format!("k{}", round % 3), Some(&format!("v{round}")))], round).unwrap();
        }
        log.sync_now().unwrap();
        let expect = |seen: &[Owned]| {
            let mut latest: BTreeMap<Bytes, Option<Bytes>> = BTreeMap::new();
            for e in seen {
                latest.insert(e.key.clone(), e.value.clone());
            }
            latest
        };
        let (_, before) = reopen(Arc::new(mem.crash_image(Crash::DropUnsynced)), config.clone());
        let want = expect(&before);
        // simulate interruptions: a leftover .compact file, and a finished .swap file
        let image = mem.crash_image(Crash::DropUnsynced);
        image.open(&format!("{:020}-{:020}.compact", 0, 5), true).unwrap().append(b"garbage").unwrap();
        image.sync_dir().unwrap();
        let (_, seen) = reopen(Arc::new(image), config.clone());
        assert_eq!(expect(&seen), want);
        // a crash after the .swap rename but before the old segments went: recovery finishes it
        let pre = mem.crash_image(Crash::KeepAll);
        log.compact(1_000).unwrap();
        for crash in [Crash::DropUnsynced, Crash::KeepAll] {
            let (_, seen) = reopen(Arc::new(mem.crash_image(crash)), config.clone());
            assert_eq!(expect(&seen), want, "{crash:?}");
        }
        let logs: Vec<SegmentName> = segment_names(&mem.list().unwrap());
        let compacted = logs[0];
        let end = compacted.end.expect("the first segment is the compacted one");
        pre.set_bytes(&format!("{:020}-{end:020}.swap", 0), mem.bytes(&compacted.file()).unwrap());
        let (_, seen) = reopen(Arc::new(pre.clone()), config);
        assert_eq!(expect(&seen), want, "finishing a swap");
        assert!(pre.list().unwrap().iter().all(|n| n.ends_with(".log")));
    }
}
