//! The data directory: its lock, its format version, and where each log lives.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::storage::{FileStorage, Handles, MemoryStorage, Storage};

/// The on-disk format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const META_FILE: &str = "meta.properties";

/// Why a data dir cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("data dir {0} is in use by another corral (its lock file is held)")]
    Locked(String),
    #[error(
        "data dir {path} was written in on-disk format version {found}; this corral reads version {FORMAT_VERSION}. Use a corral of that version, or start with an empty data dir"
    )]
    Version { path: String, found: String },
    #[error("data dir {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Most descriptors the data dir keeps open, whatever the limit: segment files beyond it are
/// reopened on use (least recently used first), which costs little, while every connection
/// needs its own descriptor for as long as it lives.
const DESCRIPTOR_BUDGET_MAX: u64 = 4096;

/// How many file descriptors the data dir's files may hold open under an open-file limit of
/// `soft`: half of it, at most [`DESCRIPTOR_BUDGET_MAX`], at least 32 (the rest is for
/// connections and everything else).
pub fn descriptor_budget_for(soft: u64) -> u64 {
    (soft / 2).clamp(32, DESCRIPTOR_BUDGET_MAX)
}

fn descriptor_budget() -> usize {
    let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(descriptor_budget_for(soft)).unwrap_or(usize::MAX)
}

/// What `meta.properties` records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub cluster_id: String,
    pub node_id: i32,
    pub offsets_partitions: i32,
}

/// Where the logs live: a locked directory, or memory (`--ephemeral`).
#[derive(Debug)]
pub enum DataDir {
    Disk { root: PathBuf, _lock: std::fs::File, handles: Arc<Handles> },
    Memory { root: MemoryRoot },
}

/// The memory twin's directory tree: one storage per log, created on first use.
#[derive(Debug, Default)]
pub struct MemoryRoot {
    dirs: std::sync::Mutex<std::collections::HashMap<String, MemoryStorage>>,
    /// Whether its storages model syncs (tests of crashes and disk faults) or count every
    /// append as durable (`--ephemeral`).
    syncs: bool,
    /// Carries the faults armed for every storage of the tree (see [`DataDir::fail`]).
    faults: MemoryStorage,
}

impl DataDir {
    /// Locks `root` (created if missing) and reads or writes its `meta.properties`. A fresh
    /// directory gets `fresh`; an existing one must match the format version and the offsets
    /// partition count.
    pub fn open(root: &Path, fresh: Meta) -> Result<(DataDir, Meta), DataDirError> {
        let shown = root.display().to_string();
        let io_err = |source| DataDirError::Io { path: shown.clone(), source };
        std::fs::create_dir_all(root).map_err(io_err)?;
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(root.join(".lock")).map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(DataDirError::Locked(shown)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let meta_path = root.join(META_FILE);
        let meta = match std::fs::read_to_string(&meta_path) {
            Ok(text) => parse_meta(&shown, &text, &fresh)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let others = std::fs::read_dir(root).map_err(io_err)?.filter_map(|e| e.ok()).any(|e| e.file_name() != ".lock");
                if others {
                    return Err(DataDirError::Invalid {
                        path: shown,
                        message: format!(
                            "it holds files but no {META_FILE}: not a corral data dir, or one written before format version {FORMAT_VERSION}"
                        ),
                    });
                }
                write_meta(root, &fresh).map_err(io_err)?;
                fresh
            }
            Err(e) => return Err(io_err(e)),
        };
        let handles = Arc::new(Handles::new(descriptor_budget()));
        tracing::debug!(descriptors = handles.capacity(), "data dir file descriptors kept open at most");
        Ok((DataDir::Disk { root: root.to_path_buf(), _lock: lock, handles }, meta))
    }

    /// An in-memory data dir.
    pub fn memory() -> DataDir {
        DataDir::Memory { root: MemoryRoot::default() }
    }

