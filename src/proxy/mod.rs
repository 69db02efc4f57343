//! Proxy mode (`corral proxy --upstream ...`): corral in front of a real Kafka cluster.
//!
//! ```text
//! client ─► listener: corral's own node (--listen), or upstream node N's   (cluster)
//!        ─► frame, version check against the proxy's table, guard          (connection)
//!             ├─ ApiVersions, FindCoordinator(GROUP), the group apis ─► coordinator, as in
//!             │     broker mode; its records ─► offsets store: the upstream topic (store)
//!             │     or the data dir, each commit mirrored upstream (mirror)
//!             └─ everything else ─► upstream node N over a pooled link     (forward, pool,
//!                   correlation id remapped, body passed through as bytes    upstream)
//!                   responses with addresses rewritten to corral's           (rewrite)
//! ```
//!
//! The version table a proxy advertises is its own for the apis it answers and, for every api
//! it forwards, the intersection of what the guard can check and what the upstream brokers
//! serve, so a client never sends a version one side cannot handle.

pub mod cluster;
pub mod forward;
pub mod membership;
pub mod mirror;
pub mod pool;
pub mod rewrite;
pub mod store;
pub mod upstream;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use kafka_protocol::messages::add_offsets_to_txn_response::AddOffsetsToTxnResponse;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, HostPort, OffsetsStoreKind};
use crate::coordinator::Coordinator;
use crate::coordinator::log::OffsetsStore;
use crate::coordinator::shard::ShardConfig;
use crate::error::ErrorCode;
use crate::log::datadir::{DataDir, Meta};
use crate::plane::{DataPlane, NodeAddr};
use crate::protocol::{SUPPORTED, VersionTable, guard};
use crate::router::Context;
use crate::server::ServerError;
use cluster::Cluster;
use pool::Pool;
use upstream::{ApiRanges, ConnSettings, UpstreamConn, UpstreamError};

/// The apis a proxy answers itself; every other one is forwarded.
pub fn answered_locally(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::ApiVersions
            | ApiKey::FindCoordinator
            | ApiKey::JoinGroup
            | ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::OffsetDelete
            | ApiKey::ListGroups
            | ApiKey::DescribeGroups
            | ApiKey::DeleteGroups
            | ApiKey::AddOffsetsToTxn
            | ApiKey::TxnOffsetCommit
    )
}

/// Apis the guard can check that a proxy still does not forward: SASL (corral does not
/// authenticate to the upstream on a client's behalf), and the KIP-848 group apis (corral
/// coordinates groups itself, and serves that protocol only in broker mode so far: clients of a
/// proxy use the classic one).
const NOT_FORWARDED: &[ApiKey] =
    &[ApiKey::SaslHandshake, ApiKey::SaslAuthenticate, ApiKey::ConsumerGroupHeartbeat, ApiKey::ConsumerGroupDescribe];

/// Forwarded apis whose responses corral decodes (to rewrite addresses or follow topic
/// deletions): their versions are also bounded by the guard's response shapes.
const DECODED_RESPONSES: &[ApiKey] = &[ApiKey::Metadata, ApiKey::DescribeCluster, ApiKey::Produce, ApiKey::Fetch, ApiKey::DeleteTopics];

/// Why AddOffsetsToTxn and TxnOffsetCommit are refused in proxy mode.
const NO_TXN_OFFSETS: &str = "corral proxy does not yet support transactional offset commits (send_offsets_to_transaction): \
     the transaction coordinator is the upstream cluster's and the group coordinator is corral's";

