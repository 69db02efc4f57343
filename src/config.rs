//! Every setting corral has: its default, and its Kafka name where Kafka has one.
//!
//! The config file is TOML whose keys are Kafka's own setting names. Both spellings work:
//! `"num.partitions" = 3` (a quoted key) and `num.partitions = 3` (TOML reads that as nested
//! tables; we flatten them back into the dotted name). Command-line flags override the file.
//! Unknown keys are reported as warnings, as Kafka does, and otherwise ignored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A configuration problem that stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Value { key: String, message: String },
}

/// A `host:port` pair as advertised to clients (Metadata, FindCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`, `[v6]:port` or Kafka's `PLAINTEXT://host:port`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = match s.find("://") {
            Some(i) => {
                let scheme = &s[..i];
                if !scheme.eq_ignore_ascii_case("PLAINTEXT") {
                    return Err(format!("listener scheme `{scheme}` is not supported (only PLAINTEXT)"));
                }
                &s[i + 3..]
            }
            None => s,
        };
        let (host, port) = s.rsplit_once(':').ok_or_else(|| format!("`{s}` is not HOST:PORT"))?;
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(HostPort { host: host.to_string(), port })
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') { write!(f, "[{}]:{}", self.host, self.port) } else { write!(f, "{}:{}", self.host, self.port) }
    }
}

/// Which of corral's two modes a server runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A complete single-node Kafka (plain `corral`).
    Broker,
    /// In front of an upstream Kafka cluster: the data plane is forwarded, consumer groups are
    /// served by corral (`corral proxy`).
    Proxy,
}

/// Where the coordinator keeps its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetsStoreKind {
    /// The data dir's compacted offsets logs (broker mode always; proxy mode on request).
    Local,
    /// A compacted topic on the upstream cluster (the proxy-mode default).
    Upstream,
}

/// The node id corral's own coordinator node takes in proxy mode unless `node.id` is set:
/// far above the ids Kafka clusters use, so it collides with no upstream broker.
pub const PROXY_NODE_ID: i32 = 1_000_000_000;