    /// An in-memory data dir whose storages model syncs, for tests of disk faults.
    pub fn memory_modelled() -> DataDir {
        DataDir::Memory { root: MemoryRoot { syncs: true, ..MemoryRoot::default() } }
    }

    /// Arms a disk fault on every storage of an in-memory data dir (see
    /// [`MemoryStorage::fail`]); nothing for one on disk.
    pub fn fail(&self, op: super::storage::FaultOp, errno: i32, once: bool) {
        if let DataDir::Memory { root } = self {
            root.faults.fail(op, errno, once);
        }
    }

    /// Arms a fault whose operation blocks until the gate opens, then fails (see
    /// [`MemoryStorage::fail_held`]); `None` for a data dir on disk.
    pub fn fail_held(&self, op: super::storage::FaultOp, errno: i32) -> Option<super::storage::Gate> {
        match self {
            DataDir::Memory { root } => Some(root.faults.fail_held(op, errno)),
            DataDir::Disk { .. } => None,
        }
    }

    /// Makes the next `op` on an in-memory data dir block until the gate opens, then succeed
    /// (see [`MemoryStorage::hold`]); `None` for a data dir on disk.
    pub fn hold(&self, op: super::storage::FaultOp) -> Option<super::storage::Gate> {
        match self {
            DataDir::Memory { root } => Some(root.faults.hold(op)),
            DataDir::Disk { .. } => None,
        }
    }

    /// Disarms every fault of an in-memory data dir (the disk recovered).
    pub fn clear_faults(&self) {
        if let DataDir::Memory { root } = self {
            root.faults.clear_faults();
        }
    }

    /// The storage of one log, by its path under the root (`meta`, `coordinator/07`, ...).
    pub fn storage(&self, path: &str) -> io::Result<Arc<dyn Storage>> {
        match self {
            DataDir::Disk { root, handles, .. } => Ok(Arc::new(FileStorage::open_with(&root.join(path), handles.clone())?)),
            DataDir::Memory { root } => {
                let mut dirs = root.dirs.lock().expect("memory root lock");
                Ok(Arc::new(dirs.entry(path.to_string()).or_insert_with(|| MemoryStorage::sharing(root.syncs, &root.faults)).clone()))
            }
        }
    }

    /// Sub-directories of `path` (partition directories at start-up).
    pub fn children(&self, path: &str) -> io::Result<Vec<String>> {
        match self {
            DataDir::Disk { root, .. } => {
                let dir = root.join(path);
                if !dir.exists() {
                    return Ok(Vec::new());
                }
                let mut v: Vec<String> = std::fs::read_dir(dir)?
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                v.sort();
                Ok(v)
            }
            DataDir::Memory { root } => {
                let prefix = format!("{path}/");
                let dirs = root.dirs.lock().expect("memory root lock");
                let mut v: Vec<String> =
                    dirs.keys().filter_map(|k| k.strip_prefix(&prefix)).filter(|rest| !rest.contains('/')).map(str::to_string).collect();
                v.sort();
                Ok(v)
            }
        }
    }

    /// Removes a log's directory (after its files are gone).
    pub fn remove(&self, path: &str) -> io::Result<()> {
        match self {
            DataDir::Disk { root, .. } => match std::fs::remove_dir_all(root.join(path)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            DataDir::Memory { root } => {
                root.dirs.lock().expect("memory root lock").remove(path);
                Ok(())
            }
        }
    }

    /// Descriptors the data dir's files hold open now (none in memory).
    pub fn open_files(&self) -> usize {
        match self {
            DataDir::Disk { handles, .. } => handles.open_count(),
            DataDir::Memory { .. } => 0,
        }
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, DataDir::Memory { .. })
    }

    /// The root path, if on disk.
    pub fn root(&self) -> Option<&Path> {
        match self {
            DataDir::Disk { root, .. } => Some(root),
            DataDir::Memory { .. } => None,
        }
    }
}