/// The table a proxy serves: its own apis at corral's versions, and what it forwards at the
/// versions both the guard and the upstream handle.
pub fn version_table(upstream: &ApiRanges) -> VersionTable {
    let ours = |k: ApiKey| SUPPORTED.iter().find(|(s, _, _)| *s == k).map(|(_, min, max)| (*min, *max));
    let meet = |a: (i16, i16), b: (i16, i16)| {
        let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
        (lo <= hi).then_some((lo, hi))
    };
    let mut entries = Vec::new();
    for key in ApiKey::iter() {
        let k = key as i16;
        let range = if answered_locally(key) {
            match key {
                // refused here, but advertised only where the upstream has transactions
                ApiKey::AddOffsetsToTxn | ApiKey::TxnOffsetCommit => {
                    guard::request_versions(k).and_then(|g| upstream.get(k).and_then(|u| meet(g, u)))
                }
                _ => ours(key),
            }
        } else if NOT_FORWARDED.contains(&key) {
            None
        } else {
            let crate_range = key.valid_versions();
            guard::request_versions(k)
                .and_then(|g| meet(g, (crate_range.min, crate_range.max)))
                .and_then(|g| if DECODED_RESPONSES.contains(&key) { guard::response_versions(k).and_then(|r| meet(g, r)) } else { Some(g) })
                .and_then(|g| upstream.get(k).and_then(|u| meet(g, u)))
        };
        if let Some((min, max)) = range {
            entries.push((key, min, max));
        }
    }
    VersionTable::new(entries)
}

/// AddOffsetsToTxn in proxy mode: refused with a non-retriable error (see [`NO_TXN_OFFSETS`]).
pub fn refuse_add_offsets_to_txn(req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    tracing::warn!(transactional_id = %req.transactional_id.as_str(), group = %req.group_id.as_str(), "{NO_TXN_OFFSETS}");
    AddOffsetsToTxnResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code())
}

