//! A compacted log of keyed entries (the coordinator's offsets logs, the topic metadata log):
//! CRC-framed entries on the segment engine ([`super::segments`]), group-commit fsync, and
//! compaction.
//!
//! Byte layout: `FORMAT.md` beside this file ("Keyed logs").
//!
//! # Locks and I/O
//!
//! Appends write under the log's lock (a `write` to the OS, never a sync). The flusher syncs
//! outside the lock: the sealed segments a roll left unsynced, the active segment, the
//! directory. Compaction reads and writes outside the lock and takes it only to swap the new
//! segment into the map, so an append (a commit, under its coordinator shard's lock) never
//! waits for a compaction's file work.
//!
//! # Failures
//!
//! A failed append leaves nothing behind (the engine cuts the partial write back) and the log
//! takes appends again. A failed sync leaves what was written since the last good sync of
//! unknown durability: the log refuses appends until [`KeyedLog::discard_unsynced`] cuts it
//! back to the last durable position (the owner then rebuilds its state from the log), so
//! nothing that was not acknowledged ever becomes visible.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{Notify, watch};

use super::LogError;
use super::segments::{self, Compaction, Framing, Parsed, Segments};
use super::storage::{Storage, StorageFile};

/// Bytes of the length and CRC fields before an entry's body.
const FRAME: usize = 8;
/// The smallest body: offset, timestamp, key length, value length.
const MIN_BODY: usize = 24;
/// The largest entry we accept back when reading (a GroupMetadata snapshot of a huge group).
const MAX_BODY: usize = 256 << 20;
/// Compaction writes out this much at a time.
const WRITE_CHUNK: usize = 4 << 20;

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

/// What the engine reports of an entry: enough to find its key and value in its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    offset: i64,
    timestamp: i64,
    key_len: usize,
    /// -1 for a tombstone.
    value_len: i32,
}

/// The keyed log's entries, for the segment engine: every entry's CRC is always checked.
pub(crate) struct KeyedFraming;

impl Framing for KeyedFraming {
    type Head = Head;

    fn parse(buf: &[u8], _check: bool) -> Parsed<Head> {
        if buf.len() < FRAME {
            return Parsed::Short { need: None };
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if !(MIN_BODY..=MAX_BODY).contains(&len) {
            return Parsed::Bad("impossible entry length");
        }
        if buf.len() < FRAME + len {
            return Parsed::Short { need: Some(FRAME + len) };
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
        let value_len = i32::from_be_bytes(body[20 + key_len..24 + key_len].try_into().expect("4 bytes"));
        let expected = 24 + key_len + value_len.max(0) as usize;
        if value_len < 0 && 24 + key_len != len {
            return Parsed::Bad("tombstone with trailing bytes");
        }
        if value_len >= 0 && expected != len {
            return Parsed::Bad("value length does not match the entry");
        }
        Parsed::Whole { head: Head { offset, timestamp, key_len, value_len }, len: FRAME + len }
    }

    fn offsets(h: &Head) -> (i64, i64) {
        (h.offset, h.offset)
    }
}

/// The entry a head describes, borrowed from its bytes (the whole entry, frame included).
fn entry<'a>(h: &Head, bytes: &'a [u8]) -> Entry<'a> {
    let key_at = FRAME + 20;
    let key = &bytes[key_at..key_at + h.key_len];
    let value = (h.value_len >= 0).then(|| &bytes[key_at + h.key_len + 4..key_at + h.key_len + 4 + h.value_len as usize]);
    Entry { offset: h.offset, timestamp: h.timestamp, key, value }
}

/// The bytes an entry takes on disk.
fn entry_size(e: &Entry<'_>) -> u64 {
    (FRAME + MIN_BODY + e.key.len() + e.value.as_ref().map_or(0, |v| v.len())) as u64
}