fn parse_meta(path: &str, text: &str, fresh: &Meta) -> Result<Meta, DataDirError> {
    let mut version = None;
    let mut cluster = None;
    let mut node = None;
    let mut parts = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "format.version" => version = Some(v.trim().to_string()),
                "cluster.id" => cluster = Some(v.trim().to_string()),
                "node.id" => node = v.trim().parse().ok(),
                "offsets.topic.num.partitions" => parts = v.trim().parse().ok(),
                _ => {}
            }
        }
    }
    let invalid = |m: &str| DataDirError::Invalid { path: path.to_string(), message: m.to_string() };
    let found = version.ok_or_else(|| invalid("meta.properties has no format.version"))?;
    if found != FORMAT_VERSION.to_string() {
        return Err(DataDirError::Version { path: path.to_string(), found });
    }
    let offsets_partitions: i32 = parts.ok_or_else(|| invalid("meta.properties has no offsets.topic.num.partitions"))?;
    if offsets_partitions != fresh.offsets_partitions {
        return Err(invalid(&format!(
            "it was created with offsets.topic.num.partitions={offsets_partitions}, the config says {}; group placement depends on it, so it cannot change",
            fresh.offsets_partitions
        )));
    }
    Ok(Meta {
        cluster_id: cluster.ok_or_else(|| invalid("meta.properties has no cluster.id"))?,
        node_id: node.unwrap_or(fresh.node_id),
        offsets_partitions,
    })
}

fn write_meta(root: &Path, m: &Meta) -> io::Result<()> {
    let text = format!(
        "# corral data directory; do not edit\nformat.version={FORMAT_VERSION}\ncluster.id={}\nnode.id={}\noffsets.topic.num.partitions={}\n",
        m.cluster_id, m.node_id, m.offsets_partitions
    );
    let tmp = root.join(format!("{META_FILE}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, root.join(META_FILE))?;
    std::fs::File::open(root)?.sync_all()
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_data_dir_takes_half_the_descriptors_up_to_4096() {
        assert_eq!(descriptor_budget_for(256), 128);
        assert_eq!(descriptor_budget_for(20_000), 4096);
        assert_eq!(descriptor_budget_for(40), 32);
    }

    use super::*;

    fn meta() -> Meta {
        Meta { cluster_id: "abc".into(), node_id: 1, offsets_partitions: 50 }
    }

    #[test]
    fn fresh_locked_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let (d, m) = DataDir::open(dir.path(), meta()).unwrap();
        assert_eq!(m, meta());
        assert!(matches!(DataDir::open(dir.path(), meta()), Err(DataDirError::Locked(_))));
        drop(d);
        let (_, m) = DataDir::open(dir.path(), Meta { cluster_id: "other".into(), ..meta() }).unwrap();
        assert_eq!(m.cluster_id, "abc", "the stored cluster id wins");
    }

    #[test]
    fn wrong_version_or_partitions_or_foreign_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(META_FILE), "format.version=0\ncluster.id=x\noffsets.topic.num.partitions=50\n").unwrap();
        let e = DataDir::open(dir.path(), meta()).unwrap_err();
        assert!(matches!(e, DataDirError::Version { .. }), "{e}");
        assert!(e.to_string().contains("format version 0"));
        std::fs::write(dir.path().join(META_FILE), "format.version=1\ncluster.id=x\noffsets.topic.num.partitions=10\n").unwrap();
        assert!(matches!(DataDir::open(dir.path(), meta()), Err(DataDirError::Invalid { .. })));
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("something"), "x").unwrap();
        assert!(matches!(DataDir::open(other.path(), meta()), Err(DataDirError::Invalid { .. })));
    }

    /// A data dir that cannot be created or written (here: under /proc, which refuses even
    /// root) is an I/O error naming the path, not a panic.
    #[test]
    fn an_unwritable_dir_is_an_error() {
        let e = DataDir::open(Path::new("/proc/corral-test-data"), meta()).unwrap_err();
        assert!(matches!(e, DataDirError::Io { .. }), "{e}");
        assert!(e.to_string().contains("/proc/corral-test-data"));
    }
}