/// TxnOffsetCommit in proxy mode: every partition refused (see [`NO_TXN_OFFSETS`]).
pub fn refuse_txn_offset_commit(req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    tracing::warn!(transactional_id = %req.transactional_id.as_str(), group = %req.group_id.as_str(), "{NO_TXN_OFFSETS}");
    TxnOffsetCommitResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default().with_name(t.name).with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(ErrorCode::INVALID_REQUEST.code())
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

/// The proxy: the upstream cluster as corral sees it, the upstream connections, and corral's
/// own node.
#[derive(Debug)]
pub struct Proxy {
    pub config: Arc<Config>,
    pub cluster: Cluster,
    pub pool: Pool,
    me: NodeAddr,
    /// What the upstream advertised (the bootstrap broker's ApiVersions).
    pub upstream_versions: ApiRanges,
    /// Set once the coordinator exists (it is built after the proxy).
    coordinator: OnceLock<Arc<Coordinator>>,
    /// How the offsets store is described on the start line.
    store_description: OnceLock<String>,
    /// Several proxies share the coordinator (`proxy.cluster.name`): who serves which shard,
    /// and this proxy's membership of the upstream group that decides it.
    shard_map: OnceLock<Arc<membership::ShardMap>>,
    membership: OnceLock<Arc<membership::Membership>>,
    membership_task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What [`open`] builds.
pub struct Opened {
    pub ctx: Context,
    pub data: Option<Arc<DataDir>>,
}

/// Request versions corral can use for its own requests of `key`: the crate's range within the
/// guard's response shapes.
fn own_range(key: ApiKey) -> (i16, i16) {
    let c = key.valid_versions();
    match guard::response_versions(key as i16) {
        Some((lo, hi)) => (lo.max(c.min), hi.min(c.max)),
        None => (1, 0),
    }
}

impl Proxy {
    /// corral's own node.
    pub fn me(&self) -> NodeAddr {
        self.me.clone()
    }

    pub fn own_id(&self) -> i32 {
        self.me.id
    }

    /// The proxy serving coordinator shard `shard`: this one, unless several share the
    /// coordinator (then the last assignment's owner; `None` while the shard moves).
    pub fn owner_of(&self, shard: usize) -> Option<NodeAddr> {
        match self.shard_map.get() {
            Some(map) => map.owner(shard),
            None => Some(self.me()),
        }
    }

    /// The other proxies sharing the coordinator (listed in Metadata: clients must know every
    /// node FindCoordinator may name).
    pub fn peers(&self) -> Vec<NodeAddr> {
        self.shard_map.get().map(|m| m.peers()).unwrap_or_default()
    }

    /// Waits (at most three seconds) for the membership task to give up its shards and leave
    /// the upstream group, once shutdown has begun.
    pub async fn stopped(&self) {
        let task = self.membership_task.lock().expect("membership task lock").take();
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }

    /// Calls upstream node `node` with corral's own request (at the best version both sides
    /// have, up to `max`), over corral's control connection to it.
    pub async fn call<R>(&self, node: i32, max: i16, req: impl FnOnce(i16) -> R) -> Result<(R::Response, i16), UpstreamError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let addr = self.cluster.upstream_addr(node).ok_or_else(|| UpstreamError::Connect {
            node,
            addr: String::new(),
            reason: "not a broker of the upstream cluster".into(),
        })?;
        let conn = self.pool.control(node, &addr).await?;
        call_on(&conn, max, req).await
    }

    /// [`Proxy::call`] on the default node (the controller, or any broker).
    pub async fn call_any<R>(&self, max: i16, req: impl FnOnce(i16) -> R) -> Result<(R::Response, i16), UpstreamError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let node = self.cluster.default_node().ok_or_else(|| UpstreamError::Connect {
            node: -1,
            addr: String::new(),
            reason: "no upstream broker is known".into(),
        })?;
        self.call(node, max, req).await
    }

    /// Refreshes the cluster view (brokers, controller, and `topics` when given) from an
    /// upstream Metadata response.
    pub async fn refresh(&self, topics: Option<&[&str]>) -> Result<MetadataResponse, UpstreamError> {
        let wanted: Option<Vec<MetadataRequestTopic>> = topics.map(|ts| {
            ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))).collect()
        });
        let (mut resp, version) =
            self.call_any(12, |_| MetadataRequest::default().with_topics(wanted).with_allow_auto_topic_creation(false)).await?;
        rewrite::metadata(self, version, &mut resp);
        Ok(resp)
    }

    /// The number of partitions of `topic` on the upstream cluster: cached, asked on a miss.
    pub async fn partition_count(&self, topic: &str) -> Option<i32> {
        if let Some(n) = self.cluster.partitions(topic) {
            return Some(n);
        }
        if let Err(e) = self.refresh(Some(&[topic])).await {
            tracing::warn!(topic, "cannot look the topic up upstream: {e}");
            return None;
        }
        self.cluster.partitions(topic)
    }

    /// Whether `partition` of `topic` exists upstream (a partition past the cached count is
    /// looked up once more, in case partitions were added).
    pub async fn has_partition(&self, topic: &str, partition: i32) -> bool {
        match self.cluster.partitions(topic) {
            Some(n) if partition < n => true,
            _ => {
                if let Err(e) = self.refresh(Some(&[topic])).await {
                    tracing::warn!(topic, "cannot look the topic up upstream: {e}");
                }
                self.cluster.partitions(topic).is_some_and(|n| partition < n)
            }
        }
    }

    /// FindCoordinator for transaction (and other non-group) keys: asked of the upstream, and
    /// answered with corral's listener for the coordinator it names. corral serves every
    /// FindCoordinator version for groups; for an upstream older than the client's version, a
    /// batched (v4+) request is asked one key at a time at the version the upstream has.
    pub async fn find_coordinator_upstream(&self, version: i16, req: FindCoordinatorRequest) -> Result<FindCoordinatorResponse, String> {
        use kafka_protocol::messages::find_coordinator_response::Coordinator as Entry;
        let fail = |e: UpstreamError| format!("FindCoordinator for a transaction: {e}");
        let upstream_max = self.upstream_versions.get(ApiKey::FindCoordinator as i16).map_or(-1, |r| r.1);
        if version <= upstream_max {
            let (mut resp, _) = self.call_any(version, |_| req).await.map_err(fail)?;
            rewrite::find_coordinator(self, version, &mut resp);
            return Ok(resp);
        }
        let key_type = req.key_type;
        let keys = if version >= 4 { req.coordinator_keys } else { vec![req.key] };
        let mut entries = Vec::with_capacity(keys.len());
        if upstream_max >= 4 {
            let (resp, _) = self
                .call_any(upstream_max, |_| FindCoordinatorRequest::default().with_key_type(key_type).with_coordinator_keys(keys))
                .await
                .map_err(fail)?;
            entries = resp.coordinators;
        } else {
            for key in keys {
                let (r, _) = self
                    .call_any(upstream_max, |_| FindCoordinatorRequest::default().with_key_type(key_type).with_key(key.clone()))
                    .await
                    .map_err(fail)?;
                entries.push(
                    Entry::default()
                        .with_key(key)
                        .with_node_id(r.node_id)
                        .with_host(r.host)
                        .with_port(r.port)
                        .with_error_code(r.error_code)
                        .with_error_message(r.error_message),
                );
            }
        }
        let mut resp = if version >= 4 {
            FindCoordinatorResponse::default().with_coordinators(entries)
        } else {
            let e = entries.into_iter().next().unwrap_or_default();
            FindCoordinatorResponse::default()
                .with_error_code(e.error_code)
                .with_error_message(e.error_message)
                .with_node_id(e.node_id)
                .with_host(e.host)
                .with_port(e.port)
        };
        rewrite::find_coordinator(self, version, &mut resp);
        Ok(resp)
    }

    /// Topics the upstream deleted through corral: their offsets go from every group, as Kafka's
    /// coordinator drops them.
    pub fn topics_deleted(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        for n in &names {
            self.cluster.observe_topic(n, None);
        }
        if let Some(c) = self.coordinator.get().cloned() {
            tokio::spawn(async move {
                for n in names {
                    c.on_topic_deleted(&n).await;
                }
            });
        }
    }

    /// What the start line says: the upstream cluster, every listener, the offsets store.
    pub fn describe(&self) -> String {
        let nodes: Vec<String> = self
            .cluster
            .nodes()
            .into_iter()
            .map(|(id, up, port)| format!("node {id} ({up}) on {}:{port}", self.cluster.advertised_host))
            .collect();
        let shared = match self.membership.get() {
            Some(m) => format!(", coordinator shared with the proxies of upstream group {} (this one is node {})", m.group(), self.me.id),
            None => String::new(),
        };
        format!(
            "upstream cluster {} [{}], offsets store {}{shared}",
            self.cluster.cluster_id().unwrap_or_else(|| "(unknown)".into()),
            nodes.join(", "),
            self.store_description.get().map(String::as_str).unwrap_or("(none)")
        )
    }

    /// Starts serving the node listeners and keeping the cluster view fresh.
    pub fn start(self: &Arc<Self>, ctx: &Context) {
        self.cluster.start(ctx);
        if let Some(m) = self.membership.get() {
            let task = tokio::spawn(m.clone().run(ctx.shutdown.clone()));
            *self.membership_task.lock().expect("membership task lock") = Some(task);
        }
        let me = self.clone();
        let shutdown = ctx.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(me.config.upstream_metadata_max_age_ms));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = me.refresh(Some(&[])).await {
                    tracing::warn!("refreshing the upstream cluster view: {e}");
                }
            }
        });
    }

    /// The accept loops of the node listeners (the server waits for them at shutdown).
    pub fn listener_tasks(&self) -> TaskTracker {
        self.cluster.tasks()
    }
}

