//! The data plane: topics and partitions, and the handlers of the broker APIs (Metadata,
//! Produce, Fetch, ListOffsets, topic administration, configs, producer ids).

pub mod batch;
pub mod catalog;
pub mod partition;
pub mod producer;
pub mod records;
pub mod topic_config;

pub mod maintenance;
mod admin;
mod configs;
mod fetch;
mod metadata;
mod offsets;
mod produce;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

pub use admin::{
    handle_create_partitions, handle_create_topics, handle_delete_records, handle_delete_topics,
    handle_describe_log_dirs,
};
pub use configs::{handle_alter_configs, handle_describe_configs, handle_incremental_alter_configs};
pub use fetch::handle_fetch;
pub use metadata::{handle_describe_cluster, handle_metadata};
pub use offsets::{handle_list_offsets, handle_offset_for_leader_epoch};
pub use produce::{handle_init_producer_id, handle_produce, has_error as produce_has_error};

use crate::config::{Config, HostPort};
use crate::log::LogError;
use crate::log::batches::{BatchConfig, BatchLog};
use crate::log::datadir::DataDir;
use crate::log::keyed::{KeyedConfig, KeyedLog};
use catalog::{CatalogEntry, TopicRecord};
use producer::ProducerTable;
use crate::error::codes;
use partition::Partition;
use topic_config::TopicConfig;

/// A topic: its identity, settings and partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub config: RwLock<TopicConfig>,
    /// Grows with CreatePartitions; never shrinks.
    pub partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    /// The partition with this index, if it exists.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        if index < 0 {
            return None;
        }
        self.partitions.read().expect("partitions lock").get(index as usize).cloned()
    }

    pub fn partition_count(&self) -> i32 {
        self.partitions.read().expect("partitions lock").len() as i32
    }

    pub fn config(&self) -> TopicConfig {
        self.config.read().expect("topic config lock").clone()
    }
}

/// A refused topic operation: the Kafka error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: i16,
    pub message: String,
}

impl TopicError {
    fn new(code: i16, message: impl Into<String>) -> Self {
        TopicError { code, message: message.into() }
    }
}

/// The broker: where topics live, and who we are.
#[derive(Debug)]
pub struct Broker {
    pub config: Arc<Config>,
    /// What Metadata, FindCoordinator and DescribeCluster advertise.
    pub advertised: HostPort,
    pub cluster_id: String,
    topics: DashMap<String, Arc<Topic>>,
    topic_ids: DashMap<Uuid, Arc<Topic>>,
    /// Producer ids handed out: (next, end of the block the catalog has reserved).
    producer_ids: Mutex<(i64, i64)>,
    data: Arc<DataDir>,
    /// Topic metadata and the producer-id block, durable before any reply that depends on it.
    catalog: Arc<KeyedLog>,
}

/// Producer ids are reserved in the catalog this many at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The settings a partition log takes from its topic.
fn batch_config(c: &TopicConfig) -> BatchConfig {
    BatchConfig { segment_bytes: c.segment_bytes.max(1) as u64, flush_messages: c.flush_messages.max(1) }
}

fn partition_dir(id: &Uuid, index: i32) -> String {
    format!("partitions/{id}-{index}")
}

fn storage_error(what: &str, e: impl std::fmt::Display) -> TopicError {
    tracing::error!("{what}: {e}");
    TopicError::new(codes::KAFKA_STORAGE_ERROR, format!("{what}: {e}"))
}

