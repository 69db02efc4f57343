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
}

impl UpstreamStore {
    /// Makes sure the topic exists (created compacted with `partitions` partitions when it does
    /// not; an existing topic keeps its own count, which then is the number of shards) and
    /// gets a producer id for writing to it.
    pub async fn open(proxy: Arc<Proxy>, topic: &str, partitions: i32) -> Result<Arc<UpstreamStore>, UpstreamError> {
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
        }))
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
        let mut sequence: i32 = 0;
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
                Err(reason) => {
                    tracing::error!(topic = %self.topic, partition = shard, "the offsets store cannot write: {reason}; the shard stops serving");
                    self.shards[shard].durable.send_replace(Durable::Failed(reason));
                    return;
                }
            }
        }
    }

    /// Sends one batch until the upstream acknowledges it; `Err` only for a failure that
    /// retrying cannot fix (or shutdown before it was acknowledged).
    async fn send_batch(&self, shard: usize, records: Bytes, shutdown: &CancellationToken) -> Result<(), String> {
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
                Err(e) => return Err(e.to_string()),
            };
            match code {
                ErrorCode::NONE | ErrorCode::DUPLICATE_SEQUENCE_NUMBER => return Ok(()),
                c if kafka_retriable(c) || c == ErrorCode::UNKNOWN_SERVER_ERROR => {
                    if shutdown.is_cancelled() && delay > Duration::from_secs(1) {
                        return Err("shutting down before the upstream acknowledged".into());
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                    self.refresh_leaders().await;
                }
                c => return Err(format!("Produce answered with error {c}")),
            }
        }
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
        let count = self.runtime.block_on(self.read_partition(shard, each)).map_err(|reason| LogError::Corrupt {
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
                    Durable::Failed(_) => true,
                })
                .await
                .map_err(|_| io::Error::other("the offsets store stopped"))?;
            match &*seen {
                Durable::Upto(_) => Ok(()),
                Durable::Failed(m) => Err(io::Error::other(m.clone())),
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
        let producer = self.runtime.block_on(init_producer(&self.proxy)).map_err(|e| fail(e.to_string()))?;
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
}
