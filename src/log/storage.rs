//! The storage seam: a directory of append-only files, with a real twin (the file system) and
//! a memory twin that can simulate a crash.
//!
//! Two small traits: [`Storage`] (a directory: open, list, remove, rename, sync) and
//! [`StorageFile`] (one file: length, read, append, truncate, sync). Everything above this
//! seam — segments, recovery, compaction — is the same code on both twins.
//!
//! The memory twin keeps, per file, the bytes written and the prefix known durable (the length
//! at the last `sync`), and for the directory, the names known durable (as of the last
//! `sync_dir`). [`MemoryStorage::crash_image`] builds what a machine could find after power
//! loss: every durable name and byte, plus any prefix of the bytes written since.
//! [`MemoryStorage::fail`] injects disk faults: the next write, fsync, rename or directory sync
//! (or every one, until cleared) fails with the errno given — a failed write having written
//! half its bytes first, as a disk that fills up mid-write does.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// One append-only file.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + std::fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Appends `data` at the end: handed to the OS (survives a process crash), not yet durable.
    fn append(&self, data: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Makes everything appended so far durable.
    fn sync(&self) -> io::Result<()>;
}

/// A directory of files.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Opens a file, creating it (empty) if `create` and it does not exist.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Names of the files, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Makes creations, removals and renames so far durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Whether a sync costs anything (`false` for the memory twin, where durability is the
    /// running process: the log then counts an append as durable at once).
    fn syncs(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------- files

/// A directory on the file system.
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    handles: Arc<Handles>,
}

impl FileStorage {
    /// A directory, created if missing, with a cache of its own for open descriptors.
    pub fn open(dir: &Path) -> io::Result<Self> {
        Self::open_with(dir, Arc::new(Handles::new(Handles::DEFAULT_CAPACITY)))
    }

    /// A directory sharing `handles` (one cache for a whole data dir).
    pub fn open_with(dir: &Path, handles: Arc<Handles>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileStorage { dir: dir.to_path_buf(), handles })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// The open file descriptors of a data dir, bounded. A file's descriptor is opened on first
/// use and kept while the file is used; past `capacity` open descriptors, the least recently
/// used file gives its back and reopens it on its next use. So the number of partitions is
/// limited by disk, not by `ulimit -n`. Files are known by path (a rename moves the entry),
/// and one path has one [`StorageFile`] at a time.
#[derive(Debug)]
pub struct Handles {
    capacity: usize,
    /// Bumped on every use; a file's last use is its value then.
    clock: AtomicU64,
    files: Mutex<HandlesInner>,
}

#[derive(Debug, Default)]
struct HandlesInner {
    /// Every live file by path, open or not.
    by_path: std::collections::HashMap<PathBuf, Weak<DiskFile>>,
    /// The files holding a descriptor now.
    open: Vec<Weak<DiskFile>>,
}

impl Handles {
    /// Descriptors kept open when nothing says otherwise.
    pub const DEFAULT_CAPACITY: usize = 512;

    /// A cache keeping at most `capacity` descriptors open (at least 8).
    pub fn new(capacity: usize) -> Self {
        Handles { capacity: capacity.max(8), clock: AtomicU64::new(0), files: Mutex::new(HandlesInner::default()) }
    }

