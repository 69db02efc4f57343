//! The upstream offsets store: the coordinator's records in a compacted topic of the upstream
//! cluster (`__corral_offsets` by default), one partition per coordinator shard — so a proxy
//! without a disk loses nothing across a restart.
//!
//! # Writing
//!
//! An append (under the shard's lock) only queues the records. One producer task per shard
//! sends what has queued as one batch at a time — acks=all, from an idempotent producer (one
//! producer id for the store, a sequence per partition) — so many appends share one round trip,
//! as the local log's group commit shares one fsync. A record is durable, and the replies that
//! wait for it go out, only once the upstream has acknowledged it. A retriable failure (leader
//! moved, broker unreachable, not enough replicas) is retried with the same sequence numbers
//! after a metadata refresh, so the upstream stores the batch exactly once; a non-retriable
//! one stops the shard (its groups answer NOT_COORDINATOR) with a log line.
//!
//! # Reading
//!
//! Loading a shard reads its partition from the log start offset to the high watermark
//! (ListOffsets, then Fetch), replaying every record in order, exactly as the local log is
//! replayed at start-up. Records are read with corral's own batch walker, which never sizes an
//! allocation from a claimed count.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, FetchRequest, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, TopicName,
    TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::Proxy;
use super::upstream::{UpstreamError, kafka_retriable};
use crate::batch::records::read_records;
use crate::batch::{BatchHeader, HEADER_LEN, KeyValue, ProducerStamp, encode_batch};
use crate::coordinator::log::{BoxFuture, OffsetsStore, Replay};
use crate::coordinator::record::RawRecord;
use crate::error::ErrorCode;
use crate::log::LogError;

/// The most bytes of records one produce request carries.
const MAX_BATCH_BYTES: usize = 512 * 1024;
/// Retries of a failing read before a shard's load gives up.
const READ_ATTEMPTS: u32 = 20;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// How far a shard's records have been acknowledged upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Durable {
    /// Every record before this position is acknowledged.
    Upto(i64),
    /// The shard's producer stopped: nothing more will be acknowledged.
    Failed(String),
    /// The upstream refused the shard's producer as fenced: another proxy took the shard.
    Fenced(String),
}

/// Why a batch was not acknowledged.
enum SendFailure {
    /// INVALID_PRODUCER_EPOCH or PRODUCER_FENCED: a newer owner of the shard bumped the epoch.
    Fenced(String),
    Other(String),
}

/// Several proxies share the coordinator: each shard has its own producer (a transactional id
/// per shard), whose epoch a proxy bumps when it gains the shard, fencing the previous owner.
#[derive(Debug, Clone)]
pub struct Fencing {
    pub sharing: super::membership::Sharing,
    /// This proxy's node id (in the fence record, for whoever reads the topic).
    pub owner: i32,
}

/// Records queued for one shard.
#[derive(Debug, Default)]
struct Queue {
    records: Vec<(Bytes, Option<Bytes>)>,
    /// Position after the last append (records appended since start).
    appended: i64,
}

#[derive(Debug)]
struct Shard {
    queue: Mutex<Queue>,
    wake: Notify,
    durable: watch::Sender<Durable>,
    started: AtomicBool,
    /// The idempotent producer this shard writes with (a reset takes a fresh one).
    producer: Mutex<ProducerStamp>,
    /// The running producer task: what stops it, and its handle (a reset waits for it).
    task: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
}

/// The coordinator's records on the upstream cluster.
#[derive(Debug)]
pub struct UpstreamStore {
    proxy: Arc<Proxy>,
    topic: String,
    shards: Vec<Shard>,
    /// The partition leaders, by partition (refreshed when a request meets a moved leader).
    leaders: RwLock<Vec<i32>>,
    runtime: tokio::runtime::Handle,
    fencing: Option<Fencing>,
    /// The server's shutdown: a blocking load or reset in flight gives up at once (the runtime
    /// it blocks on is about to go).
    shutdown: CancellationToken,
}

