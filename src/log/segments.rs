//! The segment engine both logs are built on: segment files and their names, walking a file's
//! entries, recovery at open (torn tails cut, corruption refused, missing segments found,
//! interrupted compactions finished or discarded), appends that never leave a partial entry
//! behind, rolling, and the compaction swap.
//!
//! What an entry is belongs to each log: the keyed log's CRC-framed key/value entries
//! ([`super::keyed`]), a partition's Kafka record batches ([`super::batches`]). Each tells the
//! engine how to read one at the start of a buffer ([`Framing`]); everything else is here, the
//! same for both. Byte layouts: `FORMAT.md`.
//!
//! # Locks and I/O
//!
//! A log keeps its [`Segments`] under its own lock. The engine's methods that only change the
//! map (`insert`, `swap_in`) do no I/O; those that do I/O say so, and callers keep the slow ones
//! (syncing a directory, renaming and removing files after a compaction) outside any lock a hot
//! path needs: a compaction is prepared and written without the lock ([`Compaction`]), swapped
//! into the map under it, and its old files are removed after.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use super::storage::{Storage, StorageFile};
use super::{LogError, SegmentName, segment_names};

/// How much is read at once while walking a file.
const READ_CHUNK: usize = 1 << 20;

/// What [`Framing::parse`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed<H> {
    /// A whole entry, `len` bytes long, described by `head`.
    Whole { head: H, len: usize },
    /// The buffer ends inside an entry. `need`: the entry's whole length, once known.
    Short { need: Option<usize> },
    /// Bytes that are no entry.
    Bad(&'static str),
}

/// How a log's entries are laid out in its segment files.
pub(crate) trait Framing {
    /// What a walk reports of each entry.
    type Head: Copy;
    /// Reads the entry at the start of `buf`; with `check`, its checksum too (a walk that only
    /// wants positions can skip it).
    fn parse(buf: &[u8], check: bool) -> Parsed<Self::Head>;
    /// The first and last offsets an entry covers.
    fn offsets(head: &Self::Head) -> (i64, i64);
}

/// Where a walk stopped: at `end`, the position after the last whole entry; `bad` says why,
/// when it stopped at bytes that are no whole entry before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Walked {
    pub end: u64,
    pub bad: Option<&'static str>,
}

/// Walks a file's entries from `from`, calling `each(position, head, bytes)` for every whole
/// entry until it returns `false`. Reads in chunks with one buffer for the whole walk.
pub(crate) fn walk<F: Framing>(
    file: &dyn StorageFile,
    from: u64,
    check: bool,
    mut each: impl FnMut(u64, F::Head, &[u8]) -> bool,
) -> io::Result<Walked> {
    let len = file.len()?;
    let mut pos = from;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = from;
    loop {
        let in_buf = (pos - buf_start) as usize;
        match F::parse(&buf[in_buf.min(buf.len())..], check) {
            Parsed::Whole { head, len: n } => {
                if !each(pos, head, &buf[in_buf..in_buf + n]) {
                    return Ok(Walked { end: pos, bad: None });
                }
                pos += n as u64;
            }
            Parsed::Bad(why) => return Ok(Walked { end: pos, bad: Some(why) }),
            Parsed::Short { need } => {
                if pos >= len {
                    return Ok(Walked { end: pos, bad: None });
                }
                let want = (need.unwrap_or(0).max(READ_CHUNK) as u64).min(len - pos) as usize;
                if buf.len().saturating_sub(in_buf) >= want || need.is_some_and(|n| n as u64 > len - pos) {
                    return Ok(Walked { end: pos, bad: Some("an entry runs past the end of the file") });
                }
                buf.clear();
                buf.resize(want, 0);
                file.read_at(pos, &mut buf)?;
                buf_start = pos;
            }
        }
    }
}

/// Whether a valid entry starts anywhere after `from`: bad bytes followed by a valid entry are
/// corruption, not a torn tail.
fn valid_entry_after<F: Framing>(file: &dyn StorageFile, from: u64) -> io::Result<bool> {
    let len = file.len()?;
    if len <= from + 1 {
        return Ok(false);
    }
    let mut buf = vec![0u8; (len - from) as usize];
    file.read_at(from, &mut buf)?;
    Ok((1..buf.len()).any(|i| matches!(F::parse(&buf[i..], true), Parsed::Whole { .. })))
}

/// One segment file: its name, handle and valid length; `meta` is what the log keeps besides
/// (a partition's sparse index and bounds).
#[derive(Debug)]
pub(crate) struct Segment<M> {
    pub name: String,
    pub file: Arc<dyn StorageFile>,
    pub size: u64,
    /// No longer appended to.
    pub sealed: bool,
    pub meta: M,
}