    /// How many descriptors the cache keeps open at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Descriptors open now.
    pub fn open_count(&self) -> usize {
        self.files.lock().expect("handles lock").open.iter().filter(|w| w.strong_count() > 0).count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HandlesInner> {
        self.files.lock().expect("handles lock")
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// `file` just opened its descriptor: if that makes too many, the least recently used
    /// others close theirs (outside the cache's lock).
    fn opened(&self, file: &Arc<DiskFile>) {
        let victims: Vec<Arc<DiskFile>> = {
            let mut inner = self.lock();
            inner.open.retain(|w| w.upgrade().is_some_and(|f| f.is_open()));
            inner.open.push(Arc::downgrade(file));
            let excess = inner.open.len().saturating_sub(self.capacity);
            if excess == 0 {
                Vec::new()
            } else {
                let mut candidates: Vec<Arc<DiskFile>> =
                    inner.open.iter().filter_map(Weak::upgrade).filter(|f| !Arc::ptr_eq(f, file)).collect();
                candidates.sort_by_key(|f| f.last_used.load(Ordering::Relaxed));
                candidates.truncate(excess);
                let gone: Vec<*const DiskFile> = candidates.iter().map(Arc::as_ptr).collect();
                inner.open.retain(|w| !gone.contains(&w.as_ptr()));
                candidates
            }
        };
        for f in victims {
            f.close();
        }
    }
}

/// A file on disk whose descriptor comes and goes (see [`Handles`]).
#[derive(Debug)]
struct DiskFile {
    path: Mutex<PathBuf>,
    handles: Arc<Handles>,
    me: Weak<DiskFile>,
    file: Mutex<Option<Arc<File>>>,
    last_used: AtomicU64,
    /// The length, tracked so appends need no seek and `len` no syscall.
    len: Mutex<u64>,
}

impl DiskFile {
    fn is_open(&self) -> bool {
        self.file.lock().expect("file lock").is_some()
    }

    fn close(&self) {
        self.file.lock().expect("file lock").take();
    }

    /// The descriptor, opened (again) if the cache took it.
    fn handle(&self) -> io::Result<Arc<File>> {
        self.last_used.store(self.handles.tick(), Ordering::Relaxed);
        let mut slot = self.file.lock().expect("file lock");
        if let Some(f) = &*slot {
            return Ok(f.clone());
        }
        let path = self.path.lock().expect("path lock").clone();
        let f = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => Arc::new(f),
            Err(e) => return Err(io::Error::new(e.kind(), NotReopened { path, source: e })),
        };
        *slot = Some(f.clone());
        drop(slot);
        if let Some(me) = self.me.upgrade() {
            self.handles.opened(&me);
        }
        Ok(f)
    }
}

/// A file whose descriptor the cache had closed could not be opened again (e.g. the process
/// is out of descriptors): the operation did nothing.
#[derive(Debug)]
struct NotReopened {
    path: PathBuf,
    source: io::Error,
}

impl std::fmt::Display for NotReopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reopening {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for NotReopened {}

/// Whether an error says the operation never started (its file could not be reopened), so it
/// changed nothing.
pub(crate) fn changed_nothing(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NotReopened>())
}

impl StorageFile for DiskFile {
    fn len(&self) -> io::Result<u64> {
        Ok(*self.len.lock().expect("file lock"))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.handle()?.read_exact_at(buf, offset)
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let mut len = self.len.lock().expect("file lock");
        self.handle()?.write_all_at(data, *len)?;
        *len += data.len() as u64;
        Ok(())
    }
    fn truncate(&self, new_len: u64) -> io::Result<()> {
        let mut len = self.len.lock().expect("file lock");
        self.handle()?.set_len(new_len)?;
        *len = new_len;
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.handle()?.sync_data()
    }
}

impl Storage for FileStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let path = self.dir.join(name);
        if let Some(f) = self.handles.lock().by_path.get(&path).and_then(Weak::upgrade) {
            return Ok(f);
        }
        let file = OpenOptions::new().read(true).write(true).create(create).truncate(false).open(&path)?;
        let len = file.metadata()?.len();
        let disk = Arc::new_cyclic(|me| DiskFile {
            path: Mutex::new(path.clone()),
            handles: self.handles.clone(),
            me: me.clone(),
            file: Mutex::new(Some(Arc::new(file))),
            last_used: AtomicU64::new(self.handles.tick()),
            len: Mutex::new(len),
        });
        {
            let mut inner = self.handles.lock();
            // another caller may have opened it meanwhile: one object per path
            if let Some(f) = inner.by_path.get(&path).and_then(Weak::upgrade) {
                return Ok(f);
            }
            inner.by_path.retain(|_, w| w.strong_count() > 0);
            inner.by_path.insert(path, Arc::downgrade(&disk));
        }
        self.handles.opened(&disk);
        Ok(disk)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let path = self.dir.join(name);
        if let Some(f) = self.handles.lock().by_path.remove(&path).and_then(|w| w.upgrade()) {
            // a holder may still read it: keep its descriptor (the data lives until it closes)
            let _ = f.handle();
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.dir.join(from), self.dir.join(to));
        std::fs::rename(&from, &to)?;
        let mut inner = self.handles.lock();
        inner.by_path.remove(&to);
        if let Some(w) = inner.by_path.remove(&from) {
            if let Some(f) = w.upgrade() {
                *f.path.lock().expect("path lock") = to.clone();
            }
            inner.by_path.insert(to, w);
        }
        Ok(())
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

// ---------------------------------------------------------------------------- memory

/// A memory file's bytes, in chunks of fixed capacity: an append never moves what is already
/// there (one growing `Vec` would copy the whole file into fresh pages at every doubling,
/// which was most of the cost of a large produce on `--ephemeral`).
#[derive(Debug, Default, Clone)]
struct Chunked {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Chunked {
    /// Bytes per chunk.
    const CHUNK: usize = 1 << 20;