#[derive(Debug)]
struct Inner {
    segs: Segments<()>,
    next_offset: i64,
    /// The newest entry of every key: (offset, bytes on disk).
    live: crate::FastMap<Bytes, (i64, u64)>,
    live_bytes: u64,
    total_bytes: u64,
    /// Appends not yet covered by a sync.
    unsynced: bool,
    /// Sealed segments whose sync the flusher owes (a roll does not sync on the append path).
    sealed_unsynced: Vec<(i64, Arc<dyn StorageFile>)>,
    /// The last durable position: (active segment base, its size then, the offset after it).
    synced: (i64, u64, i64),
    /// A sync failed: nothing is accepted until [`KeyedLog::discard_unsynced`].
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
    /// One compaction at a time.
    compacting: Mutex<()>,
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
    /// compaction, cutting a torn tail off (see the engine's recovery rules), and replaying
    /// every entry through `each` in order. Corruption is an error naming file and offset.
    pub fn open(
        name: &str,
        storage: Arc<dyn Storage>,
        config: KeyedConfig,
        mut each: impl FnMut(&Entry<'_>),
    ) -> Result<Arc<Self>, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("log {name}"), source: e };
        let names = Segments::<()>::recover_names(name, &storage)?;
        let recovery_point = segments::recovery_point(&*storage, &names).map_err(err)?;
        let mut segs = Segments::new(name, storage.clone());
        let mut live: crate::FastMap<Bytes, (i64, u64)> = Default::default();
        let mut next_offset = names.first().map_or(0, |n| n.base);
        let mut total = 0u64;
        for (i, seg) in names.iter().enumerate() {
            if seg.base != next_offset {
                return Err(LogError::Corrupt {
                    file: format!("{name}/{}", seg.file()),
                    offset: 0,
                    reason: format!("a segment is missing: offsets {next_offset}..{} are in no segment", seg.base),
                });
            }
            let lenient = seg.base >= recovery_point;
            let recovered = segs.recover::<KeyedFraming>(seg, lenient, |_, head, bytes| {
                let e = entry(&head, bytes);
                let size = entry_size(&e);
                match live.get_mut(e.key) {
                    Some(slot) => *slot = (e.offset, size),
                    None => {
                        live.insert(Bytes::copy_from_slice(e.key), (e.offset, size));
                    }
                }
                each(&e);
            })?;
            next_offset = seg.end.unwrap_or(recovered.last_offset + 1).max(seg.base);
            total += recovered.size;
            let last = i + 1 == names.len();
            segs.map.insert(
                seg.base,
                segments::Segment {
                    name: seg.file(),
                    file: recovered.file,
                    size: recovered.size,
                    sealed: !last && !recovered.cut,
                    meta: (),
                },
            );
            if recovered.cut && !last {
                Segments::<()>::discard_after(name, &storage, &names[i + 1..])?;
                break;
            }
        }
        // Tombstones hold no value: a key whose newest entry is a tombstone is still "live"
        // (it must outlive the values it deletes) until compaction drops it.
        let live_bytes = live.values().map(|(_, s)| *s).sum();
        if segs.map.is_empty() {
            segs.start_segment(0, ()).map_err(err)?;
            storage.sync_dir().map_err(err)?;
            let _ = segs.take_dir_dirty();
        }
        // the last segment recovered is the active one
        if let Some(last) = segs.map.values_mut().last() {
            last.sealed = false;
        }
        let (&base, active) = segs.active();
        let synced = (base, active.size, next_offset);
        if !segments::has_recovery_point(&*storage).map_err(err)? {
            // the point must precede any segment a roll leaves unsynced; written here, at open
            // (a blocking context), so that no roll ever writes it on the append path
            segments::write_recovery_point(&*storage, base).map_err(err)?;
        }
        let (durable, _) = watch::channel(next_offset);
        Ok(Arc::new(KeyedLog {
            name: name.to_string(),
            storage,
            config,
            inner: Mutex::new(Inner {
                segs,
                next_offset,
                live,
                live_bytes,
                total_bytes: total,
                unsynced: false,
                sealed_unsynced: Vec::new(),
                synced,
                failed: None,
            }),
            durable,
            dirty: Notify::new(),
            compacting: Mutex::new(()),
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
    /// the offset after them. A failed write leaves nothing of these entries behind.
    pub fn append(&self, entries: &[(Bytes, Option<Bytes>)], timestamp: i64) -> io::Result<i64> {
        let mut i = self.lock();
        if let Some(f) = &i.failed {
            return Err(io::Error::other(format!("log {}: a sync failed ({f}); nothing is written until it is cut back", self.name)));
        }
        let mut buf = BytesMut::new();
        let mut sizes = Vec::with_capacity(entries.len());
        let first = i.next_offset;
        for (n, (key, value)) in entries.iter().enumerate() {
            let before = buf.len();
            encode_entry(&mut buf, &Entry { offset: first + n as i64, timestamp, key, value: value.as_deref() });
            sizes.push((buf.len() - before) as u64);
        }
        i.segs.append(&buf)?;
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
        if i.segs.active().1.size >= self.config.segment_bytes {
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

    /// Seals the active segment and starts a new one at the next offset. No sync here: the
    /// flusher owes the sealed segment's (and the new file's directory entry).
    fn roll(&self, i: &mut Inner) -> io::Result<()> {
        let next = i.next_offset;
        let (&base, active) = i.segs.active();
        if base == next || active.size == 0 {
            return Ok(());
        }
        let sealed = i.segs.seal_active();
        i.sealed_unsynced.push((base, sealed));
        i.segs.start_segment(next, ())?;
        i.unsynced = true;
        Ok(())
    }

    /// Makes every append so far durable now (the flusher's work, callable directly). The
    /// syncs happen outside the log's lock.
    pub fn sync_now(&self) -> io::Result<()> {
        let (sealed, active, at, dir) = {
            let mut i = self.lock();
            if let Some(f) = &i.failed {
                return Err(io::Error::other(f.clone()));
            }
            if !i.unsynced && !i.segs.dir_dirty() && i.sealed_unsynced.is_empty() {
                return Ok(());
            }
            i.unsynced = false;
            let dir = i.segs.take_dir_dirty();
            let (&base, seg) = i.segs.active();
            let (file, size) = (seg.file.clone(), seg.size);
            (std::mem::take(&mut i.sealed_unsynced), file, (base, size, i.next_offset), dir)
        };
        let result = (|| -> io::Result<()> {
            // in order: a later segment is never durable before an earlier one
            for (_, f) in &sealed {
                f.sync()?;
            }
            active.sync()?;
            if dir {
                self.storage.sync_dir()?;
            }
            if !sealed.is_empty() {
                segments::write_recovery_point(&*self.storage, at.0)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.lock().synced = at;
                self.durable.send_if_modified(|d| {
                    let moved = at.2 > *d;
                    *d = (*d).max(at.2);
                    moved
                });
                Ok(())
            }
            Err(e) => {
                let mut i = self.lock();
                i.failed = Some(e.to_string());
                if dir {
                    i.segs.dir_sync_failed();
                }
                i.sealed_unsynced.splice(0..0, sealed);
                drop(i);
                // wake waiters: their entries may never become durable
                self.durable.send_modify(|_| {});
                Err(e)
            }
        }
    }

    /// After a failed sync: cuts the log back to its last durable position (dropping any
    /// segment started since), so that nothing written after it — of unknown durability —
    /// survives. The owner reopens the log to rebuild its state from what is left.
    pub fn discard_unsynced(&self) -> io::Result<()> {
        let mut i = self.lock();
        let (base, size, _) = i.synced;
        let later: Vec<i64> = i.segs.map.range(base + 1..).map(|(b, _)| *b).collect();
        for b in later {
            if let Some(seg) = i.segs.map.remove(&b) {
                self.storage.remove(&seg.name)?;
            }
        }
        if let Some(seg) = i.segs.map.get_mut(&base) {
            seg.sealed = false;
            seg.file.truncate(size)?;
            seg.file.sync()?;
            seg.size = size;
        }
        self.storage.sync_dir()?;
        i.sealed_unsynced.clear();
        i.failed = None;
        i.unsynced = false;
        Ok(())
    }

    /// The group-commit flusher: whenever appends are pending, one round of syncs makes all of
    /// them durable and wakes everyone waiting for them. Runs until `shutdown`, then syncs once
    /// more. A failed sync is logged; the flusher goes on (the owner cuts the log back and the
    /// next appends are synced again).
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
                Ok(Err(e)) => tracing::error!(log = self.name.as_str(), "fsync failed; writes wait until the log is cut back: {e}"),
                Err(e) => {
                    tracing::error!(log = self.name.as_str(), "flusher task failed: {e}");
                    return;
                }
            }
        }
    }

    /// Resolves when every entry below `offset` is durable, or errors if a sync failed.
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
    /// keeps the newest entry per key (and tombstones younger than delete.retention.ms). The
    /// log's lock is held only to seal and to swap the result in (see [`Compaction`]); reads,
    /// writes, syncs, renames and removals happen outside it, so appends go on meanwhile.
    pub fn compact(&self, now: i64) -> Result<Compacted, LogError> {
        let _one = self.compacting.lock().expect("compaction lock");
        let err = |e: io::Error| LogError::Io { what: format!("compacting log {}", self.name), source: e };
        // 1. Seal the active segment and snapshot what to compact (no I/O under the lock).
        let (inputs, end, live) = {
            let mut i = self.lock();
            if i.failed.is_some() {
                return Ok(Compacted::default());
            }
            self.roll(&mut i).map_err(err)?;
            let (&active, _) = i.segs.active();
            let inputs: Vec<(i64, Arc<dyn StorageFile>, u64)> =
                i.segs.map.range(..active).map(|(b, s)| (*b, s.file.clone(), s.size)).collect();
            let live: crate::FastMap<Bytes, i64> = i.live.iter().map(|(k, (o, _))| (k.clone(), *o)).collect();
            (inputs, active, live)
        };
        if inputs.is_empty() {
            return Ok(Compacted::default());
        }
        // the inputs must be durable before a compacted copy replaces them
        self.sync_now().map_err(err)?;
        let first = inputs[0].0;
        // 2. Copy the live entries into the new segment and make it durable.
        let c = Compaction::begin(&self.storage, first, end).map_err(err)?;
        let mut stats = Compacted { segments_in: inputs.len(), ..Default::default() };
        let mut dropped_tombstones = Vec::new();
        let mut buf = BytesMut::new();
        let mut written = 0u64;
        let mut copy = || -> Result<(), LogError> {
            for (_, file, size) in &inputs {
                stats.bytes_in += size;
                let mut io_err = None;
                let walked = segments::walk::<KeyedFraming>(&**file, 0, true, |_, head, bytes| {
                    let e = entry(&head, bytes);
                    if live.get(e.key) != Some(&e.offset) {
                        return true;
                    }
                    if e.value.is_none() && e.timestamp.saturating_add(self.config.delete_retention_ms) <= now {
                        dropped_tombstones.push((Bytes::copy_from_slice(e.key), e.offset));
                        return true;
                    }
                    encode_entry(&mut buf, &e);
                    stats.entries_out += 1;
                    if buf.len() >= WRITE_CHUNK {
                        if let Err(x) = c.file().append(&buf) {
                            io_err = Some(x);
                            return false;
                        }
                        written += buf.len() as u64;
                        buf.clear();
                    }
                    true
                })
                .map_err(err)?;
                if let Some(e) = io_err {
                    return Err(err(e));
                }
                if let Some(why) = walked.bad {
                    return Err(LogError::Corrupt {
                        file: format!("{}/sealed segment", self.name),
                        offset: walked.end,
                        reason: why.into(),
                    });
                }
            }
            c.file().append(&buf).map_err(err)?;
            written += buf.len() as u64;
            c.seal().map_err(err)
        };
        if let Err(e) = copy() {
            c.abandon();
            return Err(e);
        }
        stats.bytes_out = written;
        // 3. Swap it in under the lock (no I/O), then remove the old files outside it.
        let old = {
            let mut i = self.lock();
            let old = i.segs.swap_in(&c, written, ());
            i.total_bytes = i.total_bytes + written - stats.bytes_in;
            for (key, offset) in dropped_tombstones {
                if i.live.get(&key).is_some_and(|(o, _)| *o == offset)
                    && let Some((_, size)) = i.live.remove(&key)
                {
                    i.live_bytes -= size;
                }
            }
            old
        };
        c.finish(&old).map_err(err)?;
        tracing::debug!(log = self.name.as_str(), ?stats, "compacted");
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::{Crash, FileStorage, MemoryStorage};
    use crate::log::{SegmentName, segment_names};
    use std::collections::BTreeMap;

    fn segment_name(base: i64) -> String {
        SegmentName { base, end: None }.file()
    }

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
            seen.push(Owned {
                offset: e.offset,
                timestamp: e.timestamp,
                key: Bytes::copy_from_slice(e.key),
                value: e.value.map(Bytes::copy_from_slice),
            })
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

    /// Issue 11 item 1: an append and its sync (what an OffsetCommit does) never wait for a
    /// compaction's file work: with the compaction held at its swap rename (a slow disk),
    /// an append is taken and made durable meanwhile.
    #[test]
    fn appends_and_syncs_go_on_while_a_compaction_works() {
        let mem = MemoryStorage::new();
        let config = KeyedConfig { segment_bytes: 300, delete_retention_ms: 0, min_compaction_bytes: 0 };
        let (log, _) = reopen(Arc::new(mem.clone()), config.clone());
        for round in 0..50 {
            log.append(&[kv(&format!("k{}", round % 4), Some("v"))], round).unwrap();
        }
        log.sync_now().unwrap();
        let gate = mem.hold_rename(".swap");
        let compacting = {
            let log = log.clone();
            std::thread::spawn(move || log.compact(1_000))
        };
        assert!(gate.wait_reached(std::time::Duration::from_secs(10)), "the compaction never reached its swap");
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let r = log.append(&[kv("during", Some("compaction"))], 99).and_then(|o| log.sync_now().map(|()| o));
                let _ = tx.send(r);
            });
        }
        let during = rx.recv_timeout(std::time::Duration::from_secs(5));
        gate.open();
        let compacted = compacting.join().unwrap().unwrap();
        assert!(during.is_ok(), "the append waited for the compaction's file work");
        during.unwrap().unwrap();
        assert!(!gate.expired());
        assert!(compacted.segments_in > 1, "{compacted:?}");
        let (_, seen) = reopen(Arc::new(mem.crash_image(Crash::DropUnsynced)), config);
        assert!(seen.iter().any(|e| e.key == "during"), "the append made during the compaction is durable");
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
        let left: Vec<String> = pre.list().unwrap();
        assert!(left.iter().all(|n| n.ends_with(".log") || n == "recovery-point"), "{left:?}");
    }
}