/// A log's segments, by base offset; the last is the active one.
#[derive(Debug)]
pub(crate) struct Segments<M> {
    /// The log's name, for messages.
    pub log: String,
    pub storage: Arc<dyn Storage>,
    pub map: BTreeMap<i64, Segment<M>>,
    /// A file was created, renamed or removed since the directory was last synced.
    dir_dirty: bool,
}

/// What recovery found in one segment.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub file: Arc<dyn StorageFile>,
    /// The valid length (a torn tail already cut).
    pub size: u64,
    /// The last offset of its last entry (`base - 1` if it has none).
    pub last_offset: i64,
    /// A torn tail was cut off.
    pub cut: bool,
}

/// The file recording a log's recovery point: the base offset of its first segment that may
/// hold unsynced writes. Every segment before it was synced whole, so bad bytes there are
/// corruption; from it on, bad bytes with nothing valid after them are a torn tail.
const RECOVERY_POINT: &str = "recovery-point";

/// Writes a small text file durably: to `<name>.tmp`, synced, renamed, directory synced.
pub(crate) fn write_number(storage: &dyn Storage, name: &str, value: i64) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    storage.remove(&tmp)?;
    let f = storage.open(&tmp, true)?;
    f.append(format!("{value}\n").as_bytes())?;
    f.sync()?;
    storage.rename(&tmp, name)?;
    storage.sync_dir()
}

/// Reads a file written by [`write_number`]; `None` if there is none.
pub(crate) fn read_number(storage: &dyn Storage, name: &str) -> io::Result<Option<i64>> {
    let Ok(f) = storage.open(name, false) else { return Ok(None) };
    let mut b = vec![0u8; f.len()? as usize];
    f.read_at(0, &mut b)?;
    String::from_utf8_lossy(&b)
        .trim()
        .parse()
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("unreadable {name} file")))
}

/// A log's recovery point; without one (a new log, or one written before recovery points),
/// its last segment's base: only the last segment may hold a torn tail.
pub(crate) fn recovery_point(storage: &dyn Storage, names: &[SegmentName]) -> io::Result<i64> {
    let last = names.last().map_or(0, |n| n.base);
    Ok(read_number(storage, RECOVERY_POINT)?.map_or(last, |p| p.min(last)))
}

/// Records that every segment before `base` is synced whole.
pub(crate) fn write_recovery_point(storage: &dyn Storage, base: i64) -> io::Result<()> {
    write_number(storage, RECOVERY_POINT, base)
}

/// Whether a log has a recovery point file. A log without one (new, or written before
/// recovery points) must get one before its first roll leaves a sealed segment unsynced:
/// without the file only the last segment may hold a torn tail.
pub(crate) fn has_recovery_point(storage: &dyn Storage) -> io::Result<bool> {
    Ok(read_number(storage, RECOVERY_POINT)?.is_some())
}