/// The whole configuration. Field docs name the Kafka setting, where there is one.
#[derive(Debug, Clone)]
pub struct Config {
    /// Broker or proxy; chosen by the command (`corral` or `corral proxy`), not by a key.
    pub mode: Mode,
    /// `listeners`: where to accept connections. The binary binds it; `server::run` takes an
    /// already bound listener.
    pub listen: String,
    /// `advertised.listeners`: what Metadata and FindCoordinator return. `None` means the
    /// address the listener is actually bound to (so port 0 advertises the real port).
    pub advertised: Option<HostPort>,
    /// `log.dirs` (one directory): where data lives; locked against a second server.
    pub data_dir: PathBuf,
    /// Keep everything in memory and touch no directory (corral-only).
    pub ephemeral: bool,
    /// `node.id`: our broker id in Metadata, FindCoordinator and DescribeCluster.
    pub node_id: i32,
    /// `max.connections`: connections beyond this wait in the kernel's backlog. Unset: what the
    /// open-file limit leaves after the data dir's share ([`Config::connection_limit`]).
    pub max_connections: Option<usize>,
    /// `socket.listen.backlog.size`: connections the kernel queues before corral accepts them.
    pub socket_listen_backlog_size: u32,
    /// `socket.request.max.bytes`: a request frame above this closes the connection.
    pub socket_request_max_bytes: usize,
    /// `num.partitions`: partitions of an auto-created topic, and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `max.partitions` (corral): partitions in all; a creation past it is refused with
    /// POLICY_VIOLATION before any disk is touched.
    pub max_partitions: i64,
    /// `max.partitions.per.request` (corral): partitions one CreateTopics or CreatePartitions
    /// request may add.
    pub max_partitions_per_request: i64,
    /// `auto.create.topics.enable`: Metadata for an unknown topic creates it.
    pub auto_create_topics_enable: bool,
    /// `default.replication.factor`: accepted for compatibility; a single node always has 1.
    pub default_replication_factor: i16,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `message.max.bytes`: the largest record batch a topic accepts by default.
    pub message_max_bytes: i32,
    /// `log.retention.ms` (or `.minutes`, `.hours`): default `retention.ms` of topics; -1 = forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`: default `retention.bytes`; -1 = unbounded.
    pub log_retention_bytes: i64,
    /// `log.segment.bytes`: default `segment.bytes`.
    pub log_segment_bytes: i64,
    /// `log.cleanup.policy`: default `cleanup.policy`.
    pub log_cleanup_policy: String,
    /// `log.message.timestamp.type`: default `message.timestamp.type`.
    pub log_message_timestamp_type: String,
    /// `log.flush.interval.messages`: fsync a partition after this many messages.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`: fsync a partition when its oldest unflushed message is this old.
    pub log_flush_interval_ms: Option<i64>,
    /// `log.retention.check.interval.ms`: how often retention runs.
    pub log_retention_check_interval_ms: i64,
    /// `log.cleaner.delete.retention.ms`: how long tombstones survive compaction.
    pub log_cleaner_delete_retention_ms: i64,
    /// `group.initial.rebalance.delay.ms`: corral defaults to 0 (Kafka: 3000).
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `group.consumer.session.timeout.ms`: a consumer-protocol (KIP-848) member's session.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`: how often consumer-protocol members heartbeat.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub group_consumer_max_size: i32,
    /// `group.consumer.assignors`: the server-side assignors, the first the default.
    pub group_consumer_assignors: Vec<crate::coordinator::consumer::Assignor>,
    /// `offsets.topic.num.partitions`: the number of coordinator shards. Never change it
    /// once a data dir exists (group placement depends on it).
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (counted in UTF-16 units, as Kafka does).
    pub offset_metadata_max_bytes: i32,
    /// `offsets.topic.segment.bytes`: segment size of the coordinator's offsets log.
    pub offsets_topic_segment_bytes: i64,
    /// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: idle transactional ids are forgotten after this.
    pub transactional_id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often transactions
    /// past their timeout are looked for (and aborted).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// `transaction.state.log.num.partitions`: FindCoordinator's placement of transactional
    /// ids (Kafka's `hashCode` modulo this); the state itself is one log.
    pub transaction_state_log_num_partitions: i32,
    /// Where to serve Prometheus metrics (corral-only; off by default).
    pub metrics_listen: Option<SocketAddr>,
    /// `upstream.bootstrap.servers` (proxy mode): bootstrap brokers of the upstream cluster.
    pub upstream: Vec<HostPort>,
    /// `offsets.store` (proxy mode): `upstream` (default) or `local`.
    pub offsets_store: OffsetsStoreKind,
    /// `offsets.store.topic` (proxy mode, upstream store): the compacted topic holding the
    /// coordinator's records.
    pub offsets_store_topic: String,
    /// `mirror.offsets` (proxy mode): also commit every committed offset upstream, member-less,
    /// so tools pointed at the upstream cluster see the progress.
    pub mirror_offsets: bool,
    /// `proxy.node.ports` (proxy mode): a fixed client-facing port per upstream node id,
    /// overriding the derived `listen port + 1 + node id`.
    pub proxy_node_ports: BTreeMap<i32, u16>,
    /// `upstream.connect.timeout.ms` (proxy mode): how long connecting to an upstream broker
    /// may take before its requests fail.
    pub upstream_connect_timeout_ms: u64,
    /// `upstream.response.max.bytes` (proxy mode): a larger upstream response frame closes
    /// that upstream connection.
    pub upstream_response_max_bytes: usize,
    /// `upstream.metadata.max.age.ms` (proxy mode): how often corral refreshes its view of the
    /// upstream cluster on its own (client Metadata requests refresh it too).
    pub upstream_metadata_max_age_ms: u64,
    /// `proxy.cluster.name` (proxy mode, upstream store): several proxies with the same name in
    /// front of the same upstream share the coordinator (members of the upstream group
    /// `__corral-<name>`). Unset: one proxy serves every shard.
    pub proxy_cluster_name: Option<String>,
    /// `proxy.cluster.session.timeout.ms`: the session timeout of a proxy's membership in that
    /// group (how long a dead proxy keeps its shards).
    pub proxy_cluster_session_timeout_ms: i32,
    /// Keys the file had that corral does not know; logged once tracing is up.
    pub unknown_keys: Vec<String>,
    /// Keys the file set (DescribeConfigs reports them as STATIC_BROKER_CONFIG).
    pub explicit: std::collections::BTreeSet<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Broker,
            listen: "127.0.0.1:9092".to_string(),
            advertised: None,
            data_dir: PathBuf::from("./corral-data"),
            ephemeral: false,
            node_id: 1,
            max_connections: None,
            socket_listen_backlog_size: 1024,
            socket_request_max_bytes: 104_857_600,
            num_partitions: 1,
            max_partitions: 200_000,
            max_partitions_per_request: 20_000,
            auto_create_topics_enable: true,
            default_replication_factor: 1,
            delete_topic_enable: true,
            message_max_bytes: 1_048_588,
            log_retention_ms: 168 * 3_600_000,
            log_retention_bytes: -1,
            log_segment_bytes: 1_073_741_824,
            log_cleanup_policy: "delete".to_string(),
            log_message_timestamp_type: "CreateTime".to_string(),
            log_flush_interval_messages: i64::MAX,
            log_flush_interval_ms: None,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_delete_retention_ms: 86_400_000,
            group_initial_rebalance_delay_ms: 0,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_max_size: i32::MAX,
            group_consumer_assignors: vec![crate::coordinator::consumer::Assignor::Uniform, crate::coordinator::consumer::Assignor::Range],
            offsets_topic_num_partitions: 50,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4_096,
            offsets_topic_segment_bytes: 104_857_600,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            transaction_state_log_num_partitions: 50,
            metrics_listen: None,
            upstream: Vec::new(),
            offsets_store: OffsetsStoreKind::Upstream,
            offsets_store_topic: "__corral_offsets".to_string(),
            mirror_offsets: true,
            proxy_node_ports: BTreeMap::new(),
            upstream_connect_timeout_ms: 5_000,
            upstream_response_max_bytes: 256 << 20,
            upstream_metadata_max_age_ms: 30_000,
            proxy_cluster_name: None,
            proxy_cluster_session_timeout_ms: 10_000,
            unknown_keys: Vec::new(),
            explicit: Default::default(),
        }
    }
}