    fn from_vec(v: Vec<u8>) -> Self {
        let mut c = Chunked::default();
        c.extend_from_slice(&v);
        c
    }

    fn len(&self) -> usize {
        self.len
    }

    fn extend_from_slice(&mut self, mut data: &[u8]) {
        self.len += data.len();
        while !data.is_empty() {
            match self.chunks.last_mut() {
                Some(last) if last.len() < Self::CHUNK => {
                    let n = (Self::CHUNK - last.len()).min(data.len());
                    last.extend_from_slice(&data[..n]);
                    data = &data[n..];
                }
                _ => self.chunks.push(Vec::with_capacity(Self::CHUNK)),
            }
        }
    }

    fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let keep_chunks = len.div_ceil(Self::CHUNK);
        self.chunks.truncate(keep_chunks);
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(len - (keep_chunks - 1) * Self::CHUNK);
        }
        self.len = len;
    }

    /// Copies `buf.len()` bytes from `offset`; `false` if that runs past the end.
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        if offset.checked_add(buf.len()).is_none_or(|end| end > self.len) {
            return false;
        }
        let mut at = offset;
        let mut done = 0;
        while done < buf.len() {
            let chunk = &self.chunks[at / Self::CHUNK];
            let from = at % Self::CHUNK;
            let n = (chunk.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&chunk[from..from + n]);
            done += n;
            at += n;
        }
        true
    }

    /// The first `len` bytes.
    fn prefix(&self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len.min(self.len)];
        self.read_at(0, &mut v);
        v
    }
}

#[derive(Debug, Default)]
struct MemData {
    bytes: Chunked,
    /// Length known durable (as of the last sync).
    synced: usize,
}

#[derive(Debug, Default)]
struct MemFile {
    data: Mutex<MemData>,
    faults: Faults,
}

/// An operation the memory twin can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `append` (writes half the bytes, then fails).
    Write,
    /// A file's `sync`.
    Sync,
    Rename,
    SyncDir,
    /// Creating a file.
    Create,
    /// A file's `read_at`.
    Read,
}

/// Faults armed on a memory storage, shared with its files.
#[derive(Debug, Clone, Default)]
struct Faults(Arc<Mutex<Vec<Fault>>>);

#[derive(Debug, Clone)]
struct Fault {
    op: FaultOp,
    /// The error it fails with; `None`: it only waits at its gate, then succeeds.
    errno: Option<i32>,
    /// Fails once and disarms, or fails until cleared.
    once: bool,
    /// The failing operation first blocks until this gate opens.
    gate: Option<Gate>,
    /// Only an operation on a name containing this (renames: the new name).
    name: Option<String>,
}

/// Holds a faulty operation until [`Gate::open`] (tests that need a request to be in flight
/// while its file work is held or failing). An operation held for 10 s goes on by itself and
/// the gate says so ([`Gate::expired`]): a test of "X does not wait behind Y" fails instead
/// of hanging when X does.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<(Mutex<GateState>, std::sync::Condvar)>);

#[derive(Debug, Default)]
struct GateState {
    open: bool,
    reached: bool,
    expired: bool,
}