impl UpstreamStore {
    /// Makes sure the topic exists (created compacted with `partitions` partitions when it does
    /// not; an existing topic keeps its own count, which then is the number of shards) and
    /// gets a producer id for writing to it.
    pub async fn open(
        proxy: Arc<Proxy>,
        topic: &str,
        partitions: i32,
        fencing: Option<Fencing>,
        shutdown: CancellationToken,
    ) -> Result<Arc<UpstreamStore>, UpstreamError> {
        let mut meta = proxy.refresh(Some(&[topic])).await?;
        let exists = meta
            .topics
            .iter()
            .any(|t| ErrorCode::from(t.error_code) == ErrorCode::NONE && t.name.as_ref().is_some_and(|n| n.as_str() == topic));
        if !exists {
            create_topic(&proxy, topic, partitions).await?;
            meta = wait_for_topic(&proxy, topic).await?;
        }
        let t = meta.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic)).ok_or(UpstreamError::Kafka {
            node: -1,
            what: "Metadata for the offsets topic",
            code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        })?;
        let count = t.partitions.len();
        if count as i32 != partitions {
            tracing::info!(
                topic,
                partitions = count,
                "the offsets topic exists with its own partition count: corral uses it as the number of shards"
            );
        }
        let mut leaders = vec![-1; count];
        for p in &t.partitions {
            if let Some(l) = usize::try_from(p.partition_index).ok().and_then(|i| leaders.get_mut(i)) {
                *l = p.leader_id.0;
            }
        }
        let producer = init_producer(&proxy).await?;
        tracing::info!(
            topic,
            partitions = count,
            producer_id = producer.producer_id,
            epoch = producer.producer_epoch,
            "offsets store on the upstream cluster"
        );
        Ok(Arc::new(UpstreamStore {
            proxy,
            topic: topic.to_string(),
            shards: (0..count)
                .map(|_| Shard {
                    queue: Mutex::new(Queue::default()),
                    wake: Notify::new(),
                    durable: watch::Sender::new(Durable::Upto(0)),
                    started: AtomicBool::new(false),
                    producer: Mutex::new(producer),
                    task: Mutex::new(None),
                })
                .collect(),
            leaders: RwLock::new(leaders),
            runtime: tokio::runtime::Handle::current(),
            fencing,
            shutdown,
        }))
    }

    /// Runs `f` to completion on the runtime from a blocking thread, unless the server shuts
    /// down first.
    fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, String> {
        self.runtime.block_on(async {
            tokio::select! {
                _ = self.shutdown.cancelled() => Err("the server is shutting down".to_string()),
                r = f => Ok(r),
            }
        })
    }

    /// The number of partitions, which is the number of coordinator shards.
    pub fn partitions(&self) -> usize {
        self.shards.len()
    }

    fn leader(&self, shard: usize) -> i32 {
        self.leaders.read().expect("leaders lock").get(shard).copied().unwrap_or(-1)
    }

    /// Re-reads the partition leaders from the upstream.
    async fn refresh_leaders(&self) {
        match self.proxy.refresh(Some(&[&self.topic])).await {
            Ok(meta) => {
                if let Some(t) = meta.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == self.topic)) {
                    let mut leaders = self.leaders.write().expect("leaders lock");
                    for p in &t.partitions {
                        if let Some(l) = usize::try_from(p.partition_index).ok().and_then(|i| leaders.get_mut(i)) {
                            *l = p.leader_id.0;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(topic = %self.topic, "refreshing the offsets topic's leaders: {e}"),
        }
    }

    /// Reads partition `shard` from its start to its high watermark.
    async fn read_partition(&self, shard: usize, each: &mut Replay<'_>) -> Result<u64, String> {
        let mut attempts = 0;
        let mut count = 0u64;
        let mut next: Option<i64> = None;
        let mut end: Option<i64> = None;
        loop {
            let result = async {
                let leader = self.leader(shard);
                if end.is_none() || next.is_none() {
                    let start = self.list_offset(leader, shard, -2).await?;
                    let hw = self.list_offset(leader, shard, -1).await?;
                    next = Some(next.map_or(start, |n| n.max(start)));
                    end = Some(hw);
                }
                while next.expect("set") < end.expect("set") {
                    let at = next.expect("set");
                    let records = self.fetch(leader, shard, at).await?;
                    let mut progressed = false;
                    let mut walk = records;
                    while walk.len() >= HEADER_LEN {
                        let Some(h) = BatchHeader::parse(&walk) else { break };
                        let total = h.total_len();
                        if h.batch_length < 0 || total > walk.len() {
                            break; // a partial batch at the end of the response
                        }
                        let batch = walk.split_to(total);
                        if h.last_offset() < at {
                            continue;
                        }
                        next = Some(h.last_offset() + 1);
                        progressed = true;
                        if h.is_control() {
                            continue;
                        }
                        let recs = read_records(&batch).map_err(|e| Attempt::Fatal(format!("offset {}: {e}", h.base_offset)))?;
                        for r in recs {
                            if r.offset < at || r.offset >= end.expect("set") {
                                continue;
                            }
                            let Some(key) = &r.key else { continue };
                            each(key, r.value.as_deref());
                            count += 1;
                        }
                    }
                    if !progressed {
                        return Err(Attempt::Retry(format!("no records at offset {at} below the high watermark {}", end.expect("set"))));
                    }
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(count),
                Err(Attempt::Fatal(m)) => return Err(m),
                Err(Attempt::Retry(m)) => {
                    attempts += 1;
                    if attempts >= READ_ATTEMPTS {
                        return Err(m);
                    }
                    tracing::debug!(shard, "reading the offsets topic: {m}; retrying");
                    self.refresh_leaders().await;
                    if m.contains("OFFSET_OUT_OF_RANGE") {
                        end = None; // the log start moved (retention): look again
                    }
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempts.min(10)))).await;
                }
            }
        }
    }

    async fn list_offset(&self, leader: i32, shard: usize, timestamp: i64) -> Result<i64, Attempt> {
        let (resp, _) = self
            .proxy
            .call(leader, 7, |_| {
                ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                    ListOffsetsTopic::default().with_name(name(&self.topic)).with_partitions(vec![
                        ListOffsetsPartition::default().with_partition_index(shard as i32).with_timestamp(timestamp),
                    ]),
                ])
            })
            .await
            .map_err(Attempt::from)?;
        let p =
            resp.topics.first().and_then(|t| t.partitions.first()).ok_or_else(|| Attempt::Retry("an empty ListOffsets response".into()))?;
        let code = ErrorCode::from(p.error_code);
        if code != ErrorCode::NONE {
            return Err(Attempt::kafka("ListOffsets", code));
        }
        Ok(p.offset)
    }

    async fn fetch(&self, leader: i32, shard: usize, offset: i64) -> Result<Bytes, Attempt> {
        let (resp, _) = self
            .proxy
            .call(leader, 12, |_| {
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(100)
                    .with_min_bytes(1)
                    .with_max_bytes(16 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default().with_topic(name(&self.topic)).with_partitions(vec![
                        FetchPartition::default().with_partition(shard as i32).with_fetch_offset(offset).with_partition_max_bytes(8 << 20),
                    ])])
            })
            .await
            .map_err(Attempt::from)?;
        let code = ErrorCode::from(resp.error_code);
        if code != ErrorCode::NONE {
            return Err(Attempt::kafka("Fetch", code));
        }
        let p =
            resp.responses.first().and_then(|t| t.partitions.first()).ok_or_else(|| Attempt::Retry("an empty Fetch response".into()))?;
        let code = ErrorCode::from(p.error_code);
        if code != ErrorCode::NONE {
            return Err(Attempt::kafka("Fetch", code));
        }
        Ok(p.records.clone().unwrap_or_default())
    }

    /// The producer task of one shard: sends what has queued, one batch at a time. Once
    /// `shutdown` is cancelled it starts no new batch (a batch in flight is seen through), so
    /// a reset knows nothing more will land once the task has ended.
    async fn produce_loop(self: Arc<Self>, shard: usize, shutdown: CancellationToken) {
        let producer = *self.shards[shard].producer.lock().expect("producer lock");
        let mut sequence: i32 = producer.base_sequence;
        let mut acked: i64 = 0;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let (batch, upto) = {
                let mut q = self.shards[shard].queue.lock().expect("queue lock");
                let mut bytes = 0usize;
                let mut n = 0usize;
                while n < q.records.len() && (n == 0 || bytes < MAX_BATCH_BYTES) {
                    let (k, v) = &q.records[n];
                    bytes += k.len() + v.as_ref().map_or(0, |v| v.len()) + 16;
                    n += 1;
                }
                let batch: Vec<(Bytes, Option<Bytes>)> = q.records.drain(..n).collect();
                (batch, acked + n as i64)
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.shards[shard].wake.notified() => {}
                }
                continue;
            }
            let stamp = ProducerStamp { base_sequence: sequence, ..producer };
            let refs: Vec<KeyValue<'_>> = batch.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
            let encoded = Bytes::from(encode_batch(&refs, crate::clock::now_ms(), stamp).expect("a non-empty batch"));
            match self.send_batch(shard, encoded, &shutdown).await {
                Ok(()) => {
                    sequence = sequence.wrapping_add(batch.len() as i32) & i32::MAX;
                    acked = upto;
                    self.shards[shard].durable.send_replace(Durable::Upto(acked));
                    metrics::counter!("corral_proxy_offsets_store_records_total").increment(batch.len() as u64);
                }
                Err(SendFailure::Fenced(reason)) => {
                    tracing::warn!(topic = %self.topic, partition = shard, "the offsets store's producer for the shard was fenced: {reason}");
                    self.shards[shard].durable.send_replace(Durable::Fenced(reason));
                    return;
                }
                Err(SendFailure::Other(reason)) => {
                    tracing::error!(topic = %self.topic, partition = shard, "the offsets store cannot write: {reason}; the shard stops serving");
                    self.shards[shard].durable.send_replace(Durable::Failed(reason));
                    return;
                }
            }
        }
    }

    /// Sends one batch until the upstream acknowledges it; `Err` only for a failure that
    /// retrying cannot fix (or shutdown before it was acknowledged).
    async fn send_batch(&self, shard: usize, records: Bytes, shutdown: &CancellationToken) -> Result<(), SendFailure> {
        let mut delay = Duration::from_millis(50);
        loop {
            let leader = self.leader(shard);
            let sent = self
                .proxy
                .call(leader, 9, |_| {
                    ProduceRequest::default().with_transactional_id(None).with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![
                        TopicProduceData::default().with_name(name(&self.topic)).with_partition_data(vec![
                            PartitionProduceData::default().with_index(shard as i32).with_records(Some(records.clone())),
                        ]),
                    ])
                })
                .await;
            let code = match sent {
                Ok((resp, _)) => resp
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .map_or(ErrorCode::UNKNOWN_SERVER_ERROR, |p| ErrorCode::from(p.error_code)),
                Err(e) if e.is_retriable() => {
                    tracing::debug!(partition = shard, "offsets store produce: {e}; retrying");
                    ErrorCode::REQUEST_TIMED_OUT
                }
                Err(e) => return Err(SendFailure::Other(e.to_string())),
            };
            match code {
                ErrorCode::NONE | ErrorCode::DUPLICATE_SEQUENCE_NUMBER => return Ok(()),
                c @ (ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::PRODUCER_FENCED) => {
                    return Err(SendFailure::Fenced(format!("Produce answered with error {c}")));
                }
                c if kafka_retriable(c) || c == ErrorCode::UNKNOWN_SERVER_ERROR => {
                    if shutdown.is_cancelled() && delay > Duration::from_secs(1) {
                        return Err(SendFailure::Other("shutting down before the upstream acknowledged".into()));
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    self.refresh_leaders().await;
                }
                c => return Err(SendFailure::Other(format!("Produce answered with error {c}"))),
            }
        }
    }

    /// Takes shard `shard` over from whichever proxy wrote it before: bumps the epoch of the
    /// shard's own producer and writes a fence record with it, acknowledged (acks=all), so the
    /// upstream refuses the previous owner's writes from here on and the partition read next
    /// holds everything it had acknowledged. Returns the producer, its next sequence after the
    /// fence.
    async fn fence(&self, shard: usize, f: &Fencing) -> Result<ProducerStamp, String> {
        let id = f.sharing.shard_producer(shard);
        let (init, _) = self
            .proxy
            .call_any(5, |_| {
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(StrBytes::from_string(id.clone()))))
                    .with_transaction_timeout_ms(60_000)
            })
            .await
            .map_err(|e| format!("InitProducerId for {id}: {e}"))?;
        let code = ErrorCode::from(init.error_code);
        if code != ErrorCode::NONE {
            return Err(format!("InitProducerId for {id} answered {code}"));
        }
        let stamp = ProducerStamp { producer_id: init.producer_id.0, producer_epoch: init.producer_epoch, base_sequence: 0 };
        let mut key = Vec::with_capacity(4 + f.sharing.group.len());
        key.extend_from_slice(&crate::coordinator::record::FENCE_KEY_VERSION.to_be_bytes());
        key.extend_from_slice(&(f.sharing.group.len() as i16).to_be_bytes());
        key.extend_from_slice(f.sharing.group.as_bytes());
        let mut value = Vec::with_capacity(14);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&f.owner.to_be_bytes());
        value.extend_from_slice(&crate::clock::now_ms().to_be_bytes());
        let batch = encode_batch(&[(Some(&key[..]), Some(&value[..]))], crate::clock::now_ms(), stamp).expect("one record");
        match self.send_batch(shard, Bytes::from(batch), &CancellationToken::new()).await {
            Ok(()) => {}
            Err(SendFailure::Fenced(m) | SendFailure::Other(m)) => return Err(format!("writing the fence record: {m}")),
        }
        tracing::debug!(topic = %self.topic, partition = shard, producer_id = stamp.producer_id, epoch = stamp.producer_epoch, "fenced the shard's previous owner");
        Ok(ProducerStamp { base_sequence: 1, ..stamp })
    }
}