impl Config {
    /// How many connections are served at once: `max.connections` if set; otherwise what the
    /// open-file limit leaves once the data dir has its share (half the limit, at most 4,096:
    /// `log/datadir.rs`) and a reserve of 64 for listeners and the like, so that a flood of
    /// connections cannot take the descriptors the logs need (at most 65,536). In proxy mode a
    /// connection can hold an upstream link too, so each counts twice.
    pub fn connection_limit(&self) -> usize {
        if let Some(n) = self.max_connections {
            return n;
        }
        let soft = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft);
        let data = crate::log::datadir::descriptor_budget_for(soft);
        let spare = usize::try_from(soft.saturating_sub(data).saturating_sub(64)).unwrap_or(usize::MAX);
        let per_connection = if self.mode == Mode::Proxy { 2 } else { 1 };
        (spare / per_connection).clamp(16, 65_536)
    }

    /// Reads a TOML config file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let mut config = Config::default();
        config.apply_toml(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
            other => other,
        })?;
        Ok(config)
    }

    /// Applies the keys of a TOML document over the current values.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        let mut flat = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut flat);
        for (key, value) in flat {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    /// Sets one setting by its Kafka name.
    pub fn set(&mut self, key: &str, value: &toml::Value) -> Result<(), ConfigError> {
        let v = Value { key, value };
        self.explicit.insert(key.to_string());
        match key {
            "listeners" | "listen" => self.listen = HostPort::parse(&v.string()?).map_err(|m| v.err(m))?.to_string(),
            "advertised.listeners" | "advertised" => self.advertised = Some(HostPort::parse(&v.string()?).map_err(|m| v.err(m))?),
            "log.dirs" | "log.dir" | "data.dir" => self.data_dir = PathBuf::from(v.string()?),
            "ephemeral" => self.ephemeral = v.bool()?,
            "node.id" | "broker.id" => self.node_id = v.int_in(0, i32::MAX as i64)? as i32,
            "max.connections" => self.max_connections = Some(v.int_in(1, i32::MAX as i64)? as usize),
            "socket.listen.backlog.size" => self.socket_listen_backlog_size = v.int_in(1, 65_535)? as u32,
            "socket.request.max.bytes" => self.socket_request_max_bytes = v.int_in(1, i32::MAX as i64)? as usize,
            "num.partitions" => self.num_partitions = v.int_in(1, 1_000_000)? as i32,
            "max.partitions" => self.max_partitions = v.int_in(1, i64::from(i32::MAX))?,
            "max.partitions.per.request" => self.max_partitions_per_request = v.int_in(1, i64::from(i32::MAX))?,
            "auto.create.topics.enable" => self.auto_create_topics_enable = v.bool()?,
            "default.replication.factor" => self.default_replication_factor = v.int_in(1, i16::MAX as i64)? as i16,
            "delete.topic.enable" => self.delete_topic_enable = v.bool()?,
            "message.max.bytes" => self.message_max_bytes = v.int_in(0, i32::MAX as i64)? as i32,
            "log.retention.ms" => self.log_retention_ms = v.int_in(-1, i64::MAX)?,
            "log.retention.minutes" => self.log_retention_ms = v.int_in(-1, i64::MAX / 60_000)?.saturating_mul(60_000).max(-1),
            "log.retention.hours" => self.log_retention_ms = v.int_in(-1, i64::MAX / 3_600_000)?.saturating_mul(3_600_000).max(-1),
            "log.retention.bytes" => self.log_retention_bytes = v.int_in(-1, i64::MAX)?,
            "log.segment.bytes" => self.log_segment_bytes = v.int_in(14, i32::MAX as i64)?,
            "log.cleanup.policy" => {
                let s = v.string()?;
                crate::broker::topic_config::validate_cleanup_policy(&s).map_err(|m| v.err(m))?;
                self.log_cleanup_policy = s
            }
            "log.message.timestamp.type" => {
                let s = v.string()?;
                if s != "CreateTime" && s != "LogAppendTime" {
                    return Err(v.err("must be CreateTime or LogAppendTime".into()));
                }
                self.log_message_timestamp_type = s
            }
            "log.flush.interval.messages" => self.log_flush_interval_messages = v.int_in(1, i64::MAX)?,
            "log.flush.interval.ms" => self.log_flush_interval_ms = Some(v.int_in(0, i64::MAX)?),
            "log.retention.check.interval.ms" => self.log_retention_check_interval_ms = v.int_in(1, i64::MAX)?,
            "log.cleaner.delete.retention.ms" => self.log_cleaner_delete_retention_ms = v.int_in(0, i64::MAX)?,
            "group.initial.rebalance.delay.ms" => self.group_initial_rebalance_delay_ms = v.int_in(0, i32::MAX as i64)?,
            "group.min.session.timeout.ms" => self.group_min_session_timeout_ms = v.int_in(0, i32::MAX as i64)? as i32,
            "group.max.session.timeout.ms" => self.group_max_session_timeout_ms = v.int_in(0, i32::MAX as i64)? as i32,
            "group.max.size" => self.group_max_size = v.int_in(1, i32::MAX as i64)? as i32,
            "group.consumer.session.timeout.ms" => self.group_consumer_session_timeout_ms = v.int_in(1, i32::MAX as i64)? as i32,
            "group.consumer.heartbeat.interval.ms" => self.group_consumer_heartbeat_interval_ms = v.int_in(1, i32::MAX as i64)? as i32,
            "group.consumer.max.size" => self.group_consumer_max_size = v.int_in(1, i32::MAX as i64)? as i32,
            "group.consumer.assignors" => self.group_consumer_assignors = parse_assignors(&v.string()?).map_err(|m| v.err(m))?,
            "offsets.topic.num.partitions" => self.offsets_topic_num_partitions = v.int_in(1, 10_000)? as i32,
            "offsets.retention.minutes" => self.offsets_retention_minutes = v.int_in(1, i64::MAX / 60_000)?,
            "offsets.retention.check.interval.ms" => self.offsets_retention_check_interval_ms = v.int_in(1, i64::MAX)?,
            "offset.metadata.max.bytes" => self.offset_metadata_max_bytes = v.int_in(0, i32::MAX as i64)? as i32,
            "offsets.topic.segment.bytes" => self.offsets_topic_segment_bytes = v.int_in(1024, i32::MAX as i64)?,
            "transaction.max.timeout.ms" => self.transaction_max_timeout_ms = v.int_in(1, i32::MAX as i64)? as i32,
            "transactional.id.expiration.ms" => self.transactional_id_expiration_ms = v.int_in(1, i32::MAX as i64)?,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.transaction_abort_timed_out_transaction_cleanup_interval_ms = v.int_in(1, i32::MAX as i64)?
            }
            "transaction.state.log.num.partitions" => self.transaction_state_log_num_partitions = v.int_in(1, 10_000)? as i32,
            "metrics.listen" => self.metrics_listen = Some(v.string()?.parse().map_err(|_| v.err("not HOST:PORT".into()))?),
            "upstream.bootstrap.servers" | "upstream" => self.upstream = parse_upstream(&v.string()?).map_err(|m| v.err(m))?,
            "offsets.store" => self.offsets_store = parse_offsets_store(&v.string()?).map_err(|m| v.err(m))?,
            "offsets.store.topic" => {
                let t = v.string()?;
                crate::broker::validate_topic_name(&t).map_err(|e| v.err(e.message))?;
                self.offsets_store_topic = t
            }
            "mirror.offsets" => self.mirror_offsets = v.bool()?,
            "proxy.cluster.name" => self.proxy_cluster_name = Some(parse_cluster_name(&v.string()?).map_err(|m| v.err(m))?),
            "proxy.cluster.session.timeout.ms" => self.proxy_cluster_session_timeout_ms = v.int_in(1_000, 300_000)? as i32,
            "proxy.node.ports" => self.proxy_node_ports = parse_node_ports(&v.string()?).map_err(|m| v.err(m))?,
            k if k.starts_with("proxy.node.ports.") => {
                let id =
                    k["proxy.node.ports.".len()..].parse::<i32>().map_err(|_| v.err("the key's last part must be a node id".into()))?;
                self.proxy_node_ports.insert(id, v.int_in(1, u16::MAX as i64)? as u16);
            }
            "upstream.connect.timeout.ms" => self.upstream_connect_timeout_ms = v.int_in(1, 3_600_000)? as u64,
            "upstream.response.max.bytes" => self.upstream_response_max_bytes = v.int_in(1024, i32::MAX as i64)? as usize,
            "upstream.metadata.max.age.ms" => self.upstream_metadata_max_age_ms = v.int_in(100, i32::MAX as i64)? as u64,
            // Accepted for compatibility with Kafka config files; meaningless on one node.
            "offsets.topic.replication.factor"
            | "transaction.state.log.replication.factor"
            | "transaction.state.log.min.isr"
            | "min.insync.replicas"
            | "process.roles"
            | "controller.quorum.voters"
            | "controller.listener.names"
            | "listener.security.protocol.map"
            | "inter.broker.listener.name"
            | "num.network.threads"
            | "num.io.threads"
            | "socket.send.buffer.bytes"
            | "socket.receive.buffer.bytes"
            | "num.recovery.threads.per.data.dir" => {}
            _ => self.unknown_keys.push(key.to_string()),
        }
        Ok(())
    }

    /// Checks relations between settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(ConfigError::Value {
                key: "group.min.session.timeout.ms".into(),
                message: "is larger than group.max.session.timeout.ms".into(),
            });
        }
        if self.proxy_cluster_name.is_some() && self.offsets_store != OffsetsStoreKind::Upstream {
            return Err(ConfigError::Value {
                key: "proxy.cluster.name".into(),
                message: "proxies share the coordinator through the upstream offsets store: it needs offsets.store=upstream".into(),
            });
        }
        Ok(())
    }

    /// The node id of corral's own (coordinator) node in proxy mode: `node.id` when set,
    /// else [`PROXY_NODE_ID`].
    pub fn proxy_node_id(&self) -> i32 {
        if self.explicit.contains("node.id") || self.explicit.contains("broker.id") { self.node_id } else { PROXY_NODE_ID }
    }

    /// The node id of a proxy sharing the coordinator: `node.id` when set, else one derived from
    /// its advertised address (stable across restarts, distinct between proxies on different
    /// addresses), above [`PROXY_NODE_ID`].
    pub fn shared_proxy_node_id(&self, advertised: &HostPort) -> i32 {
        if self.explicit.contains("node.id") || self.explicit.contains("broker.id") {
            return self.node_id;
        }
        let h = crc32c::crc32c(format!("{}:{}", advertised.host, advertised.port).as_bytes());
        PROXY_NODE_ID + (h % 100_000_000) as i32
    }

    /// `offsets.retention.minutes` in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        self.offsets_retention_minutes.saturating_mul(60_000)
    }
}