/// Calls `conn` at the best version both sides have (up to `max`).
pub async fn call_on<R>(conn: &UpstreamConn, max: i16, req: impl FnOnce(i16) -> R) -> Result<(R::Response, i16), UpstreamError>
where
    R: Request + Encodable + HeaderVersion,
    R::Response: Decodable + HeaderVersion,
{
    let key = ApiKey::try_from(R::KEY).map_err(|()| UpstreamError::Unsupported { node: conn.node, what: format!("api key {}", R::KEY) })?;
    let (lo, hi) = own_range(key);
    let version = conn.versions.best(R::KEY, (lo, hi.min(max))).ok_or_else(|| UpstreamError::Unsupported {
        node: conn.node,
        what: format!("{key:?} at a version corral speaks ({lo}..={})", hi.min(max)),
    })?;
    let resp = conn.call(version, &req(version)).await?;
    Ok((resp, version))
}

/// Connects to the first reachable bootstrap broker and reads the cluster's metadata.
async fn bootstrap(config: &Config, settings: &ConnSettings) -> Result<(Arc<UpstreamConn>, MetadataResponse, i16), ServerError> {
    let mut failures = Vec::new();
    for addr in &config.upstream {
        let addr = addr.to_string();
        let conn = match UpstreamConn::connect(-1, &addr, settings).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        match call_on(&conn, 12, |_| MetadataRequest::default().with_topics(Some(Vec::new())).with_allow_auto_topic_creation(false)).await {
            Ok((meta, version)) => return Ok((conn, meta, version)),
            Err(e) => failures.push(format!("{addr}: Metadata: {e}")),
        }
    }
    Err(ServerError::Fatal(format!("no upstream broker answered: {}", failures.join("; "))))
}