/// A new idempotent producer id for writing the offsets topic.
async fn init_producer(proxy: &Proxy) -> Result<ProducerStamp, UpstreamError> {
    let (init, _) =
        proxy.call_any(5, |_| InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(-1)).await?;
    let code = ErrorCode::from(init.error_code);
    if code != ErrorCode::NONE {
        return Err(UpstreamError::Kafka { node: -1, what: "InitProducerId", code });
    }
    Ok(ProducerStamp { producer_id: init.producer_id.0, producer_epoch: init.producer_epoch, base_sequence: 0 })
}

/// One attempt of a read: retried (after a metadata refresh) or given up.
enum Attempt {
    Retry(String),
    Fatal(String),
}

impl Attempt {
    fn kafka(what: &str, code: ErrorCode) -> Attempt {
        // prints the code's name, which `read` looks for (OFFSET_OUT_OF_RANGE)
        let m = format!("{what} answered with error {code}");
        if kafka_retriable(code) || code == ErrorCode::OFFSET_OUT_OF_RANGE { Attempt::Retry(m) } else { Attempt::Fatal(m) }
    }
}

impl From<UpstreamError> for Attempt {
    fn from(e: UpstreamError) -> Self {
        if e.is_retriable() { Attempt::Retry(e.to_string()) } else { Attempt::Fatal(e.to_string()) }
    }
}