impl Broker {
    /// Opens the broker's state in `data`: the catalog, then every topic's partitions (each
    /// partition's last segment is recovered, and its producer state rebuilt from it).
    pub fn open(config: Arc<Config>, advertised: HostPort, cluster_id: String, data: Arc<DataDir>) -> Result<Self, LogError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| LogError::Io { what: what.clone(), source: e }
        };
        let mut records: BTreeMap<String, TopicRecord> = BTreeMap::new();
        let mut producer_block = 0i64;
        let catalog = KeyedLog::open(
            "meta",
            data.storage("meta").map_err(io("catalog"))?,
            KeyedConfig { segment_bytes: 16 << 20, delete_retention_ms: 0, min_compaction_bytes: 1 << 20 },
            |e| match catalog::decode(e.key, e.value) {
                Some(CatalogEntry::Topic(t)) => {
                    records.insert(t.name.clone(), t);
                }
                Some(CatalogEntry::TopicDeleted(name)) => {
                    records.remove(&name);
                }
                Some(CatalogEntry::ProducerIds(n)) => producer_block = producer_block.max(n),
                None => tracing::warn!(key = ?e.key, "skipping an unknown catalog entry"),
            },
        )?;
        let broker = Broker {
            config,
            advertised,
            cluster_id,
            topics: DashMap::new(),
            topic_ids: DashMap::new(),
            producer_ids: Mutex::new((producer_block, producer_block)),
            data,
            catalog,
        };
        let known: std::collections::HashSet<String> =
            records.values().flat_map(|t| (0..t.partitions).map(move |i| format!("{}-{i}", t.id))).collect();
        for t in records.into_values() {
            let cfg = TopicConfig::resolve(&broker.config, t.overrides.clone());
            let partitions = (0..t.partitions)
                .map(|i| broker.open_partition(&t.name, &t.id, i, &cfg).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            let topic = Arc::new(Topic { name: t.name.clone(), id: t.id, config: RwLock::new(cfg), partitions: RwLock::new(partitions) });
            broker.topic_ids.insert(t.id, topic.clone());
            broker.topics.insert(t.name, topic);
        }
        // Partition directories of topics the catalog no longer has: deleted before a crash.
        for dir in broker.data.children("partitions").map_err(io("partitions"))? {
            if !known.contains(&dir) {
                tracing::info!(dir = dir.as_str(), "removing the files of a deleted topic");
                broker.data.remove(&format!("partitions/{dir}")).map_err(io("partitions"))?;
            }
        }
        Ok(broker)
    }

    /// Opens (or creates) one partition's log and rebuilds its producer state.
    fn open_partition(&self, topic: &str, id: &Uuid, index: i32, cfg: &TopicConfig) -> Result<Partition, LogError> {
        let dir = partition_dir(id, index);
        let storage = self.data.storage(&dir).map_err(|e| LogError::Io { what: dir.clone(), source: e })?;
        let mut producers = ProducerTable::default();
        let log = BatchLog::open(&format!("{topic}-{index}"), storage, batch_config(cfg), |h| {
            producers.record(h, h.base_offset, h.max_timestamp)
        })?;
        Ok(Partition::new(index, log, producers, now_ms()))
    }

    /// Writes a catalog entry and makes it durable.
    fn write_catalog(&self, key: bytes::Bytes, value: Option<bytes::Bytes>) -> std::io::Result<()> {
        self.catalog.append(&[(key, value)], now_ms())?;
        self.catalog.sync_now()
    }

    fn record_of_locked(&self, topic: &Topic, parts: &[Arc<Partition>]) -> TopicRecord {
        TopicRecord { name: topic.name.clone(), id: topic.id, partitions: parts.len() as i32, overrides: topic.config().overrides }
    }

    fn record_of(&self, topic: &Topic) -> TopicRecord {
        TopicRecord {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partition_count(),
            overrides: topic.config().overrides,
        }
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn host(&self) -> StrBytes {
        StrBytes::from_string(self.advertised.host.clone())
    }

    pub fn port(&self) -> i32 {
        self.advertised.port as i32
    }

    /// The topic with this name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.get(name).map(|t| t.clone())
    }

    /// The topic with this id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<Arc<Topic>> {
        self.topic_ids.get(id).map(|t| t.clone())
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<Arc<Topic>> = self.topics.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// A new producer id for InitProducerId, never one handed out before (also across
    /// restarts: ids are reserved in durable blocks).
    pub fn allocate_producer_id(&self) -> Result<i64, TopicError> {
        let mut ids = self.producer_ids.lock().expect("producer id lock");
        if ids.0 >= ids.1 {
            let end = ids.0 + PRODUCER_ID_BLOCK;
            self.write_catalog(bytes::Bytes::from_static(catalog::PRODUCER_IDS), Some(bytes::Bytes::copy_from_slice(&end.to_be_bytes())))
                .map_err(|e| storage_error("reserving producer ids", e))?;
            ids.1 = end;
        }
        ids.0 += 1;
        Ok(ids.0 - 1)
    }

    /// Checks what CreateTopics would check, without creating anything.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, Option<String>>,
    ) -> Result<(i32, BTreeMap<String, String>), TopicError> {
        validate_topic_name(name)?;
        if self.topics.contains_key(name) {
            return Err(TopicError::new(codes::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
        }
        let canonical = name.replace('.', "_");
        if let Some(other) = self.topics.iter().find(|t| t.key().replace('.', "_") == canonical) {
            return Err(TopicError::new(
                codes::INVALID_TOPIC_EXCEPTION,
                format!("Topic '{name}' collides with existing topic: {}", other.key()),
            ));
        }
        let partitions = match partitions {
            -1 => self.config.num_partitions,
            p if p >= 1 => p,
            _ => {
                return Err(TopicError::new(
                    codes::INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.",
                ));
            }
        };
        if partitions > 100_000 {
            return Err(TopicError::new(codes::INVALID_PARTITIONS, "corral serves at most 100000 partitions per topic."));
        }
        match replication_factor {
            -1 | 1 => {}
            r if r < 1 => {
                return Err(TopicError::new(
                    codes::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                ));
            }
            r => {
                return Err(TopicError::new(
                    codes::INVALID_REPLICATION_FACTOR,
                    format!("Unable to replicate the partition {r} time(s): The target replication factor of {r} cannot be reached because only 1 broker(s) are registered."),
                ));
            }
        }
        let mut overrides = BTreeMap::new();
        for (k, v) in configs {
            topic_config::validate(k, v.as_deref()).map_err(|m| TopicError::new(codes::INVALID_CONFIG, m))?;
            overrides.insert(k.clone(), v.clone().unwrap_or_default());
        }
        Ok((partitions, overrides))
    }

    /// Creates a topic (after [`Self::validate_new_topic`]): durable in the catalog before it
    /// is visible.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let config = TopicConfig::resolve(&self.config, overrides);
        let mut id = Uuid::new_v4();
        while self.topic_ids.contains_key(&id) || id.is_nil() {
            id = Uuid::new_v4();
        }
        // Hold the name while the catalog write happens, so two creators cannot both win.
        let entry = match self.topics.entry(name.to_string()) {
            dashmap::Entry::Occupied(_) => {
                return Err(TopicError::new(codes::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
            }
            dashmap::Entry::Vacant(v) => v,
        };
        let record = TopicRecord { name: name.to_string(), id, partitions, overrides: config.overrides.clone() };
        self.write_catalog(catalog::topic_key(name), Some(catalog::encode_topic(&record)))
            .map_err(|e| storage_error("writing the topic catalog", e))?;
        let parts = (0..partitions)
            .map(|i| self.open_partition(name, &id, i, &config).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| storage_error("creating partition logs", e))?;
        let topic = Arc::new(Topic { name: name.to_string(), id, config: RwLock::new(config), partitions: RwLock::new(parts) });
        entry.insert(topic.clone());
        self.topic_ids.insert(id, topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Creates a topic with the broker defaults, as auto-creation does. `None` if the name is
    /// not a legal topic name.
    pub fn auto_create(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let (partitions, overrides) = self.validate_new_topic(name, -1, -1, &BTreeMap::new())?;
        match self.create_topic(name, partitions, overrides) {
            Ok(t) => Ok(t),
            // lost a race with another creator: theirs is as good
            Err(e) if e.code == codes::TOPIC_ALREADY_EXISTS => self.topic(name).ok_or(e),
            Err(e) => Err(e),
        }
    }

    /// Deletes a topic: the catalog tombstone is durable before the answer; the files go after.
    pub fn delete_topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        if !self.topics.contains_key(name) {
            return Err(TopicError::new(codes::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."));
        }
        self.write_catalog(catalog::topic_key(name), None).map_err(|e| storage_error("writing the topic catalog", e))?;
        let (_, topic) = self.topics.remove(name).ok_or_else(|| {
            TopicError::new(codes::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition.")
        })?;
        self.topic_ids.remove(&topic.id);
        for p in topic.partitions.read().expect("partitions lock").iter() {
            if let Err(e) = p.lock().log.destroy() {
                tracing::warn!(topic = name, partition = p.index, "removing partition files: {e}");
            }
            let _ = self.data.remove(&partition_dir(&topic.id, p.index));
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Replaces a topic's overrides (already validated): durable, then in effect.
    pub fn set_topic_config(&self, topic: &Topic, overrides: BTreeMap<String, String>) -> Result<(), TopicError> {
        let config = TopicConfig::resolve(&self.config, overrides);
        let record = TopicRecord { overrides: config.overrides.clone(), ..self.record_of(topic) };
        self.write_catalog(catalog::topic_key(&topic.name), Some(catalog::encode_topic(&record)))
            .map_err(|e| storage_error("writing the topic catalog", e))?;
        for p in topic.partitions.read().expect("partitions lock").iter() {
            p.lock().log.set_config(batch_config(&config));
        }
        *topic.config.write().expect("topic config lock") = config;
        tracing::info!(topic = topic.name.as_str(), "altered topic config");
        Ok(())
    }

    /// Grows a topic to `count` partitions.
    pub fn create_partitions(&self, topic: &Topic, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let mut parts = topic.partitions.write().expect("partitions lock");
        let current = parts.len() as i32;
        if count <= current {
            let msg = if count == current {
                format!("Topic already has {current} partition(s).")
            } else {
                format!("The topic {} currently has {current} partition(s); {count} would not be an increase.", topic.name)
            };
            return Err(TopicError::new(codes::INVALID_PARTITIONS, msg));
        }
        if count > 100_000 {
            return Err(TopicError::new(codes::INVALID_PARTITIONS, "corral serves at most 100000 partitions per topic."));
        }
        if !validate_only {
            let record = TopicRecord { partitions: count, ..self.record_of_locked(topic, &parts) };
            self.write_catalog(catalog::topic_key(&topic.name), Some(catalog::encode_topic(&record)))
                .map_err(|e| storage_error("writing the topic catalog", e))?;
            let cfg = topic.config();
            for i in current..count {
                let p = self.open_partition(&topic.name, &topic.id, i, &cfg).map_err(|e| storage_error("creating partition logs", e))?;
                parts.push(Arc::new(p));
            }
            tracing::info!(topic = topic.name.as_str(), from = current, to = count, "added partitions");
        }
        Ok(())
    }
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |m: String| Err(TopicError::new(codes::INVALID_TOPIC_EXCEPTION, m));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return invalid(format!("Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"));
    }
    if !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-') {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Milliseconds since the Unix epoch: the one wall-clock read of the data plane.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> Broker {
        Broker::open(Arc::new(Config::default()), HostPort { host: "h".into(), port: 1 }, "c".into(), Arc::new(DataDir::memory())).unwrap()
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("a.b-c_D9").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert_eq!(validate_topic_name(bad).unwrap_err().code, codes::INVALID_TOPIC_EXCEPTION, "{bad}");
        }
    }

    #[test]
    fn create_validate_collide_and_delete() {
        let b = broker();
        let none = BTreeMap::new();
        let (p, o) = b.validate_new_topic("a.b", -1, -1, &none).unwrap();
        assert_eq!(p, 1);
        b.create_topic("a.b", p, o).unwrap();
        assert_eq!(b.validate_new_topic("a.b", 1, 1, &none).unwrap_err().code, codes::TOPIC_ALREADY_EXISTS);
        assert_eq!(b.validate_new_topic("a_b", 1, 1, &none).unwrap_err().code, codes::INVALID_TOPIC_EXCEPTION);
        assert_eq!(b.validate_new_topic("x", 0, 1, &none).unwrap_err().code, codes::INVALID_PARTITIONS);
        assert_eq!(b.validate_new_topic("x", 1, 3, &none).unwrap_err().code, codes::INVALID_REPLICATION_FACTOR);
        let mut bad = BTreeMap::new();
        bad.insert("retention.ms".to_string(), Some("soon".to_string()));
        assert_eq!(b.validate_new_topic("x", 1, 1, &bad).unwrap_err().code, codes::INVALID_CONFIG);
        let t = b.topic("a.b").unwrap();
        assert!(b.topic_by_id(&t.id).is_some());
        b.create_partitions(&t, 3, false).unwrap();
        assert_eq!(t.partition_count(), 3);
        assert_eq!(b.create_partitions(&t, 2, false).unwrap_err().code, codes::INVALID_PARTITIONS);
        b.delete_topic("a.b").unwrap();
        assert!(b.topic("a.b").is_none() && b.topic_by_id(&t.id).is_none());
    }
}