/// The port `--listen` asked for (0: every listener takes a free port).
fn requested_port(listen: &str) -> u16 {
    HostPort::parse(listen).map(|h| h.port).unwrap_or(0)
}

/// Opens proxy mode: the upstream cluster's view and listeners, the version table, the
/// offsets store and the coordinator.
pub async fn open(listener: &TcpListener, config: Config, shutdown: CancellationToken) -> Result<Opened, ServerError> {
    let bound: SocketAddr = listener.local_addr()?;
    let advertised = crate::server::advertised_for(&config, bound);
    let settings = ConnSettings {
        connect_timeout: Duration::from_millis(config.upstream_connect_timeout_ms),
        max_response_bytes: config.upstream_response_max_bytes,
        client_id: "corral".to_string(),
    };
    let (first, mut meta, meta_version) = bootstrap(&config, &settings).await?;
    let sharing = config.proxy_cluster_name.as_deref().map(|n| membership::Sharing::new(n, config.proxy_cluster_session_timeout_ms));
    let own_id = if sharing.is_some() { config.shared_proxy_node_id(&advertised) } else { config.proxy_node_id() };
    if meta.brokers.iter().any(|b| b.node_id.0 == own_id) {
        return Err(ServerError::Fatal(format!(
            "the upstream cluster has a broker with node id {own_id}, corral's own: set node.id to an id it does not use"
        )));
    }
    let base_port = if requested_port(&config.listen) == 0 { 0 } else { bound.port() };
    let cluster = Cluster::new(bound.ip(), base_port, advertised.host.clone(), config.proxy_node_ports.clone(), own_id);
    let upstream_versions = first.versions.clone();
    let versions = version_table(&upstream_versions);
    let config = Arc::new(config);
    let proxy = Arc::new(Proxy {
        config: config.clone(),
        cluster,
        pool: Pool::new(settings),
        me: NodeAddr { id: own_id, host: StrBytes::from_string(advertised.host.clone()), port: advertised.port as i32 },
        upstream_versions,
        coordinator: OnceLock::new(),
        store_description: OnceLock::new(),
        shard_map: OnceLock::new(),
        membership: OnceLock::new(),
        membership_task: std::sync::Mutex::new(None),
    });
    rewrite::metadata(&proxy, meta_version, &mut meta);
    log_upstream_versions(&proxy, &versions);

    let (store, data, partitions): (Arc<dyn OffsetsStore>, Option<Arc<DataDir>>, usize) = match config.offsets_store {
        OffsetsStoreKind::Local => {
            let fresh = Meta {
                cluster_id: proxy.cluster.cluster_id().unwrap_or_else(crate::server::new_cluster_id),
                node_id: own_id,
                offsets_partitions: config.offsets_topic_num_partitions,
            };
            let (data, meta) = crate::server::open_data_dir(&config, fresh)?;
            let partitions = meta.offsets_partitions as usize;
            let _ = proxy.store_description.set(if config.ephemeral {
                "local (ephemeral, in memory)".to_string()
            } else {
                format!("local, data dir {}", config.data_dir.display())
            });
            (crate::server::local_offsets_logs(&config, &data, partitions), Some(data), partitions)
        }
        OffsetsStoreKind::Upstream => {
            let fencing = sharing.clone().map(|sharing| store::Fencing { sharing, owner: own_id });
            let store = store::UpstreamStore::open(
                proxy.clone(),
                &config.offsets_store_topic,
                config.offsets_topic_num_partitions,
                fencing,
                shutdown.clone(),
            )
            .await
            .map_err(|e| ServerError::Fatal(format!("offsets store: {e}")))?;
            let partitions = store.partitions();
            let _ = proxy.store_description.set(format!("upstream topic {} ({partitions} partitions)", config.offsets_store_topic));
            (store, None, partitions)
        }
    };
    let store: Arc<dyn OffsetsStore> =
        if config.mirror_offsets { Arc::new(mirror::Mirrored::new(store, proxy.clone(), shutdown.clone())) } else { store };
    let coordinator = Coordinator::new(ShardConfig::from_config(&config), partitions, store, shutdown.clone());
    if data.as_ref().is_some_and(|d| d.is_memory()) {
        coordinator.load_all()?;
    }
    let _ = proxy.coordinator.set(coordinator.clone());
    if let Some(sharing) = sharing {
        // no shard is served until the upstream group assigns some
        coordinator.disown_all();
        let map = Arc::new(membership::ShardMap::new(proxy.me()));
        let _ = proxy.shard_map.set(map.clone());
        tracing::info!(group = %sharing.group, node_id = own_id, "sharing the coordinator with the other proxies of the upstream group");
        let m = membership::Membership::new(proxy.clone(), coordinator.clone(), map, sharing, &config.offsets_store_topic);
        let _ = proxy.membership.set(m);
    }
    let ctx = Context {
        conn_limit: Arc::new(Semaphore::new(config.connection_limit())),
        config,
        plane: DataPlane::Proxy(proxy),
        coordinator,
        versions: Arc::new(versions),
        shutdown,
        txn: None,
    };
    Ok(Opened { ctx, data })
}

