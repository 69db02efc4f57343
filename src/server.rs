//! The accept loop, the connection limit, and graceful shutdown.
//!
//! [`Server::open`] takes an already bound listener and the config, locks the data dir and
//! builds the shared state; [`Server::run`] serves until the shutdown future completes, then
//! stops accepting, lets in-flight requests finish (parked fetches answer early), and returns.
//! [`run`] does both, for tests and embedders.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{Config, HostPort};
use crate::coordinator::Coordinator;
use crate::coordinator::log::MemoryOffsetsLog;
use crate::coordinator::shard::ShardConfig;
use crate::router::{ConnInfo, Context};

/// How long shutdown waits for in-flight requests before dropping their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(800);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error("data dir {0} is in use by another corral (its lock file is held)")]
    DataDirLocked(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An exclusive lock on the data dir, held while the server lives.
#[derive(Debug)]
struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<Self, ServerError> {
        let shown = dir.display().to_string();
        let io = |source| ServerError::DataDir { path: shown.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::DataDirLocked(shown)),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

/// A server ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    ctx: Context,
    _lock: Option<DirLock>,
}

/// The address clients are told to use: the configured one, or the bound address (with a
/// wildcard bind replaced by loopback, which is the only address we can be sure of).
fn advertised_for(config: &Config, bound: SocketAddr) -> HostPort {
    if let Some(a) = &config.advertised {
        return a.clone();
    }
    let host = if bound.ip().is_unspecified() {
        tracing::warn!("listening on {bound} without --advertised: advertising 127.0.0.1; set --advertised for clients on other hosts");
        "127.0.0.1".to_string()
    } else {
        bound.ip().to_string()
    };
    HostPort { host, port: bound.port() }
}

/// A fresh cluster id: 16 random bytes in URL-safe base64, as Kafka writes them.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | b as u32;
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(ALPHABET[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(ALPHABET[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

impl Server {
    /// Locks the data dir (unless ephemeral) and builds the shared state.
    pub fn open(listener: TcpListener, config: Config) -> Result<Self, ServerError> {
        let lock = if config.ephemeral { None } else { Some(DirLock::acquire(&config.data_dir)?) };
        let bound = listener.local_addr()?;
        let advertised = advertised_for(&config, bound);
        let config = Arc::new(config);
        let broker = Arc::new(Broker::new(config.clone(), advertised, new_cluster_id()));
        let shutdown = CancellationToken::new();
        let partitions = config.offsets_topic_num_partitions as usize;
        let coordinator = Coordinator::new(
            ShardConfig::from_config(&config),
            partitions,
            Arc::new(MemoryOffsetsLog::new(partitions)),
            shutdown.clone(),
        );
        coordinator.load()?;
        Ok(Server {
            listener,
            ctx: Context { broker, coordinator, shutdown },
            _lock: lock,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address clients are told to connect to.
    pub fn advertised(&self) -> &HostPort {
        &self.ctx.broker.advertised
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { listener, ctx, _lock } = self;
        ctx.coordinator.spawn_timers();
        let limit = Arc::new(Semaphore::new(ctx.broker.config.max_connections));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                a = listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = ctx.clone();
                    metrics::gauge!("corral_connections").increment(1.0);
                    tasks.spawn(async move {
                        crate::connection::serve(stream, ctx, ConnInfo { peer }).await;
                        metrics::gauge!("corral_connections").decrement(1.0);
                        drop(permit);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        tracing::info!("shutting down: letting in-flight requests finish");
        ctx.shutdown.cancel();
        ctx.coordinator.fail_parked();
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(connections = tasks.len(), "connections still busy after the drain timeout: closing them");
            tasks.shutdown().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Starts corral on an already bound listener and serves until `shutdown` completes.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    Server::open(listener, config)?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kafkas() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert!(id.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(id, new_cluster_id());
    }

    #[test]
    fn a_data_dir_cannot_be_locked_twice() {
        let dir = tempfile::tempdir().unwrap();
        let _a = DirLock::acquire(dir.path()).unwrap();
        assert!(matches!(DirLock::acquire(dir.path()), Err(ServerError::DataDirLocked(_))));
    }
}