impl Gate {
    /// Lets every operation held at this gate go on.
    pub fn open(&self) {
        self.0.0.lock().expect("gate lock").open = true;
        self.0.1.notify_all();
    }

    /// Whether an operation has reached the gate.
    pub fn reached(&self) -> bool {
        self.0.0.lock().expect("gate lock").reached
    }

    /// Waits (blocking) until an operation reaches the gate; `false` after `within`.
    pub fn wait_reached(&self, within: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        while !self.reached() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    /// Whether a held operation gave up waiting for [`Gate::open`].
    pub fn expired(&self) -> bool {
        self.0.0.lock().expect("gate lock").expired
    }

    fn wait(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut st = self.0.0.lock().expect("gate lock");
        st.reached = true;
        while !st.open {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                st.expired = true;
                return;
            }
            st = self.0.1.wait_timeout(st, left).expect("gate lock").0;
        }
    }
}

impl Faults {
    /// The error `op` fails with now, if a fault is armed for it.
    fn check(&self, op: FaultOp) -> io::Result<()> {
        self.check_named(op, None)
    }

    /// The error `op` on `name` fails with now, if a fault is armed for it.
    fn check_named(&self, op: FaultOp, name: Option<&str>) -> io::Result<()> {
        let f = {
            let mut all = self.0.lock().expect("faults lock");
            let matches = |f: &Fault| f.op == op && f.name.as_deref().is_none_or(|want| name.is_some_and(|n| n.contains(want)));
            let Some(i) = all.iter().position(matches) else { return Ok(()) };
            if all[i].once { all.remove(i) } else { all[i].clone() }
        };
        if let Some(gate) = &f.gate {
            gate.wait();
        }
        match f.errno {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn arm(&self, op: FaultOp, errno: Option<i32>, once: bool, gate: Option<Gate>) {
        self.0.lock().expect("faults lock").push(Fault { op, errno, once, gate, name: None });
    }
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().expect("mem lock").bytes.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.faults.check(FaultOp::Read)?;
        let d = self.data.lock().expect("mem lock");
        if usize::try_from(offset).is_ok_and(|start| d.bytes.read_at(start, buf)) {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of a memory file"))
        }
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.faults.check(FaultOp::Write) {
            self.data.lock().expect("mem lock").bytes.extend_from_slice(&data[..data.len() / 2]);
            return Err(e);
        }
        self.data.lock().expect("mem lock").bytes.extend_from_slice(data);
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        let mut d = self.data.lock().expect("mem lock");
        d.bytes.truncate(len as usize);
        d.synced = d.synced.min(d.bytes.len());
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.faults.check(FaultOp::Sync)?;
        let mut d = self.data.lock().expect("mem lock");
        d.synced = d.bytes.len();
        Ok(())
    }
}

#[derive(Debug, Default)]
struct MemDir {
    /// Names as the running process sees them.
    live: BTreeMap<String, Arc<MemFile>>,
    /// Names as they would be found after a crash (as of the last sync_dir).
    durable: BTreeMap<String, Arc<MemFile>>,
}

/// The in-memory twin.
#[derive(Debug, Clone)]
pub struct MemoryStorage {
    dir: Arc<Mutex<MemDir>>,
    /// Crash tests want syncs modelled; `--ephemeral` does not (see [`Storage::syncs`]).
    syncs_enabled: bool,
    faults: Faults,
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage { dir: Arc::default(), syncs_enabled: true, faults: Faults::default() }
    }
}

