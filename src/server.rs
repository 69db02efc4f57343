//! The accept loop, the connection limit, and graceful shutdown.
//!
//! [`Server::open`] (broker mode) and [`Server::open_proxy`] (proxy mode) take an already bound
//! listener and the config and build the shared state; [`Server::run`] serves until the
//! shutdown future completes, then stops accepting on every listener, lets in-flight requests
//! finish (parked fetches answer early), and returns. [`run`] does both, for tests and
//! embedders.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::config::{Config, HostPort, Mode};
use crate::coordinator::Coordinator;
use crate::coordinator::log::ShardLogs;
use crate::coordinator::shard::ShardConfig;
use crate::log::datadir::{DataDir, Meta};
use crate::log::keyed::KeyedConfig;
use crate::plane::DataPlane;
use crate::protocol::VersionTable;
use crate::router::{ConnInfo, Context, Listener};

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
    /// The data dir (holding its lock) while the server lives; none for a proxy whose offsets
    /// live upstream.
    _data: Option<Arc<DataDir>>,
}

/// The address clients are told to use: the configured one, or the bound address (with a
/// wildcard bind replaced by loopback, which is the only address we can be sure of).
pub(crate) fn advertised_for(config: &Config, bound: SocketAddr) -> HostPort {
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

/// Opens the data dir named by `config` (locked; or memory when ephemeral), with `fresh` as
/// the identity of a new one.
pub(crate) fn open_data_dir(config: &Config, fresh: Meta) -> Result<(Arc<DataDir>, Meta), ServerError> {
    let (data, meta) = if config.ephemeral { (DataDir::memory(), fresh) } else { DataDir::open(&config.data_dir, fresh)? };
    Ok((Arc::new(data), meta))
}

/// The coordinator's local offsets logs in `data`.
pub(crate) fn local_offsets_logs(config: &Config, data: &Arc<DataDir>, partitions: usize) -> Arc<ShardLogs> {
    Arc::new(ShardLogs::new(
        data.clone(),
        partitions,
        KeyedConfig {
            segment_bytes: config.offsets_topic_segment_bytes as u64,
            delete_retention_ms: config.log_cleaner_delete_retention_ms,
            min_compaction_bytes: 1 << 20,
        },
    ))
}

impl Server {
    /// Broker mode: opens the data dir (locked; or memory when ephemeral), recovers the topic
    /// catalog and every partition log, and builds the shared state. Coordinator shards load
    /// later, in the background, once [`Server::run`] starts.
    pub fn open(listener: TcpListener, config: Config) -> Result<Self, ServerError> {
        let bound = listener.local_addr()?;
        let advertised = advertised_for(&config, bound);
        let fresh = Meta { cluster_id: new_cluster_id(), node_id: config.node_id, offsets_partitions: config.offsets_topic_num_partitions };
        let (data, meta) = open_data_dir(&config, fresh)?;
        let config = Arc::new(config);
        let broker = Arc::new(Broker::open(config.clone(), advertised, meta.cluster_id.clone(), data.clone())?);
        let shutdown = CancellationToken::new();
        let partitions = config.offsets_topic_num_partitions as usize;
        let logs = local_offsets_logs(&config, &data, partitions);
        let coordinator = Coordinator::new(ShardConfig::from_config(&config), partitions, logs, shutdown.clone());
        if data.is_memory() {
            // Nothing to replay: serve groups from the first request.
            coordinator.load_all()?;
        }
        let txn =
            crate::txn::TxnCoordinator::open(broker.clone(), coordinator.clone(), &data, crate::txn::TxnConfig::from_config(&config))?;
        let ctx = Context {
            conn_limit: Arc::new(Semaphore::new(config.connection_limit())),
            config,
            plane: DataPlane::Broker(broker),
            coordinator,
            versions: Arc::new(VersionTable::broker()),
            shutdown,
            txn: Some(txn),
        };
        Ok(Server { listener, ctx, _data: Some(data) })
    }

    /// Proxy mode: connects to the upstream cluster, learns its brokers and api versions,
    /// opens a client-facing listener per upstream broker and prepares the coordinator's
    /// offsets store (upstream topic or data dir). Shards load once [`Server::run`] starts.
    pub async fn open_proxy(listener: TcpListener, config: Config) -> Result<Self, ServerError> {
        let shutdown = CancellationToken::new();
        let opened = crate::proxy::open(&listener, config, shutdown.clone()).await?;
        Ok(Server { listener, ctx: opened.ctx, _data: opened.data })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address clients are told to connect to (corral's own node).
    pub fn advertised(&self) -> HostPort {
        let me = self.ctx.plane.me();
        HostPort { host: me.host.to_string(), port: me.port as u16 }
    }

    /// What the start line says about the mode: the data dir, or the upstream cluster and
    /// every client-facing listener.
    pub fn describe(&self) -> String {
        match &self.ctx.plane {
            DataPlane::Broker(_) => {
                let c = &self.ctx.config;
                let data = if c.ephemeral { "(ephemeral, in memory)".to_string() } else { c.data_dir.display().to_string() };
                format!("data dir {data}")
            }
            DataPlane::Proxy(p) => p.describe(),
        }
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { listener, ctx, _data } = self;
        ctx.coordinator.start();
        if let Some(t) = &ctx.txn {
            t.start(ctx.shutdown.clone());
        }
        let listeners = match &ctx.plane {
            DataPlane::Broker(b) => {
                tokio::spawn(crate::broker::maintenance::run(b.clone(), ctx.shutdown.clone()));
                TaskTracker::new()
            }
            DataPlane::Proxy(p) => {
                p.start(&ctx);
                p.listener_tasks()
            }
        };
        listeners.spawn(accept_loop(listener, ctx.clone(), Listener::Own));
        let coordinator = ctx.coordinator.clone();
        let fatal = coordinator.fatal_error();
        let failure = tokio::select! {
            _ = shutdown => None,
            m = fatal => Some(m),
        };
        tracing::info!("shutting down: letting in-flight requests finish");
        ctx.shutdown.cancel();
        if let DataPlane::Proxy(p) = &ctx.plane {
            p.stopped().await;
        }
        ctx.coordinator.fail_parked();
        listeners.close();
        listeners.wait().await;
        if let DataPlane::Broker(b) = &ctx.plane {
            b.sync_all();
        }
        ctx.coordinator.sync_all();
        if let Some(t) = &ctx.txn {
            t.sync();
        }
        tracing::info!("stopped");
        match failure {
            Some(m) => Err(ServerError::Fatal(m)),
            None => Ok(()),
        }
    }
}

/// Accepts connections on one listener until the server shuts down (`ctx.shutdown`) or `stop`
/// is cancelled; then stops accepting, lets in-flight requests finish (parked fetches answer
/// early), and closes whatever is still busy after [`DRAIN_TIMEOUT`].
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Context, which: Listener) {
    let stop = ctx.shutdown.clone();
    accept_until(listener, ctx, which, stop).await
}

/// [`accept_loop`] that also stops when `stop` is cancelled (a proxy's node listener whose
/// upstream broker left the cluster).
pub(crate) async fn accept_until(listener: TcpListener, ctx: Context, which: Listener, stop: CancellationToken) {
    let mut tasks = JoinSet::new();
    let shutdown = ctx.shutdown.clone();
    let stop = async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = shutdown.cancelled() => {}
        }
    };
    tokio::pin!(stop);
    let mut failures = AcceptFailures::default();
    loop {
        let permit = tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            p = ctx.conn_limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut stop => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                failures.recovered();
                let _ = stream.set_nodelay(true);
                let ctx = ctx.clone();
                metrics::gauge!("corral_connections").increment(1.0);
                tasks.spawn(async move {
                    crate::connection::serve(stream, ctx, ConnInfo { peer, listener: which }).await;
                    metrics::gauge!("corral_connections").decrement(1.0);
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin, and
                // say so once, not twenty times a second.
                failures.note(&e);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(connections = tasks.len(), "connections still busy after the drain timeout: closing them");
        tasks.shutdown().await;
    }
}

/// Starts corral on an already bound listener and serves until `shutdown` completes, in the
/// mode `config.mode` names.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    match config.mode {
        Mode::Broker => Server::open(listener, config)?.run(shutdown).await,
        Mode::Proxy => Server::open_proxy(listener, config).await?.run(shutdown).await,
    }
}