/// Parses `host:port[,host:port...]` (each may carry Kafka's `PLAINTEXT://`).
/// A `proxy.cluster.name` / `--cluster-name`: it names the upstream group `__corral-<name>`
/// and the shards' producer ids, so it must make a valid group and transactional id.
pub fn parse_cluster_name(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 200 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(format!("{v:?}: a cluster name is 1 to 200 letters, digits, '.', '_' or '-'"));
    }
    Ok(v.to_string())
}

/// `group.consumer.assignors`: a comma-separated list of server-side assignor names.
fn parse_assignors(s: &str) -> Result<Vec<crate::coordinator::consumer::Assignor>, String> {
    let names: Vec<&str> = s.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("at least one assignor".into());
    }
    names
        .into_iter()
        .map(|n| {
            crate::coordinator::consumer::Assignor::by_name(n)
                .ok_or_else(|| format!("unknown assignor `{n}` (corral has uniform and range)"))
        })
        .collect()
}

pub fn parse_upstream(s: &str) -> Result<Vec<HostPort>, String> {
    let list: Vec<HostPort> = s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(HostPort::parse).collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("no upstream broker given".into());
    }
    Ok(list)
}

/// Parses `local` or `upstream`.
pub fn parse_offsets_store(s: &str) -> Result<OffsetsStoreKind, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "local" => Ok(OffsetsStoreKind::Local),
        "upstream" => Ok(OffsetsStoreKind::Upstream),
        other => Err(format!("`{other}` is not an offsets store (local or upstream)")),
    }
}

