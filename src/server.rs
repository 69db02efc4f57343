//! The accept loop, the connection limit, and graceful shutdown.
//!
//! [`Server::open`] takes an already bound listener and the config, locks the data dir and
//! builds the shared state; [`Server::run`] serves until the shutdown future completes, then
//! stops accepting, lets in-flight requests finish (parked fetches answer early), and returns.
//! [`run`] does both, for tests and embedders.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::{Config, HostPort};
use crate::coordinator::Coordinator;
use crate::coordinator::log::ShardLogs;
use crate::log::datadir::{DataDir, Meta};
use crate::log::keyed::KeyedConfig;
use crate::coordinator::shard::ShardConfig;
use crate::router::{ConnInfo, Context};

/// How long shutdown waits for in-flight requests before dropping their connections.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(800);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    DataDir(#[from] crate::log::datadir::DataDirError),
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    #[error("{0}")]
    Fatal(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A server ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    ctx: Context,
    /// The data dir (holding its lock) while the server lives.
    _data: Arc<DataDir>,
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
    /// Opens the data dir (locked; or memory when ephemeral), recovers the topic catalog and
    /// every partition log, and builds the shared state. Coordinator shards load later, in the
    /// background, once [`Server::run`] starts.
    pub fn open(listener: TcpListener, config: Config) -> Result<Self, ServerError> {
        let bound = listener.local_addr()?;
        let advertised = advertised_for(&config, bound);
        let fresh = Meta {
            cluster_id: new_cluster_id(),
            node_id: config.node_id,
            offsets_partitions: config.offsets_topic_num_partitions,
        };
        let (data, meta) = if config.ephemeral {
            (DataDir::memory(), fresh)
        } else {
            DataDir::open(&config.data_dir, fresh)?
        };
        let data = Arc::new(data);
        let config = Arc::new(config);
        let broker = Arc::new(Broker::open(config.clone(), advertised, meta.cluster_id.clone(), data.clone())?);
        let shutdown = CancellationToken::new();
        let partitions = config.offsets_topic_num_partitions as usize;
        let logs = Arc::new(ShardLogs::new(
            data.clone(),
            partitions,
            KeyedConfig {
                segment_bytes: config.offsets_topic_segment_bytes as u64,
                delete_retention_ms: config.log_cleaner_delete_retention_ms,
                min_compaction_bytes: 1 << 20,
            },
        ));
        let coordinator = Coordinator::new(ShardConfig::from_config(&config), partitions, logs, shutdown.clone());
        if data.is_memory() {
            // Nothing to replay: serve groups from the first request.
            coordinator.load_all()?;
        }
        Ok(Server { listener, ctx: Context { broker, coordinator, shutdown }, _data: data })
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
        let Server { listener, ctx, _data } = self;
        ctx.coordinator.start();
        tokio::spawn(crate::broker::maintenance::run(ctx.broker.clone(), ctx.shutdown.clone()));
        let limit = Arc::new(Semaphore::new(ctx.broker.config.max_connections));
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        let coordinator = ctx.coordinator.clone();
        let fatal = coordinator.fatal_error();
        tokio::pin!(fatal);
        let mut failure = None;
        loop {
            let permit = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                m = &mut fatal => {
                    failure = Some(m);
                    break;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                biased;
                _ = &mut shutdown => break,
                m = &mut fatal => {
                    failure = Some(m);
                    break;
                }
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
        ctx.broker.sync_all();
        ctx.coordinator.sync_all();
        tracing::info!("stopped");
        match failure {
            Some(m) => Err(ServerError::Fatal(m)),
            None => Ok(()),
        }
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
}