impl<M> Segments<M> {
    /// The segment names of a log's directory after finishing or discarding an interrupted
    /// compaction (see [`Compaction`]), by base offset.
    pub fn recover_names(log: &str, storage: &Arc<dyn Storage>) -> Result<Vec<SegmentName>, LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("log {log}"), source: e };
        recover_compaction(&**storage).map_err(err)?;
        Ok(segment_names(&storage.list().map_err(err)?))
    }

    /// An empty set (the caller inserts what it recovered).
    pub fn new(log: &str, storage: Arc<dyn Storage>) -> Self {
        Segments { log: log.to_string(), storage, map: BTreeMap::new(), dir_dirty: false }
    }

    /// Recovers one segment: walks every entry (checked), calling `each`. Entries out of place
    /// (offsets not following on from `base`, or outside a compacted segment's range) are
    /// corruption. Bad bytes are corruption too, unless the segment may hold unsynced writes
    /// (`lenient`: it is at or after the recovery point) and no valid entry follows them: then
    /// they are a torn tail, cut off (synced, with a warning), and [`Recovered::cut`] says so.
    pub fn recover<F: Framing>(
        &self,
        seg: &SegmentName,
        lenient: bool,
        mut each: impl FnMut(u64, F::Head, &[u8]),
    ) -> Result<Recovered, LogError> {
        let name = seg.file();
        let shown = format!("{}/{name}", self.log);
        let err = |e: io::Error| LogError::Io { what: format!("log {}", self.log), source: e };
        let file = self.storage.open(&name, false).map_err(err)?;
        let mut expected = seg.base;
        let mut last_offset = seg.base - 1;
        let mut out_of_place = None;
        let walked = walk::<F>(&*file, 0, true, |pos, head, bytes| {
            let (first, last) = F::offsets(&head);
            let in_place = match seg.end {
                None => first == expected,
                Some(end) => first >= expected && last < end,
            };
            if !in_place && out_of_place.is_none() {
                out_of_place = Some((pos, first));
            }
            expected = last + 1;
            last_offset = last;
            each(pos, head, bytes);
            true
        })
        .map_err(err)?;
        if let Some((at, first)) = out_of_place {
            return Err(LogError::Corrupt { file: shown, offset: at, reason: format!("an entry with offset {first} out of place") });
        }
        let len = file.len().map_err(err)?;
        let mut cut = false;
        if let Some(why) = walked.bad {
            if !lenient || valid_entry_after::<F>(&*file, walked.end).map_err(err)? {
                return Err(LogError::Corrupt { file: shown, offset: walked.end, reason: why.to_string() });
            }
            tracing::warn!(
                log = self.log.as_str(),
                segment = name.as_str(),
                at = walked.end,
                cut = len - walked.end,
                "cutting a torn tail off the log: {why}"
            );
            file.truncate(walked.end).map_err(err)?;
            file.sync().map_err(err)?;
            cut = true;
        } else if walked.end < len {
            file.truncate(walked.end).map_err(err)?;
        }
        Ok(Recovered { file, size: walked.end, last_offset, cut })
    }

    /// After a torn tail was cut in a segment that is not the last, the segments after it hold
    /// nothing that was ever synced (the flusher syncs in order): they go, with a warning.
    pub fn discard_after(log: &str, storage: &Arc<dyn Storage>, later: &[SegmentName]) -> Result<(), LogError> {
        let err = |e: io::Error| LogError::Io { what: format!("log {log}"), source: e };
        for seg in later {
            tracing::warn!(log, segment = seg.file().as_str(), "dropping a segment written after a torn tail");
            storage.remove(&seg.file()).map_err(err)?;
            for derived in ["index", "txnindex"] {
                storage.remove(&format!("{:020}.{derived}", seg.base)).map_err(err)?;
            }
        }
        storage.sync_dir().map_err(err)
    }

    /// The active segment.
    pub fn active(&self) -> (&i64, &Segment<M>) {
        self.map.last_key_value().expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment<M> {
        self.map.last_entry().expect("a log always has a segment").into_mut()
    }

    /// Creates a new, empty active segment at `base` (I/O: creates the file; the directory
    /// sync is left to the next [`Segments::sync`]).
    pub fn start_segment(&mut self, base: i64, meta: M) -> io::Result<()> {
        let name = SegmentName { base, end: None }.file();
        let file = self.storage.open(&name, true)?;
        file.truncate(0)?;
        self.map.insert(base, Segment { name, file, size: 0, sealed: false, meta });
        self.dir_dirty = true;
        Ok(())
    }

    /// Appends `bytes` (whole entries) to the active segment. A failed write leaves no partial
    /// entry behind: the segment is cut back to where it was (if even that fails, the error
    /// says so and the log must not be written again until it is reopened).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let seg = self.active_mut();
        if let Err(e) = seg.file.append(bytes) {
            if super::storage::changed_nothing(&e) {
                return Err(e);
            }
            if let Err(cut) = seg.file.truncate(seg.size) {
                return Err(io::Error::new(e.kind(), format!("{e}; cutting the partial write back failed too: {cut}")));
            }
            return Err(e);
        }
        seg.size += bytes.len() as u64;
        Ok(())
    }

    /// Seals the active segment (no I/O): it takes no more appends. Returns its file, whose
    /// sync the caller owes (outside its lock) before moving the recovery point past it.
    pub fn seal_active(&mut self) -> Arc<dyn StorageFile> {
        let seg = self.active_mut();
        seg.sealed = true;
        seg.file.clone()
    }

    /// Whether a directory sync is owed.
    pub fn dir_dirty(&self) -> bool {
        self.dir_dirty
    }

    /// Takes the owed directory sync: the caller syncs the directory (outside its lock) and
    /// calls [`Segments::dir_sync_failed`] if that fails.
    pub fn take_dir_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dir_dirty)
    }

    /// A directory sync taken with [`Segments::take_dir_dirty`] failed: it is owed again.
    pub fn dir_sync_failed(&mut self) {
        self.dir_dirty = true;
    }

    /// Cuts the active segment back to `size` bytes (after a failed sync: what it held past
    /// `size` is of unknown durability and is dropped).
    pub fn cut_active(&mut self, size: u64) -> io::Result<()> {
        let seg = self.active_mut();
        if size < seg.size {
            seg.file.truncate(size)?;
            seg.size = size;
        }
        Ok(())
    }

    /// Removes every file of the log.
    pub fn destroy(&mut self) -> io::Result<()> {
        self.map.clear();
        for name in self.storage.list()? {
            self.storage.remove(&name)?;
        }
        self.storage.sync_dir()
    }
}