/// Parses `node=port[,node=port...]`.
pub fn parse_node_ports(s: &str) -> Result<BTreeMap<i32, u16>, String> {
    let mut map = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (node, port) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not NODE=PORT"))?;
        let node: i32 = node.trim().parse().map_err(|_| format!("`{node}` is not a node id"))?;
        let port: u16 = port.trim().parse().map_err(|_| format!("`{port}` is not a port"))?;
        if port == 0 {
            return Err(format!("node {node}: port 0 is not a fixed port"));
        }
        map.insert(node, port);
    }
    Ok(map)
}

/// Flattens nested TOML tables into dotted keys: `{num: {partitions: 1}}` → `num.partitions`.
fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// One value being read, with its key for error messages.
struct Value<'a> {
    key: &'a str,
    value: &'a toml::Value,
}

impl Value<'_> {
    fn err(&self, message: String) -> ConfigError {
        ConfigError::Value { key: self.key.to_string(), message }
    }

    fn string(&self) -> Result<String, ConfigError> {
        match self.value {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            _ => Err(self.err("expected a string".into())),
        }
    }

    fn bool(&self) -> Result<bool, ConfigError> {
        match self.value {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            toml::Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.err("expected true or false".into())),
        }
    }

    fn int_in(&self, min: i64, max: i64) -> Result<i64, ConfigError> {
        let n = match self.value {
            toml::Value::Integer(i) => *i,
            toml::Value::String(s) => s.trim().parse().map_err(|_| self.err(format!("`{s}` is not an integer")))?,
            _ => return Err(self.err("expected an integer".into())),
        };
        if n < min || n > max {
            return Err(self.err(format!("{n} is outside {min}..={max}")));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_work_quoted_and_nested() {
        let mut c = Config::default();
        c.apply_toml("\"num.partitions\" = 3\nauto.create.topics.enable = false\n[group]\ninitial.rebalance.delay.ms = 3000\n").unwrap();
        assert_eq!(c.num_partitions, 3);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
        assert!(c.unknown_keys.is_empty());
    }

    #[test]
    fn unknown_keys_are_collected_and_bad_values_rejected() {
        let mut c = Config::default();
        c.apply_toml("no.such.key = 1").unwrap();
        assert_eq!(c.unknown_keys, vec!["no.such.key".to_string()]);
        assert!(c.apply_toml("num.partitions = 0").is_err());
        assert!(c.apply_toml("num.partitions = \"x\"").is_err());
    }

    #[test]
    fn listener_forms() {
        assert_eq!(HostPort::parse("PLAINTEXT://localhost:9093").unwrap(), HostPort { host: "localhost".into(), port: 9093 });
        assert_eq!(HostPort::parse("[::1]:9092").unwrap().to_string(), "[::1]:9092");
        assert!(HostPort::parse("SSL://a:1").is_err());
        assert!(HostPort::parse("nohost").is_err());
    }
}