/// Listens on `addr` (HOST:PORT, the first address it resolves to that binds) with a
/// backlog of `backlog` connections (`socket.listen.backlog.size`).
pub async fn bind(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(backlog)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} resolves to no address"))))
}

/// Failed accepts, logged once when they start, then at most every ten seconds with a count,
/// and once more when accepting works again.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// Failures since the last line, and when that line was written.
    since_logged: u64,
    logged_at: Option<std::time::Instant>,
}

impl AcceptFailures {
    const EVERY: Duration = Duration::from_secs(10);

    fn note(&mut self, e: &std::io::Error) {
        self.since_logged += 1;
        metrics::counter!("corral_accept_failures_total").increment(1);
        match self.logged_at {
            Some(at) if at.elapsed() < Self::EVERY => {}
            Some(_) => {
                tracing::warn!("accept still failing: {e} ({} times in the last {} s)", self.since_logged, Self::EVERY.as_secs());
                self.since_logged = 0;
                self.logged_at = Some(std::time::Instant::now());
            }
            None => {
                tracing::warn!("accept failed: {e}; retrying every 50 ms");
                self.since_logged = 0;
                self.logged_at = Some(std::time::Instant::now());
            }
        }
    }

    fn recovered(&mut self) {
        if self.logged_at.take().is_some() {
            tracing::info!("accepting connections again");
            self.since_logged = 0;
        }
    }
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
