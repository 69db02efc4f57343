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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
}

impl FileStorage {
    /// A directory, created if missing.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileStorage { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

#[derive(Debug)]
struct DiskFile {
    file: File,
    /// The length, tracked so appends need no seek and `len` no syscall.
    len: Mutex<u64>,
}

impl StorageFile for DiskFile {
    fn len(&self) -> io::Result<u64> {
        Ok(*self.len.lock().expect("file lock"))
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
        let mut len = self.len.lock().expect("file lock");
        self.file.write_all_at(data, *len)?;
        *len += data.len() as u64;
        Ok(())
    }
    fn truncate(&self, new_len: u64) -> io::Result<()> {
        let mut len = self.len.lock().expect("file lock");
        self.file.set_len(new_len)?;
        *len = new_len;
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Storage for FileStorage {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new().read(true).write(true).create(create).truncate(false).open(self.dir.join(name))?;
        let len = file.metadata()?.len();
        Ok(Arc::new(DiskFile { file, len: Mutex::new(len) }))
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
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }
    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

// ---------------------------------------------------------------------------- memory

#[derive(Debug, Default)]
struct MemData {
    bytes: Vec<u8>,
    /// Length known durable (as of the last sync).
    synced: usize,
}

#[derive(Debug, Default)]
struct MemFile {
    data: Mutex<MemData>,
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.data.lock().expect("mem lock").bytes.len() as u64)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.data.lock().expect("mem lock");
        let start = offset as usize;
        let end = start.checked_add(buf.len()).filter(|e| *e <= d.bytes.len());
        match end {
            Some(end) => {
                buf.copy_from_slice(&d.bytes[start..end]);
                Ok(())
            }
            None => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of a memory file")),
        }
    }
    fn append(&self, data: &[u8]) -> io::Result<()> {
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
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage { dir: Arc::default(), syncs_enabled: true }
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
        MemoryStorage { dir: Arc::default(), syncs_enabled: false }
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
            let bytes = d.bytes[..keep].to_vec();
            let synced = bytes.len();
            live.insert(name.clone(), Arc::new(MemFile { data: Mutex::new(MemData { bytes, synced }) }));
        }
        MemoryStorage { dir: Arc::new(Mutex::new(MemDir { durable: live.clone(), live })), syncs_enabled: self.syncs_enabled }
    }

    /// Bytes of a file, for tests that damage files on purpose.
    pub fn bytes(&self, name: &str) -> Option<Vec<u8>> {
        let dir = self.dir.lock().expect("mem dir lock");
        dir.live.get(name).map(|f| f.data.lock().expect("mem lock").bytes.clone())
    }

    /// Replaces a file's bytes (durably), for tests that damage files on purpose.
    pub fn set_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut dir = self.dir.lock().expect("mem dir lock");
        let synced = bytes.len();
        let f = Arc::new(MemFile { data: Mutex::new(MemData { bytes, synced }) });
        dir.live.insert(name.to_string(), f.clone());
        dir.durable.insert(name.to_string(), f);
    }

    /// Unsynced bytes of a file (written but not durable).
    pub fn unsynced(&self, name: &str) -> usize {
        let dir = self.dir.lock().expect("mem dir lock");
        dir.live.get(name).map(|f| {
            let d = f.data.lock().expect("mem lock");
            d.bytes.len() - d.synced
        }).unwrap_or(0)
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
        let f = Arc::new(MemFile::default());
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
        let mut dir = self.dir.lock().expect("mem dir lock");
        let f = dir
            .live
            .remove(from)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {from}")))?;
        dir.live.insert(to.to_string(), f);
        Ok(())
    }
    fn sync_dir(&self) -> io::Result<()> {
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