/// Creates the offsets topic: compacted, `partitions` partitions, the upstream's default
/// replication. An upstream without CreateTopics (librdkafka's mock cluster) gets it
/// auto-created by a Metadata request instead, with a warning: it is then not compacted.
async fn create_topic(proxy: &Proxy, topic: &str, partitions: i32) -> Result<(), UpstreamError> {
    if proxy.upstream_versions.get(kafka_protocol::messages::ApiKey::CreateTopics as i16).is_none() {
        tracing::warn!(
            topic,
            "the upstream cluster does not serve CreateTopics: asking it to auto-create the offsets topic (with its default partition count and cleanup policy, not compacted)"
        );
        proxy
            .call_any(12, |_| {
                MetadataRequest::default()
                    .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
                    .with_allow_auto_topic_creation(true)
            })
            .await?;
        return Ok(());
    }
    let (resp, _) = proxy
        .call_any(7, |_| {
            CreateTopicsRequest::default().with_timeout_ms(30_000).with_topics(vec![
                CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(-1).with_configs(
                    vec![
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_static_str("cleanup.policy"))
                            .with_value(Some(StrBytes::from_static_str("compact"))),
                    ],
                ),
            ])
        })
        .await?;
    match resp.topics.first().map(|t| ErrorCode::from(t.error_code)) {
        Some(ErrorCode::NONE) | Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {
            tracing::info!(topic, partitions, "created the offsets topic (cleanup.policy=compact)");
            Ok(())
        }
        Some(code) => Err(UpstreamError::Kafka { node: -1, what: "CreateTopics for the offsets topic", code }),
        None => Err(UpstreamError::Kafka { node: -1, what: "CreateTopics for the offsets topic", code: ErrorCode::UNKNOWN_SERVER_ERROR }),
    }
}