/// How a simulated crash treats bytes written but not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// Every unsynced byte is lost.
    DropUnsynced,
    /// Of each file's unsynced bytes, the first `n` survive (a torn write).
    KeepUnsynced(usize),
    /// Nothing is lost (a process crash: the OS had every byte).
    KeepAll,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// A memory storage for `--ephemeral` runs: appends count as durable at once.
    pub fn ephemeral() -> Self {
        MemoryStorage { dir: Arc::default(), syncs_enabled: false, faults: Faults::default() }
    }

    /// A memory storage whose files share `faults` (and model syncs or not).
    pub(crate) fn sharing(syncs_enabled: bool, faults: &MemoryStorage) -> Self {
        MemoryStorage { dir: Arc::default(), syncs_enabled, faults: faults.faults.clone() }
    }

    /// Arms a fault: the next `op` (with `once`) or every `op` until [`Self::clear_faults`]
    /// fails with `errno` (e.g. `libc`'s ENOSPC 28 or EIO 5). Files of this storage share it.
    pub fn fail(&self, op: FaultOp, errno: i32, once: bool) {
        self.faults.arm(op, Some(errno), once, None);
    }

    /// Like [`MemoryStorage::fail`] once, but the failing operation blocks until the returned
    /// gate opens.
    pub fn fail_held(&self, op: FaultOp, errno: i32) -> Gate {
        let gate = Gate::default();
        self.faults.arm(op, Some(errno), true, Some(gate.clone()));
        gate
    }

    /// Makes the next `op` block until the returned gate opens, then succeed (a slow disk:
    /// tests that some work does not wait behind another's file I/O).
    pub fn hold(&self, op: FaultOp) -> Gate {
        let gate = Gate::default();
        self.faults.arm(op, None, true, Some(gate.clone()));
        gate
    }

    /// Like [`MemoryStorage::hold`], for the next rename to a name containing `to`.
    pub fn hold_rename(&self, to: &str) -> Gate {
        let gate = Gate::default();
        let fault = Fault { op: FaultOp::Rename, errno: None, once: true, gate: Some(gate.clone()), name: Some(to.to_string()) };
        self.faults.0.lock().expect("faults lock").push(fault);
        gate
    }

    /// Disarms every fault (the disk recovered).
    pub fn clear_faults(&self) {
        self.faults.0.lock().expect("faults lock").clear();
    }

    /// The storage a restart would find after a crash now.
    pub fn crash_image(&self, crash: Crash) -> MemoryStorage {
        let dir = self.dir.lock().expect("mem dir lock");
        let names = if crash == Crash::KeepAll { &dir.live } else { &dir.durable };
        let mut live = BTreeMap::new();
        for (name, f) in names {
            let d = f.data.lock().expect("mem lock");
            let keep = match crash {
                Crash::DropUnsynced => d.synced,
                Crash::KeepUnsynced(n) => (d.synced + n).min(d.bytes.len()),
                Crash::KeepAll => d.bytes.len(),
            };
            let bytes = Chunked::from_vec(d.bytes.prefix(keep));
            let synced = bytes.len();
            live.insert(name.clone(), Arc::new(MemFile { data: Mutex::new(MemData { bytes, synced }), faults: Faults::default() }));
        }
        MemoryStorage {
            dir: Arc::new(Mutex::new(MemDir { durable: live.clone(), live })),
            syncs_enabled: self.syncs_enabled,
            faults: Faults::default(),
        }
    }

    /// Bytes of a file, for tests that damage files on purpose.
    pub fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        let dir = self.dir.lock().expect("mem dir lock");
        dir.live.get(name).map(|f| {
            let d = f.data.lock().expect("mem lock");
            d.bytes.prefix(d.bytes.len())
        })
    }

    /// Replaces a file's bytes (durably), for tests that damage files on purpose.
    pub fn set_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut dir = self.dir.lock().expect("mem dir lock");
        let synced = bytes.len();
        let f = Arc::new(MemFile { data: Mutex::new(MemData { bytes: Chunked::from_vec(bytes), synced }), faults: self.faults.clone() });
        dir.live.insert(name.to_string(), f.clone());
        dir.durable.insert(name.to_string(), f);
    }

    /// Unsynced bytes of a file (written but not durable).
    pub fn unsynced(&self, name: &str) -> usize {
        let dir = self.dir.lock().expect("mem dir lock");
        dir.live
            .get(name)
            .map(|f| {
                let d = f.data.lock().expect("mem lock");
                d.bytes.len() - d.synced
            })
            .unwrap_or(0)
    }
}