/// A log line and gauges with what the upstream advertised, and what corral serves of it.
fn log_upstream_versions(proxy: &Proxy, table: &VersionTable) {
    let advertised: Vec<String> = proxy
        .upstream_versions
        .0
        .iter()
        .map(|(k, min, max)| {
            let name = ApiKey::try_from(*k).map(|a| format!("{a:?}")).unwrap_or_else(|()| format!("api{k}"));
            metrics::gauge!("corral_proxy_upstream_api_max_version", "api" => name.clone()).set(f64::from(*max));
            format!("{name} {min}-{max}")
        })
        .collect();
    let served: HashSet<i16> = table.entries().map(|(k, _, _)| k as i16).collect();
    let dropped: Vec<String> = proxy
        .upstream_versions
        .0
        .iter()
        .filter(|(k, _, _)| !served.contains(k))
        .map(|(k, _, _)| ApiKey::try_from(*k).map(|a| format!("{a:?}")).unwrap_or_else(|()| format!("api{k}")))
        .collect();
    tracing::info!(cluster = proxy.cluster.cluster_id().as_deref().unwrap_or(""), "upstream advertises: {}", advertised.join(", "));
    if !dropped.is_empty() {
        tracing::info!("not served through corral: {}", dropped.join(", "));
    }
}
