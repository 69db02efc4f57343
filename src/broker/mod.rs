//! The data plane: topics and partitions, and the handlers of the broker APIs (Metadata,
//! Produce, Fetch, ListOffsets, topic administration, configs, producer ids).

pub mod catalog;
pub mod partition;
pub mod producer;
pub mod topic_config;

mod admin;
mod configs;
mod fetch;
pub mod maintenance;
mod metadata;
mod offsets;
mod produce;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::DashMap;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

pub use admin::{handle_create_partitions, handle_create_topics, handle_delete_records, handle_delete_topics, handle_describe_log_dirs};
pub use configs::{handle_alter_configs, handle_describe_configs, handle_incremental_alter_configs};
pub use fetch::handle_fetch;
pub use metadata::{handle_describe_cluster, handle_metadata};
pub use offsets::{handle_list_offsets, handle_offset_for_leader_epoch};
pub use produce::{NoTransactions, TxnCheck, handle_init_producer_id, handle_produce, has_error as produce_has_error};

use crate::config::{Config, HostPort};
use crate::error::ErrorCode;
use crate::log::LogError;
use crate::log::batches::{BatchConfig, BatchLog};
use crate::log::datadir::DataDir;
use crate::log::keyed::{KeyedConfig, KeyedLog};
use catalog::{CatalogEntry, TopicRecord};
use partition::Partition;
use producer::ProducerTable;
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
    pub code: ErrorCode,
    pub message: String,
}

impl TopicError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TopicError { code, message: message.into() }
    }
}

/// The broker: where topics live, and who we are.
///
/// Topic administration does its file work (partition logs, the catalog's fsync) on a blocking
/// thread and holds no map entry meanwhile: a name being created is reserved in `creating`,
/// so produce and fetch of other topics never wait for it.
#[derive(Debug)]
pub struct Broker {
    pub config: Arc<Config>,
    /// What Metadata, FindCoordinator and DescribeCluster advertise.
    pub advertised: HostPort,
    pub cluster_id: String,
    topics: DashMap<String, Arc<Topic>>,
    topic_ids: DashMap<Uuid, Arc<Topic>>,
    /// Names whose creation is under way (their files are being made).
    creating: Mutex<HashSet<String>>,
    /// Producer ids handed out: (next, end of the block the catalog has reserved).
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    data: Arc<DataDir>,
    /// Topic metadata and the producer-id block, durable before any reply that depends on it.
    /// Its lock also orders catalog writes (held on the blocking thread that writes).
    catalog: Mutex<Arc<KeyedLog>>,
}

/// Runs file work on a blocking thread (inline where there is no runtime: unit tests).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => h.spawn_blocking(f).await.expect("a blocking task of the broker panicked"),
        Err(_) => f(),
    }
}

/// Removes a name from `creating` when its creation ends, however it ends.
struct Reserved<'a> {
    broker: &'a Broker,
    name: String,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.broker.creating.lock().expect("creating lock").remove(&self.name);
    }
}

/// Producer ids are reserved in the catalog this many at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The catalog log's settings.
fn catalog_config() -> KeyedConfig {
    KeyedConfig { segment_bytes: 16 << 20, delete_retention_ms: 0, min_compaction_bytes: 1 << 20 }
}

/// The settings a partition log takes from its topic.
fn batch_config(c: &TopicConfig) -> BatchConfig {
    BatchConfig { segment_bytes: c.segment_bytes.max(1) as u64, flush_messages: c.flush_messages.max(1) }
}

fn partition_dir(id: &Uuid, index: i32) -> String {
    format!("partitions/{id}-{index}")
}