/// Waits until the upstream's metadata shows the new topic with a leader for every partition.
async fn wait_for_topic(proxy: &Proxy, topic: &str) -> Result<kafka_protocol::messages::MetadataResponse, UpstreamError> {
    let mut last = None;
    for _ in 0..100 {
        let meta = proxy.refresh(Some(&[topic])).await?;
        let ready = meta.topics.iter().any(|t| {
            ErrorCode::from(t.error_code) == ErrorCode::NONE
                && t.name.as_ref().is_some_and(|n| n.as_str() == topic)
                && !t.partitions.is_empty()
                && t.partitions.iter().all(|p| p.leader_id.0 >= 0)
        });
        if ready {
            return Ok(meta);
        }
        last = meta.topics.first().map(|t| ErrorCode::from(t.error_code));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(UpstreamError::Kafka {
        node: -1,
        what: "Metadata for the new offsets topic",
        code: last.unwrap_or(ErrorCode::LEADER_NOT_AVAILABLE),
    })
}

impl OffsetsStore for UpstreamStore {
    fn load(&self, shard: usize, each: &mut Replay<'_>) -> Result<(), LogError> {
        let count = self.block_on(self.read_partition(shard, each)).and_then(|r| r).map_err(|reason| LogError::Corrupt {
            file: format!("{}-{shard}", self.topic),
            offset: 0,
            reason,
        })?;
        if count > 0 {
            tracing::debug!(topic = %self.topic, partition = shard, records = count, "offsets store partition read");
        }
        Ok(())
    }

    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<i64> {
        let s = &self.shards[shard];
        if let Durable::Failed(m) = &*s.durable.borrow() {
            return Err(io::Error::other(m.clone()));
        }
        if let Durable::Fenced(m) = &*s.durable.borrow() {
            return Err(io::Error::other(m.clone()));
        }
        let mut q = s.queue.lock().expect("queue lock");
        q.records.extend(records.iter().map(|r| (r.key.clone(), r.value.clone())));
        q.appended += records.len() as i64;
        let at = q.appended;
        drop(q);
        s.wake.notify_one();
        Ok(at)
    }

    fn appended(&self, shard: usize) -> i64 {
        self.shards[shard].queue.lock().expect("queue lock").appended
    }

    fn wait_durable(&self, shard: usize, position: i64) -> BoxFuture<'_, io::Result<()>> {
        Box::pin(async move {
            let mut rx = self.shards[shard].durable.subscribe();
            let seen = rx
                .wait_for(|d| match d {
                    Durable::Upto(p) => *p >= position,
                    Durable::Failed(_) | Durable::Fenced(_) => true,
                })
                .await
                .map_err(|_| io::Error::other("the offsets store stopped"))?;
            match &*seen {
                Durable::Upto(_) => Ok(()),
                Durable::Failed(m) | Durable::Fenced(m) => Err(io::Error::other(m.clone())),
            }
        })
    }

    fn start(self: Arc<Self>, shard: usize, shutdown: CancellationToken) {
        if !self.shards[shard].started.swap(true, Ordering::SeqCst) {
            let stop = shutdown.child_token();
            let handle = tokio::spawn(self.clone().produce_loop(shard, stop.clone()));
            *self.shards[shard].task.lock().expect("task lock") = Some((stop, handle));
        }
    }

    /// Stops the shard's producer (waiting until it has stopped, so nothing it was sending
    /// lands after the reload reads the partition), drops what was queued but not
    /// acknowledged, and takes a fresh producer id (whatever sequence state the upstream had
    /// for the old one no longer matters).
    fn reset(&self, shard: usize) -> Result<(), LogError> {
        let s = &self.shards[shard];
        let fail = |reason: String| LogError::Io { what: format!("resetting {}-{shard}", self.topic), source: io::Error::other(reason) };
        if let Some((stop, handle)) = s.task.lock().expect("task lock").take() {
            stop.cancel();
            let _ = self.runtime.block_on(handle);
        }
        let producer = match &self.fencing {
            Some(f) => self.block_on(self.fence(shard, f)).and_then(|r| r).map_err(fail)?,
            None => self.block_on(init_producer(&self.proxy)).and_then(|r| r.map_err(|e| e.to_string())).map_err(fail)?,
        };
        *s.producer.lock().expect("producer lock") = producer;
        *s.queue.lock().expect("queue lock") = Queue::default();
        s.durable.send_replace(Durable::Upto(0));
        s.started.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn sync_all(&self) {
        // Acknowledged records are durable upstream already; what is still queued at shutdown
        // was never acknowledged to anyone.
    }

    fn fenced(&self, shard: usize) -> bool {
        matches!(*self.shards[shard].durable.borrow(), Durable::Fenced(_))
    }

    /// Stops the producer task (a batch in flight may still land: its epoch is fenced by
    /// whoever gains the shard), drops the queue, and fails whoever waits.
    fn release(&self, shard: usize) {
        let s = &self.shards[shard];
        if let Some((stop, _)) = &*s.task.lock().expect("task lock") {
            stop.cancel();
        }
        *s.queue.lock().expect("queue lock") = Queue::default();
        s.durable.send_replace(Durable::Failed("the shard is served by another proxy".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Mode};
    use crate::plane::DataPlane;
    use crate::proxy::membership::Sharing;

    /// An in-memory corral broker on a free port: the upstream.
    async fn broker() -> (String, tokio::sync::oneshot::Sender<()>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(crate::server::run(l, Config { ephemeral: true, ..Config::default() }, async move {
            let _ = rx.await;
        }));
        (addr, tx)
    }

    async fn proxy_over(up: &str) -> Arc<Proxy> {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = Config {
            mode: Mode::Proxy,
            ephemeral: true,
            listen: "127.0.0.1:0".into(),
            upstream: crate::config::parse_upstream(up).unwrap(),
            mirror_offsets: false,
            ..Config::default()
        };
        match super::super::open(&l, config, CancellationToken::new()).await.unwrap().ctx.plane {
            DataPlane::Proxy(p) => p,
            DataPlane::Broker(_) => unreachable!("proxy mode"),
        }
    }

    fn record(k: &str) -> RawRecord {
        RawRecord { key: Bytes::from(k.to_string()), value: Some(Bytes::from_static(b"v")) }
    }

    /// Every key read back from shard 0 (the fence records show as their key version).
    async fn keys(store: &Arc<UpstreamStore>) -> Vec<String> {
        let s = store.clone();
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            s.load(0, &mut |k, _| {
                let fence = k.get(..2).is_some_and(|v| i16::from_be_bytes([v[0], v[1]]) == crate::coordinator::record::FENCE_KEY_VERSION);
                keys.push(if fence { "fence".to_string() } else { String::from_utf8_lossy(k).into_owned() });
            })
            .unwrap();
            keys
        })
        .await
        .unwrap()
    }

    async fn take_over(store: &Arc<UpstreamStore>) {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.reset(0)).await.unwrap().unwrap();
        store.clone().start(0, CancellationToken::new());
    }

    /// Fencing, deterministically: proxy B taking shard 0 over from proxy A reads everything A
    /// had acknowledged, and from then on the upstream refuses A's appends (A learns it is
    /// fenced and acknowledges nothing more).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shard_taken_over_refuses_the_previous_owners_writes_and_keeps_what_it_acknowledged() {
        let (up, _stop) = broker().await;
        let (pa, pb) = (proxy_over(&up).await, proxy_over(&up).await);
        let sharing = Sharing::new("fence-test", 10_000);
        let topic = "fence-test-offsets";
        let a = UpstreamStore::open(pa, topic, 2, Some(Fencing { sharing: sharing.clone(), owner: 1 }), CancellationToken::new())
            .await
            .unwrap();
        let b = UpstreamStore::open(pb, topic, 2, Some(Fencing { sharing, owner: 2 }), CancellationToken::new()).await.unwrap();
        take_over(&a).await;
        let at = a.append(0, &[record("a1")]).unwrap();
        a.wait_durable(0, at).await.unwrap();
        assert!(!a.fenced(0));
        // B takes the shard: it reads what A acknowledged
        take_over(&b).await;
        assert_eq!(keys(&b).await, ["fence", "a1", "fence"]);
        // A, not knowing yet, appends: refused upstream, never acknowledged
        let at = a.append(0, &[record("a2")]).unwrap();
        let refused = a.wait_durable(0, at).await;
        assert!(refused.is_err(), "a stale owner's append was acknowledged");
        assert!(a.fenced(0), "the store says why: fenced");
        assert!(a.append(0, &[record("a3")]).is_err(), "a fenced store takes no more appends");
        let at = b.append(0, &[record("b1")]).unwrap();
        b.wait_durable(0, at).await.unwrap();
        assert_eq!(keys(&b).await, ["fence", "a1", "fence", "b1"], "nothing of the stale owner's landed");
        // and A taking it back fences B in turn
        take_over(&a).await;
        let at = b.append(0, &[record("b2")]).unwrap();
        assert!(b.wait_durable(0, at).await.is_err());
        assert_eq!(keys(&a).await, ["fence", "a1", "fence", "b1", "fence"]);
    }
}