impl Storage for MemoryStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut dir = self.dir.lock().expect("mem dir lock");
        if let Some(f) = dir.live.get(name) {
            return Ok(f.clone());
        }
        if !create {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no file {name}")));
        }
        self.faults.check(FaultOp::Create)?;
        let f = Arc::new(MemFile { data: Mutex::default(), faults: self.faults.clone() });
        dir.live.insert(name.to_string(), f.clone());
        Ok(f)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.dir.lock().expect("mem dir lock").live.keys().cloned().collect())
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.dir.lock().expect("mem dir lock").live.remove(name);
        Ok(())
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.faults.check_named(FaultOp::Rename, Some(to))?;
        let mut dir = self.dir.lock().expect("mem dir lock");
        let f = dir.live.remove(from).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {from}")))?;
        dir.live.insert(to.to_string(), f);
        Ok(())
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.faults.check(FaultOp::SyncDir)?;
        let mut dir = self.dir.lock().expect("mem dir lock");
        dir.durable = dir.live.clone();
        Ok(())
    }
    fn syncs(&self) -> bool {
        self.syncs_enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bytes_read_truncate_and_copy_across_chunks() {
        let mut c = Chunked::default();
        let data: Vec<u8> = (0..(Chunked::CHUNK * 5 / 2)).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(300_000) {
            c.extend_from_slice(piece);
        }
        assert_eq!((c.len(), c.chunks.len()), (data.len(), 3));
        let mut buf = vec![0u8; 100];
        let at = Chunked::CHUNK - 40;
        assert!(c.read_at(at, &mut buf));
        assert_eq!(buf, data[at..at + 100]);
        assert!(!c.read_at(data.len() - 50, &mut buf), "past the end");
        c.truncate(Chunked::CHUNK + 7);
        assert_eq!((c.len(), c.chunks.len()), (Chunked::CHUNK + 7, 2));
        c.extend_from_slice(b"tail");
        assert_eq!(c.prefix(c.len())[..Chunked::CHUNK + 7], data[..Chunked::CHUNK + 7]);
        assert_eq!(&c.prefix(c.len())[Chunked::CHUNK + 7..], b"tail");
        c.truncate(Chunked::CHUNK);
        assert_eq!((c.len(), c.chunks.len()), (Chunked::CHUNK, 1));
        c.truncate(0);
        assert_eq!((c.len(), c.chunks.len()), (0, 0));
    }

    fn exercise(s: &dyn Storage) {
        let f = s.open("a", true).unwrap();
        f.append(b"hello ").unwrap();
        f.append(b"world").unwrap();
        assert_eq!(f.len().unwrap(), 11);
        let mut buf = [0u8; 5];
        f.read_at(6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        assert!(f.read_at(8, &mut buf).is_err());
        f.truncate(5).unwrap();
        f.sync().unwrap();
        assert_eq!(f.len().unwrap(), 5);
        s.rename("a", "b").unwrap();
        s.sync_dir().unwrap();
        assert_eq!(s.list().unwrap(), vec!["b".to_string()]);
        assert!(s.open("a", false).is_err());
        let again = s.open("b", false).unwrap();
        assert_eq!(again.len().unwrap(), 5);
        s.remove("b").unwrap();
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn both_twins_behave_alike() {
        exercise(&MemoryStorage::new());
        let dir = tempfile::tempdir().unwrap();
        exercise(&FileStorage::open(dir.path()).unwrap());
    }

    #[test]
    fn a_crash_keeps_synced_bytes_and_durable_names() {
        let s = MemoryStorage::new();
        let f = s.open("seg", true).unwrap();
        f.append(b"durable").unwrap();
        f.sync().unwrap();
        s.sync_dir().unwrap();
        f.append(b"+tail").unwrap();
        s.open("unsynced-name", true).unwrap();
        let lost = s.crash_image(Crash::DropUnsynced);
        assert_eq!(lost.list().unwrap(), vec!["seg".to_string()]);
        assert_eq!(lost.bytes("seg").unwrap(), b"durable");
        assert_eq!(s.crash_image(Crash::KeepUnsynced(2)).bytes("seg").unwrap(), b"durable+t");
        assert_eq!(s.crash_image(Crash::KeepAll).bytes("seg").unwrap(), b"durable+tail");
    }
}