/// A compaction of sealed segments `[first, end)` into one segment, in three steps with the
/// log's lock held only for the middle one:
///
/// 1. [`Compaction::begin`] and writes to [`Compaction::file`] (no lock): the new segment is
///    written as `<first>-<end>.compact`; [`Compaction::seal`] syncs it, renames it to
///    `<first>-<end>.swap` and syncs the directory. From here a crash completes the compaction.
/// 2. [`Segments::swap_in`] (under the lock, no I/O): the map drops the old segments and takes
///    the new one, under its final name, `<first>-<end>.log`.
/// 3. [`Compaction::finish`] (no lock): removes the old files, renames the swap file to its
///    final name, syncs the directory.
///
/// Recovery (at open) deletes a `.compact` file (the old segments are intact) and completes a
/// `.swap` file (removes the segments it replaces, with their index files, renames it).
#[derive(Debug)]
pub(crate) struct Compaction {
    storage: Arc<dyn Storage>,
    first: i64,
    end: i64,
    file: Arc<dyn StorageFile>,
}

impl Compaction {
    /// Starts writing the compacted segment for `[first, end)`.
    pub fn begin(storage: &Arc<dyn Storage>, first: i64, end: i64) -> io::Result<Compaction> {
        let file = storage.open(&format!("{first:020}-{end:020}.compact"), true)?;
        file.truncate(0)?;
        Ok(Compaction { storage: storage.clone(), first, end, file })
    }

    /// The base offset of the compacted segment.
    pub fn first(&self) -> i64 {
        self.first
    }

    /// The file being written.
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// The name the compacted segment ends up with.
    pub fn final_name(&self) -> String {
        SegmentName { base: self.first, end: Some(self.end) }.file()
    }

    /// Makes the written segment durable and the compaction irreversible (step 1's end).
    pub fn seal(&self) -> io::Result<()> {
        self.file.sync()?;
        let (tmp, swap) = self.names();
        self.storage.rename(&tmp, &swap)?;
        self.storage.sync_dir()
    }

    fn names(&self) -> (String, String) {
        let stem = format!("{:020}-{:020}", self.first, self.end);
        (format!("{stem}.compact"), format!("{stem}.swap"))
    }

    /// Step 3: removes `old` files (the replaced segments and whatever belongs to them), then
    /// gives the new segment its final name.
    pub fn finish(self, old: &[String]) -> io::Result<()> {
        for name in old {
            self.storage.remove(name)?;
        }
        let (_, swap) = self.names();
        self.storage.rename(&swap, &self.final_name())?;
        self.storage.sync_dir()
    }

    /// Gives up (before [`Compaction::seal`]): the temporary file goes.
    pub fn abandon(self) {
        let (tmp, _) = self.names();
        let _ = self.storage.remove(&tmp);
    }
}

impl<M> Segments<M> {
    /// Step 2 of a compaction: the segments with a base in `[first, end)` leave the map and the
    /// compacted one (`size` bytes, `meta`) takes their place. Returns the old segments' names.
    pub fn swap_in(&mut self, c: &Compaction, size: u64, meta: M) -> Vec<String> {
        let bases: Vec<i64> = self.map.range(c.first..c.end).map(|(b, _)| *b).collect();
        let mut old = Vec::with_capacity(bases.len());
        for b in bases {
            if let Some(seg) = self.map.remove(&b) {
                old.push(seg.name);
            }
        }
        self.map.insert(c.first, Segment { name: c.final_name(), file: c.file.clone(), size, sealed: true, meta });
        old
    }
}

/// Finishes a compaction that reached its `.swap` file (removes the segments and derived files it
/// replaces, renames it), or discards one that did not (a `.compact` file), and removes
/// temporary files (`.tmp`).
fn recover_compaction(storage: &dyn Storage) -> io::Result<()> {
    let mut changed = false;
    for name in storage.list()? {
        if name.ends_with(".compact") || name.ends_with(".tmp") {
            storage.remove(&name)?;
            changed = true;
        } else if let Some(stem) = name.strip_suffix(".swap") {
            let bounds: Option<(i64, i64)> = stem.split_once('-').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            let Some((first, end)) = bounds else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unreadable compaction file {name}")));
            };
            for other in storage.list()? {
                let derived = || other.strip_suffix(".index").or_else(|| other.strip_suffix(".txnindex"))?.parse::<i64>().ok();
                let base = SegmentName::parse(&other).map(|n| n.base).or_else(derived);
                if base.is_some_and(|b| b >= first && b < end) {
                    storage.remove(&other)?;
                }
            }
            storage.rename(&name, &SegmentName { base: first, end: Some(end) }.file())?;
            tracing::info!(file = name.as_str(), "finished an interrupted compaction");
            changed = true;
        }
    }
    if changed {
        storage.sync_dir()?;
    }
    Ok(())
}