fn storage_error(what: &str, e: impl std::fmt::Display) -> TopicError {
    tracing::error!("{what}: {e}");
    TopicError::new(ErrorCode::KAFKA_STORAGE_ERROR, format!("{what}: {e}"))
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
        let catalog = KeyedLog::open("meta", data.storage("meta").map_err(io("catalog"))?, catalog_config(), |e| {
            match catalog::decode(e.key, e.value) {
                Some(CatalogEntry::Topic(t)) => {
                    records.insert(t.name.clone(), t);
                }
                Some(CatalogEntry::TopicDeleted(name)) => {
                    records.remove(&name);
                }
                Some(CatalogEntry::ProducerIds(n)) => producer_block = producer_block.max(n),
                None => tracing::warn!(key = ?e.key, "skipping an unknown catalog entry"),
            }
        })?;
        let broker = Broker {
            config,
            advertised,
            cluster_id,
            topics: DashMap::new(),
            topic_ids: DashMap::new(),
            creating: Mutex::new(HashSet::new()),
            producer_ids: tokio::sync::Mutex::new((producer_block, producer_block)),
            data,
            catalog: Mutex::new(catalog),
        };
        let known: std::collections::HashSet<String> =
            records.values().flat_map(|t| (0..t.partitions).map(move |i| format!("{}-{i}", t.id))).collect();
        for t in records.into_values() {
            let cfg = TopicConfig::resolve(&broker.config, t.overrides.clone());
            let partitions =
                (0..t.partitions).map(|i| broker.open_partition(&t.name, &t.id, i, &cfg).map(Arc::new)).collect::<Result<Vec<_>, _>>()?;
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
        let log = BatchLog::open(&format!("{topic}-{index}"), storage, batch_config(cfg), |h, _| {
            producers.record(h, h.base_offset, h.max_timestamp);
        })?;
        Ok(Partition::new(index, log, producers, crate::clock::now_ms()))
    }

    /// Writes a catalog entry and makes it durable (blocking: call it on a blocking thread).
    /// If the sync fails, the catalog is cut back to what is durable and reopened, so the
    /// entry — whose durability is unknown — is gone, as the error says.
    fn write_catalog(&self, key: bytes::Bytes, value: Option<bytes::Bytes>) -> std::io::Result<()> {
        let mut log = self.catalog.lock().expect("catalog lock");
        log.append(&[(key, value)], crate::clock::now_ms())?;
        if let Err(e) = log.sync_now() {
            let reopened = log.discard_unsynced().map_err(|e| LogError::Io { what: "catalog".into(), source: e }).and_then(|()| {
                let storage = self.data.storage("meta").map_err(|e| LogError::Io { what: "catalog".into(), source: e })?;
                KeyedLog::open("meta", storage, catalog_config(), |_| {})
            });
            match reopened {
                Ok(fresh) => *log = fresh,
                Err(r) => tracing::error!("cutting the catalog back after a failed sync failed too: {r}"),
            }
            return Err(e);
        }
        Ok(())
    }

    /// Removes the files of partitions `0..n` of topic `id` (a creation that failed).
    fn remove_partition_files(&self, id: &Uuid, range: std::ops::Range<i32>) {
        for i in range {
            if let Err(e) = self.data.remove(&partition_dir(id, i)) {
                tracing::warn!(partition = i, "removing the files of a failed creation: {e}");
            }
        }
    }

    /// Reserves a topic name for a creation (no I/O): TOPIC_ALREADY_EXISTS if it exists or
    /// another creation of it is under way.
    fn reserve(&self, name: &str) -> Result<Reserved<'_>, TopicError> {
        let mut creating = self.creating.lock().expect("creating lock");
        if self.topics.contains_key(name) || !creating.insert(name.to_string()) {
            return Err(TopicError::new(ErrorCode::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
        }
        Ok(Reserved { broker: self, name: name.to_string() })
    }

    /// Partitions of every topic, plus those being created.
    pub fn partition_total(&self) -> i64 {
        self.topics.iter().map(|t| t.partition_count() as i64).sum()
    }

    fn record_of(&self, topic: &Topic) -> TopicRecord {
        TopicRecord { name: topic.name.clone(), id: topic.id, partitions: topic.partition_count(), overrides: topic.config().overrides }
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
    /// restarts: ids are reserved in durable blocks, the catalog write on a blocking thread).
    pub async fn allocate_producer_id(self: &Arc<Self>) -> Result<i64, TopicError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let end = ids.0 + PRODUCER_ID_BLOCK;
            let me = self.clone();
            blocking(move || {
                me.write_catalog(bytes::Bytes::from_static(catalog::PRODUCER_IDS), Some(bytes::Bytes::copy_from_slice(&end.to_be_bytes())))
            })
            .await
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
            return Err(TopicError::new(ErrorCode::TOPIC_ALREADY_EXISTS, format!("Topic '{name}' already exists.")));
        }
        let canonical = name.replace('.', "_");
        if let Some(other) = self.topics.iter().find(|t| t.key().replace('.', "_") == canonical) {
            return Err(TopicError::new(
                ErrorCode::INVALID_TOPIC_EXCEPTION,
                format!("Topic '{name}' collides with existing topic: {}", other.key()),
            ));
        }
        let partitions = match partitions {
            -1 => self.config.num_partitions,
            p if p >= 1 => p,
            _ => {
                return Err(TopicError::new(
                    ErrorCode::INVALID_PARTITIONS,
                    "Number of partitions was set to an invalid non-positive value.",
                ));
            }
        };
        if partitions > 100_000 {
            return Err(TopicError::new(ErrorCode::INVALID_PARTITIONS, "corral serves at most 100000 partitions per topic."));
        }
        match replication_factor {
            -1 | 1 => {}
            r if r < 1 => {
                return Err(TopicError::new(
                    ErrorCode::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0, or -1 to use the default value.",
                ));
            }
            r => {
                return Err(TopicError::new(
                    ErrorCode::INVALID_REPLICATION_FACTOR,
                    format!(
                        "Unable to replicate the partition {r} time(s): The target replication factor of {r} cannot be reached because only 1 broker(s) are registered."
                    ),
                ));
            }
        }
        let mut overrides = BTreeMap::new();
        for (k, v) in configs {
            topic_config::validate(k, v.as_deref()).map_err(|m| TopicError::new(ErrorCode::INVALID_CONFIG, m))?;
            overrides.insert(k.clone(), v.clone().unwrap_or_default());
        }
        Ok((partitions, overrides))
    }

    /// Creates a topic (after [`Self::validate_new_topic`]), all or nothing: every partition's
    /// files first, then the catalog record, durable before the topic is visible. On a blocking
    /// thread, with the name reserved (no map entry held). A failure removes what was made; a
    /// crash midway leaves partition files the catalog does not know, which start-up removes.
    pub async fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let config = TopicConfig::resolve(&self.config, overrides);
        let _reserved = self.reserve(name)?;
        let mut id = Uuid::new_v4();
        while self.topic_ids.contains_key(&id) || id.is_nil() {
            id = Uuid::new_v4();
        }
        let (me, owned, cfg) = (self.clone(), name.to_string(), config.clone());
        let parts = blocking(move || me.create_topic_files(&owned, id, partitions, &cfg)).await?;
        let topic = Arc::new(Topic { name: name.to_string(), id, config: RwLock::new(config), partitions: RwLock::new(parts) });
        self.topic_ids.insert(id, topic.clone());
        self.topics.insert(name.to_string(), topic.clone());
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// The file work of a creation (blocking).
    fn create_topic_files(&self, name: &str, id: Uuid, partitions: i32, config: &TopicConfig) -> Result<Vec<Arc<Partition>>, TopicError> {
        let mut parts = Vec::with_capacity(partitions as usize);
        for i in 0..partitions {
            match self.open_partition(name, &id, i, config) {
                Ok(p) => parts.push(Arc::new(p)),
                Err(e) => {
                    drop(parts);
                    self.remove_partition_files(&id, 0..i + 1);
                    return Err(storage_error("creating partition logs", e));
                }
            }
        }
        let record = TopicRecord { name: name.to_string(), id, partitions, overrides: config.overrides.clone() };
        if let Err(e) = self.write_catalog(catalog::topic_key(name), Some(catalog::encode_topic(&record))) {
            drop(parts);
            self.remove_partition_files(&id, 0..partitions);
            return Err(storage_error("writing the topic catalog", e));
        }
        Ok(parts)
    }

    /// Creates a topic with the broker defaults, as auto-creation does.
    pub async fn auto_create(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, TopicError> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        let (partitions, overrides) = self.validate_new_topic(name, -1, -1, &BTreeMap::new())?;
        self.check_partition_caps(partitions as i64)?;
        match self.create_topic(name, partitions, overrides).await {
            Ok(t) => Ok(t),
            // lost a race with another creator: theirs is as good, once it is there
            Err(e) if e.code == ErrorCode::TOPIC_ALREADY_EXISTS => {
                for _ in 0..200 {
                    if let Some(t) = self.topic(name) {
                        return Ok(t);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Refuses `more` partitions past `max.partitions` in all (POLICY_VIOLATION), before any
    /// disk is touched.
    pub fn check_partition_caps(&self, more: i64) -> Result<(), TopicError> {
        let total = self.partition_total();
        if total + more > self.config.max_partitions {
            return Err(TopicError::new(
                ErrorCode::POLICY_VIOLATION,
                format!("{more} more partitions would make {} in all, past max.partitions ({})", total + more, self.config.max_partitions),
            ));
        }
        Ok(())
    }

    /// Deletes a topic: the catalog tombstone is durable before the answer; the files go after.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, TopicError> {
        if !self.topics.contains_key(name) {
            return Err(TopicError::new(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."));
        }
        let (me, owned) = (self.clone(), name.to_string());
        blocking(move || me.write_catalog(catalog::topic_key(&owned), None))
            .await
            .map_err(|e| storage_error("writing the topic catalog", e))?;
        let (_, topic) = self
            .topics
            .remove(name)
            .ok_or_else(|| TopicError::new(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, "This server does not host this topic-partition."))?;
        self.topic_ids.remove(&topic.id);
        let (me, t) = (self.clone(), topic.clone());
        blocking(move || {
            for p in t.partitions.read().expect("partitions lock").iter() {
                if let Err(e) = p.lock().log.destroy() {
                    tracing::warn!(topic = t.name.as_str(), partition = p.index, "removing partition files: {e}");
                }
                let _ = me.data.remove(&partition_dir(&t.id, p.index));
            }
        })
        .await;
        tracing::info!(topic = name, "deleted topic");
        Ok(topic)
    }

    /// Replaces a topic's overrides (already validated): durable, then in effect.
    pub async fn set_topic_config(self: &Arc<Self>, topic: &Arc<Topic>, overrides: BTreeMap<String, String>) -> Result<(), TopicError> {
        let config = TopicConfig::resolve(&self.config, overrides);
        let record = TopicRecord { overrides: config.overrides.clone(), ..self.record_of(topic) };
        let (me, name) = (self.clone(), topic.name.clone());
        blocking(move || me.write_catalog(catalog::topic_key(&name), Some(catalog::encode_topic(&record))))
            .await
            .map_err(|e| storage_error("writing the topic catalog", e))?;
        for p in topic.partitions.read().expect("partitions lock").iter() {
            p.lock().log.set_config(batch_config(&config));
        }
        *topic.config.write().expect("topic config lock") = config;
        tracing::info!(topic = topic.name.as_str(), "altered topic config");
        Ok(())
    }

    /// Grows a topic to `count` partitions, all or nothing: the new partitions' files, then
    /// the catalog record; a failure removes the new files.
    pub async fn create_partitions(self: &Arc<Self>, topic: &Arc<Topic>, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let current = topic.partition_count();
        if count <= current {
            let msg = if count == current {
                format!("Topic already has {current} partition(s).")
            } else {
                format!("The topic {} currently has {current} partition(s); {count} would not be an increase.", topic.name)
            };
            return Err(TopicError::new(ErrorCode::INVALID_PARTITIONS, msg));
        }
        if count > 100_000 {
            return Err(TopicError::new(ErrorCode::INVALID_PARTITIONS, "corral serves at most 100000 partitions per topic."));
        }
        self.check_partition_caps((count - current) as i64)?;
        if validate_only {
            return Ok(());
        }
        let _reserved = {
            // one change to a topic's partitions at a time
            let mut creating = self.creating.lock().expect("creating lock");
            let key = format!("partitions of {}", topic.name);
            if !creating.insert(key.clone()) {
                return Err(TopicError::new(ErrorCode::REASSIGNMENT_IN_PROGRESS, "The topic's partitions are being changed."));
            }
            Reserved { broker: self, name: key }
        };
        let (me, t, cfg) = (self.clone(), topic.clone(), topic.config());
        let added = blocking(move || -> Result<Vec<Arc<Partition>>, TopicError> {
            let mut added = Vec::new();
            for i in current..count {
                match me.open_partition(&t.name, &t.id, i, &cfg) {
                    Ok(p) => added.push(Arc::new(p)),
                    Err(e) => {
                        drop(added);
                        me.remove_partition_files(&t.id, current..i + 1);
                        return Err(storage_error("creating partition logs", e));
                    }
                }
            }
            let record = TopicRecord { partitions: count, ..me.record_of(&t) };
            if let Err(e) = me.write_catalog(catalog::topic_key(&t.name), Some(catalog::encode_topic(&record))) {
                drop(added);
                me.remove_partition_files(&t.id, current..count);
                return Err(storage_error("writing the topic catalog", e));
            }
            Ok(added)
        })
        .await?;
        topic.partitions.write().expect("partitions lock").extend(added);
        tracing::info!(topic = topic.name.as_str(), from = current, to = count, "added partitions");
        Ok(())
    }
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |m: String| Err(TopicError::new(ErrorCode::INVALID_TOPIC_EXCEPTION, m));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::storage::FaultOp;

    fn broker() -> Arc<Broker> {
        over(Arc::new(DataDir::memory()))
    }

    fn over(data: Arc<DataDir>) -> Arc<Broker> {
        Arc::new(Broker::open(Arc::new(Config::default()), HostPort { host: "h".into(), port: 1 }, "c".into(), data).unwrap())
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("a.b-c_D9").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert_eq!(validate_topic_name(bad).unwrap_err().code, ErrorCode::INVALID_TOPIC_EXCEPTION, "{bad}");
        }
    }

    #[tokio::test]
    async fn create_validate_collide_and_delete() {
        let b = broker();
        let none = BTreeMap::new();
        let (p, o) = b.validate_new_topic("a.b", -1, -1, &none).unwrap();
        assert_eq!(p, 1);
        b.create_topic("a.b", p, o).await.unwrap();
        assert_eq!(b.validate_new_topic("a.b", 1, 1, &none).unwrap_err().code, ErrorCode::TOPIC_ALREADY_EXISTS);
        assert_eq!(b.validate_new_topic("a_b", 1, 1, &none).unwrap_err().code, ErrorCode::INVALID_TOPIC_EXCEPTION);
        assert_eq!(b.validate_new_topic("x", 0, 1, &none).unwrap_err().code, ErrorCode::INVALID_PARTITIONS);
        assert_eq!(b.validate_new_topic("x", 1, 3, &none).unwrap_err().code, ErrorCode::INVALID_REPLICATION_FACTOR);
        let mut bad = BTreeMap::new();
        bad.insert("retention.ms".to_string(), Some("soon".to_string()));
        assert_eq!(b.validate_new_topic("x", 1, 1, &bad).unwrap_err().code, ErrorCode::INVALID_CONFIG);
        let t = b.topic("a.b").unwrap();
        assert!(b.topic_by_id(&t.id).is_some());
        b.create_partitions(&t, 3, false).await.unwrap();
        assert_eq!(t.partition_count(), 3);
        assert_eq!(b.create_partitions(&t, 2, false).await.unwrap_err().code, ErrorCode::INVALID_PARTITIONS);
        b.delete_topic("a.b").await.unwrap();
        assert!(b.topic("a.b").is_none() && b.topic_by_id(&t.id).is_none());
    }

    /// Every file of an in-memory data dir, by log path.
    fn files(data: &DataDir) -> Vec<String> {
        let mut all: Vec<String> = data.children("partitions").unwrap().into_iter().map(|d| format!("partitions/{d}")).collect();
        all.sort();
        all
    }

    /// Issue 11 item 9: a CreateTopics or CreatePartitions whose file work fails midway
    /// (fault injection: the Nth file creation fails) leaves no trace — no topic, no partition
    /// files, no catalog record — and the broker reopens over the same data as before.
    #[tokio::test]
    async fn a_creation_that_fails_midway_leaves_no_trace() {
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        let none = BTreeMap::new();
        b.create_topic("kept", 2, BTreeMap::new()).await.unwrap();
        let before = files(&data);
        // the 3rd partition of "doomed" cannot create its segment file
        data.fail(FaultOp::Create, 28, false);
        let e = b.create_topic("doomed", 5, BTreeMap::new()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::KAFKA_STORAGE_ERROR);
        assert!(b.topic("doomed").is_none());
        assert_eq!(files(&data), before, "partition files of the failed creation were left behind");
        // the catalog write itself fails (its fsync): no topic either
        data.clear_faults();
        data.fail(FaultOp::Sync, 5, true);
        assert!(b.create_topic("doomed", 3, BTreeMap::new()).await.is_err());
        assert!(b.topic("doomed").is_none());
        assert_eq!(files(&data), before);
        // CreatePartitions failing midway keeps the old count
        let kept = b.topic("kept").unwrap();
        data.fail(FaultOp::Create, 28, false);
        assert!(b.create_partitions(&kept, 6, false).await.is_err());
        assert_eq!(kept.partition_count(), 2);
        assert_eq!(files(&data), before);
        data.clear_faults();
        // the name is free again, and a restart sees exactly the old state
        assert_eq!(b.validate_new_topic("doomed", 1, 1, &none).map(|(p, _)| p), Ok(1));
        drop(b);
        let again = over(data.clone());
        assert_eq!(again.topics().iter().map(|t| (t.name.clone(), t.partition_count())).collect::<Vec<_>>(), vec![("kept".to_string(), 2)]);
        assert_eq!(files(&data), before);
        again.create_topic("doomed", 3, BTreeMap::new()).await.unwrap();
    }

    /// A produce of one 3-record client batch to partition 0 of `topic`.
    fn produce_to(topic: &str) -> kafka_protocol::messages::ProduceRequest {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName};
        ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default().with_name(TopicName(StrBytes::from_string(topic.to_string()))).with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bytes::Bytes::from(crate::batch::tests::client_batch(3, -1, -1)))),
            ]),
        ])
    }

    /// Produces to `topic` on another thread: its error code, or `None` if it took more
    /// than 5 s (it waited behind something).
    fn produce_elsewhere(b: &Arc<Broker>, topic: &str) -> Option<ErrorCode> {
        let (b, req, (tx, rx)) = (b.clone(), produce_to(topic), std::sync::mpsc::channel());
        // in the test's runtime, as a produce runs on its workers
        let rt = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let _in = rt.enter();
            let r = handle_produce(&b, 8, req, &NoTransactions);
            let _ = tx.send(ErrorCode::from(r.responses[0].partition_responses[0].error_code));
        });
        rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
    }

    /// Issue 11 item 1: a Fetch reads its records outside the partition's lock: with the read
    /// held (a slow disk), a produce to the same partition is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_fetch_read_does_not_hold_up_produce() {
        use kafka_protocol::messages::FetchRequest;
        use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        b.create_topic("f", 1, BTreeMap::new()).await.unwrap();
        assert_eq!(produce_elsewhere(&b, "f"), Some(ErrorCode::NONE));
        let gate = data.hold(FaultOp::Read).expect("a memory data dir");
        let req = FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka_protocol::messages::TopicName(StrBytes::from_static_str("f")))
                .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1 << 20)]),
        ]);
        let fetching = {
            let b = b.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(fetch::handle_fetch(&b, 4, req, &tokio_util::sync::CancellationToken::new()))
            })
        };
        assert!(gate.wait_reached(std::time::Duration::from_secs(10)), "the fetch never read");
        let during = produce_elsewhere(&b, "f");
        gate.open();
        let fetched = fetching.join().unwrap();
        assert_eq!(during, Some(ErrorCode::NONE), "the produce waited for the fetch's read");
        assert!(!gate.expired());
        assert_eq!(ErrorCode::from(fetched.responses[0].partitions[0].error_code), ErrorCode::NONE);
        assert!(fetched.responses[0].partitions[0].records.as_ref().is_some_and(|r| !r.is_empty()));
    }

    /// Issue 11 item 1: a segment roll does no sync on the produce path: with the sealed
    /// segment's sync held, produces that roll segments are answered, and the sync runs after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_roll_does_not_sync_on_the_produce_path() {
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        b.create_topic("r", 1, BTreeMap::from([("segment.bytes".to_string(), "200".to_string())])).await.unwrap();
        let gate = data.hold(FaultOp::Sync).expect("a memory data dir");
        for i in 0..8 {
            assert_eq!(produce_elsewhere(&b, "r"), Some(ErrorCode::NONE), "produce {i} waited for a sync");
        }
        assert!(gate.wait_reached(std::time::Duration::from_secs(10)), "no roll's sync ran");
        gate.open();
        assert!(!gate.expired());
        let p = b.topic("r").unwrap().partition(0).unwrap();
        assert_eq!(p.offsets(), (0, 24));
    }

    /// Issue 11 item 1: compaction of a compacted topic copies outside the partition's lock:
    /// with its reads held, a produce to the partition is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_partition_compaction_does_not_hold_up_produce() {
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        let overrides =
            BTreeMap::from([("segment.bytes".to_string(), "200".to_string()), ("cleanup.policy".to_string(), "compact".to_string())]);
        b.create_topic("c", 1, overrides).await.unwrap();
        for _ in 0..10 {
            assert_eq!(produce_elsewhere(&b, "c"), Some(ErrorCode::NONE));
        }
        let gate = data.hold(FaultOp::Read).expect("a memory data dir");
        let compacting = {
            let b = b.clone();
            std::thread::spawn(move || b.enforce_retention(crate::clock::now_ms()))
        };
        assert!(gate.wait_reached(std::time::Duration::from_secs(10)), "the compaction never read");
        let during = produce_elsewhere(&b, "c");
        gate.open();
        compacting.join().unwrap();
        assert_eq!(during, Some(ErrorCode::NONE), "the produce waited for the compaction");
        assert!(!gate.expired());
        assert_eq!(b.topic("c").unwrap().partition(0).unwrap().offsets().1, 33);
    }

    /// Issue 11 item 1: DeleteRecords writes the new log start offset outside the partition's
    /// lock: with that fsync held, a produce to the partition is answered, and the DeleteRecords
    /// answer waits until the start is durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_delete_records_does_not_hold_up_produce() {
        use kafka_protocol::messages::DeleteRecordsRequest;
        use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        b.create_topic("d", 1, BTreeMap::new()).await.unwrap();
        for _ in 0..3 {
            assert_eq!(produce_elsewhere(&b, "d"), Some(ErrorCode::NONE));
        }
        let gate = data.hold(FaultOp::Sync).expect("a memory data dir");
        let req = DeleteRecordsRequest::default().with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(kafka_protocol::messages::TopicName(StrBytes::from_static_str("d")))
                .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(4)]),
        ]);
        let deleting = {
            let b = b.clone();
            tokio::spawn(async move { admin::handle_delete_records(&b, 2, req).await })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !gate.reached() {
            assert!(std::time::Instant::now() < deadline, "DeleteRecords never synced");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let during = produce_elsewhere(&b, "d");
        assert!(!deleting.is_finished(), "answered before the new start was durable");
        gate.open();
        let r = deleting.await.unwrap();
        assert_eq!(during, Some(ErrorCode::NONE), "the produce waited for the DeleteRecords fsync");
        assert!(!gate.expired());
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 4));
    }

    /// Issue 11 item 1: a topic creation's file work (its catalog fsync) runs off the async
    /// workers: on a single-threaded runtime, with the fsync held, the runtime goes on serving.
    #[tokio::test]
    async fn a_creation_fsync_does_not_stall_the_runtime() {
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        let gate = data.hold(FaultOp::Sync).expect("a memory data dir");
        let creating = {
            let b = b.clone();
            tokio::spawn(async move { b.create_topic("slow", 2, BTreeMap::new()).await.map(|t| t.name.clone()) })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !gate.reached() {
            assert!(std::time::Instant::now() < deadline, "the creation never synced");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // this thread is free while the fsync is held
        assert!(!creating.is_finished());
        assert!(b.topic("slow").is_none(), "visible before its catalog record is durable");
        gate.open();
        assert_eq!(creating.await.unwrap().unwrap(), "slow");
        assert!(!gate.expired(), "the runtime's only thread was held by the fsync");
    }

    /// Issue 11 item 9, across a crash: one that strikes after a creation's partition files
    /// exist but before its catalog record does leaves orphan files, which the next start
    /// removes; the data dir is as before the request.
    #[tokio::test]
    async fn a_crash_between_the_files_and_the_catalog_leaves_no_trace() {
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        b.create_topic("kept", 2, BTreeMap::new()).await.unwrap();
        let before = files(&data);
        let config = TopicConfig::resolve(&b.config, BTreeMap::new());
        let id = Uuid::new_v4();
        for i in 0..3 {
            b.open_partition("half-made", &id, i, &config).unwrap();
        }
        assert_ne!(files(&data), before);
        drop(b);
        let again = over(data.clone());
        assert_eq!(files(&data), before);
        assert_eq!(again.topics().iter().map(|t| t.name.clone()).collect::<Vec<_>>(), vec!["kept".to_string()]);
    }

    /// Issue 11 item 9: more partitions than `max.partitions` in all are refused before the
    /// disk is touched.
    #[tokio::test]
    async fn the_partition_caps_refuse_before_touching_the_disk() {
        let data = Arc::new(DataDir::memory_modelled());
        let config = Config { max_partitions: 10, ..Config::default() };
        let b = Arc::new(Broker::open(Arc::new(config), HostPort { host: "h".into(), port: 1 }, "c".into(), data.clone()).unwrap());
        b.create_topic("a", 8, BTreeMap::new()).await.unwrap();
        assert_eq!(b.check_partition_caps(3).unwrap_err().code, ErrorCode::POLICY_VIOLATION);
        assert!(b.check_partition_caps(2).is_ok());
        let t = b.topic("a").unwrap();
        assert_eq!(b.create_partitions(&t, 11, false).await.unwrap_err().code, ErrorCode::POLICY_VIOLATION);
        assert_eq!(files(&data).len(), 8);
    }

    /// Issue 11 item 8: a Produce whose write fails gets KAFKA_STORAGE_ERROR and nothing of it
    /// becomes visible; reads go on; once the disk recovers, writes resume at the next offset.
    #[tokio::test]
    async fn a_produce_whose_write_fails_is_refused_and_invisible() {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName};
        let data = Arc::new(DataDir::memory_modelled());
        let b = over(data.clone());
        b.create_topic("p", 1, BTreeMap::new()).await.unwrap();
        let produce = || {
            ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
                TopicProduceData::default().with_name(TopicName(StrBytes::from_static_str("p"))).with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from(crate::batch::tests::client_batch(3, -1, -1)))),
                ]),
            ])
        };
        let code = |r: kafka_protocol::messages::ProduceResponse| {
            let p = &r.responses[0].partition_responses[0];
            (ErrorCode::from(p.error_code), p.base_offset)
        };
        assert_eq!(code(handle_produce(&b, 8, produce(), &NoTransactions)), (ErrorCode::NONE, 0));
        data.fail(FaultOp::Write, 28, true);
        assert_eq!(code(handle_produce(&b, 8, produce(), &NoTransactions)).0, ErrorCode::KAFKA_STORAGE_ERROR);
        let p = b.topic("p").unwrap().partition(0).unwrap();
        assert_eq!(p.offsets(), (0, 3), "the failed batch is not visible");
        assert_eq!(p.lock().log.read(0, 1 << 20, true).unwrap().len(), crate::batch::tests::client_batch(3, -1, -1).len());
        assert_eq!(code(handle_produce(&b, 8, produce(), &NoTransactions)), (ErrorCode::NONE, 3), "writes resume at the next offset");
        // a reopen finds the two good batches and nothing of the failed one
        drop(p);
        drop(b);
        let again = over(data);
        assert_eq!(again.topic("p").unwrap().partition(0).unwrap().offsets(), (0, 6));
    }
}
