//! The group coordinator: Kafka's classic consumer-group protocol over lock-sharded, pure
//! shards.
//!
//! Groups live in `offsets.topic.num.partitions` shards, placed exactly as Kafka places them
//! ([`shard_for`]). Each shard is a pure state machine ([`shard::Shard`]); this module is its
//! runtime: one mutex per shard (covering the state machine, its timers and its parked
//! requests — never held across an `.await`), a timer task per shard, and the offsets log the
//! records go to. A reply is sent only after the records its request produced — and every
//! record appended before them — are durable.

pub mod api;
pub mod group;
pub mod log;
pub mod record;
pub mod shard;

#[cfg(test)]
mod checklist;
#[cfg(test)]
mod replay_props;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::codes;
use log::OffsetsStore;
use shard::{IdSource, Output, Reply, Shard, ShardConfig, TimerKey, TimerOp};

/// Identifies one request to a shard, so a parked JoinGroup or SyncGroup can be answered later.
pub type RequestId = u64;

/// Kafka's placement of a group: `abs(javaStringHashCode(group)) % partitions`, with Kafka's
/// `Utils.abs` (which maps i32::MIN to 0) — checklist item 1.
pub fn shard_for(group_id: &str, partitions: usize) -> usize {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs as usize % partitions
}

/// Milliseconds since the Unix epoch: the coordinator's clock.
pub fn now_ms() -> i64 {
    crate::broker::now_ms()
}

/// A shard's timers: the live deadline of each key, and a min-heap of `(deadline, key)`.
/// Re-arming a key to a later deadline (a heartbeat pushing its session timer out, the common
/// case) only updates the map; the key's heap entry is re-queued at the later deadline when it
/// comes up. A key has one queued entry unless it was moved earlier; entries that no longer
/// match their key's queued deadline are skipped.
#[derive(Debug, Default)]
struct Timers {
    by_key: crate::FastMap<TimerKey, Deadline>,
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(i64, TimerKey)>>,
}

/// When a key fires (`at`), and the deadline its heap entry is queued at (`queued` ≤ `at`).
#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: i64,
    queued: i64,
}

impl Timers {
    fn apply(&mut self, op: TimerOp) {
        match op {
            TimerOp::Set(key, at) => match self.by_key.get_mut(&key) {
                Some(d) if d.queued <= at => d.at = at,
                _ => {
                    self.by_key.insert(key.clone(), Deadline { at, queued: at });
                    self.heap.push(std::cmp::Reverse((at, key)));
                }
            },
            TimerOp::Cancel(key) => {
                self.by_key.remove(&key);
            }
        }
        // keep stale entries from piling up when keys are cancelled far more often than they fire
        if self.heap.len() > 64 && self.heap.len() > 4 * self.by_key.len() {
            self.heap = self
                .by_key
                .iter_mut()
                .map(|(k, d)| {
                    d.queued = d.at;
                    std::cmp::Reverse((d.at, k.clone()))
                })
                .collect();
        }
    }

    /// When the timer task should next look: the earliest queued deadline. A key re-armed
    /// later since it was queued makes this early; `pop_due` then re-queues it, so a key
    /// heartbeating steadily is re-queued about once per session timeout, not per heartbeat.
    fn earliest(&mut self) -> Option<i64> {
        while let Some(std::cmp::Reverse((at, key))) = self.heap.peek() {
            match self.by_key.get(key) {
                Some(d) if d.queued == *at => return Some(*at),
                _ => {
                    self.heap.pop();
                }
            }
        }
        None
    }

    /// Removes and returns the earliest timer due at `now`.
    fn pop_due(&mut self, now: i64) -> Option<TimerKey> {
        loop {
            let at = self.earliest()?;
            if at > now {
                return None;
            }
            let std::cmp::Reverse((_, key)) = self.heap.pop().expect("earliest saw it");
            let d = self.by_key.get_mut(&key).expect("earliest checked it");
            if d.at > now {
                // re-armed since it was queued: queue it at its deadline
                d.queued = d.at;
                self.heap.push(std::cmp::Reverse((d.at, key)));
                continue;
            }
            self.by_key.remove(&key);
            return Some(key);
        }
    }
}

/// Whether a shard serves requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardStatus {
    /// Replaying its log: group requests get COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    Active,
    /// Its log failed: requests get NOT_COORDINATOR until a restart reloads it.
    Failed,
}

/// Everything one shard's lock covers.
#[derive(Debug)]
struct ShardState {
    shard: Shard,
    status: ShardStatus,
    timers: Timers,
    /// Requests waiting for an answer from the state machine.
    parked: HashMap<RequestId, oneshot::Sender<Reply>>,
}

#[derive(Debug)]
struct ShardCell {
    /// The shard's lock. Held for "handle + append records + take reply senders"; never across
    /// an `.await`.
    state: Mutex<ShardState>,
    /// Wakes the shard's timer task when an earlier deadline is set.
    timer_wake: Notify,
}

/// Replies to send once a log position is durable.
struct Deliveries {
    shard: usize,
    position: i64,
    sends: Vec<(oneshot::Sender<Reply>, Reply)>,
}

/// The coordinator runtime.
#[derive(Debug)]
pub struct Coordinator {
    shards: Box<[ShardCell]>,
    next_request: AtomicU64,
    /// Where the shards' records go (the data dir's logs, or an upstream topic).
    pub(crate) log: Arc<dyn OffsetsStore>,
    shutdown: CancellationToken,
    /// Set when a shard's log cannot be loaded: start-up fails with it.
    fatal: Mutex<Option<String>>,
    /// Wakes whoever waits for a fatal error or for every shard to finish loading.
    load_events: Notify,
}

impl Coordinator {
    /// A coordinator with `partitions` shards over `log`. Every shard starts Loading: see
    /// [`Coordinator::load_shard`] and [`Coordinator::start`].
    pub fn new(config: ShardConfig, partitions: usize, log: Arc<dyn OffsetsStore>, shutdown: CancellationToken) -> Arc<Self> {
        let shards = (0..partitions)
            .map(|_| ShardCell {
                state: Mutex::new(ShardState {
                    shard: Shard::new(config.clone(), IdSource::Random),
                    status: ShardStatus::Loading,
                    timers: Timers::default(),
                    parked: HashMap::new(),
                }),
                timer_wake: Notify::new(),
            })
            .collect();
        Arc::new(Coordinator {
            shards,
            next_request: AtomicU64::new(1),
            log,
            shutdown,
            fatal: Mutex::new(None),
            load_events: Notify::new(),
        })
    }

    /// Number of shards (`offsets.topic.num.partitions`).
    pub fn partitions(&self) -> usize {
        self.shards.len()
    }

    /// The shard of a group.
    pub fn shard_of(&self, group_id: &str) -> usize {
        shard_for(group_id, self.shards.len())
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, ShardState> {
        self.shards[shard].state.lock().expect("shard lock poisoned")
    }

    /// Loads one shard: replays its log into a fresh state machine (requests meanwhile get
    /// COORDINATOR_LOAD_IN_PROGRESS), re-arms its timers, then serves. Blocking I/O.
    pub fn load_shard(&self, i: usize) -> Result<(), crate::log::LogError> {
        let mut fresh = Shard::new(self.lock(i).shard.config.clone(), IdSource::Random);
        fresh.begin_load();
        let now = now_ms();
        let mut bad = None;
        let mut count = 0u64;
        self.log.load(i, &mut |key, value| {
            count += 1;
            match record::Record::decode_parts(key, value) {
                Ok(r) => fresh.replay(now, r),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            }
        })?;
        if let Some(e) = bad {
            return Err(crate::log::LogError::Corrupt { file: format!("coordinator/{i:02}"), offset: 0, reason: e.to_string() });
        }
        let out = fresh.finish_load(now_ms());
        let mut st = self.lock(i);
        st.shard = fresh;
        st.status = ShardStatus::Active;
        let d = self.settle(i, &mut st, out);
        drop(st);
        debug_assert!(d.sends.is_empty());
        self.shards[i].timer_wake.notify_one();
        if count > 0 {
            tracing::debug!(shard = i, records = count, "coordinator shard loaded");
        }
        Ok(())
    }

    /// Starts the store's background work (flushers, compaction) of every loaded shard
    /// (after [`Self::load_all`]).
    pub fn spawn_flushers(&self) {
        for i in 0..self.shards.len() {
            self.log.clone().start(i, self.shutdown.clone());
        }
    }

    /// Loads every shard now (tests and tools; the server loads in the background).
    pub fn load_all(&self) -> Result<(), crate::log::LogError> {
        for i in 0..self.shards.len() {
            self.load_shard(i)?;
        }
        Ok(())
    }

    /// Starts the coordinator's tasks: shard loading (in the background: groups of a shard
    /// not yet loaded answer COORDINATOR_LOAD_IN_PROGRESS), the log flushers, timers,
    /// compaction and gauges.
    pub fn start(self: &Arc<Self>) {
        let started = std::time::Instant::now();
        let loaded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        if self.loaded() {
            self.spawn_flushers();
        }
        // As many loaders as cores, each taking the next shard: more would only add threads
        // and read buffers, not speed.
        let pending: Vec<usize> = (0..self.shards.len()).filter(|i| self.lock(*i).status == ShardStatus::Loading).collect();
        let queue = Arc::new(Mutex::new(pending.into_iter()));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(self.shards.len());
        for _ in 0..workers {
            let me = self.clone();
            let (loaded, queue) = (loaded.clone(), queue.clone());
            tokio::task::spawn_blocking(move || {
                loop {
                    let Some(i) = queue.lock().expect("load queue").next() else { return };
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| me.load_shard(i))) {
                        Ok(Ok(())) => {
                            me.log.clone().start(i, me.shutdown.clone());
                            if loaded.fetch_add(1, Ordering::SeqCst) + 1 == me.shards.len() {
                                tracing::info!(shards = me.shards.len(), took = ?started.elapsed(), "coordinator loaded");
                                me.load_events.notify_waiters();
                            }
                        }
                        Ok(Err(e)) => return me.fail(format!("cannot load coordinator shard {i}: {e}")),
                        Err(_) => return me.fail(format!("loading coordinator shard {i} panicked")),
                    }
                }
            });
        }
        self.spawn_timers();
    }

    fn fail(&self, message: String) {
        tracing::error!("{message}");
        *self.fatal.lock().expect("fatal lock") = Some(message);
        self.load_events.notify_waiters();
    }

    /// Resolves with the message of a fatal load error, if one ever happens.
    pub async fn fatal_error(&self) -> String {
        loop {
            let notified = self.load_events.notified();
            if let Some(m) = self.fatal.lock().expect("fatal lock").clone() {
                return m;
            }
            notified.await;
        }
    }

    /// Makes every appended record durable (shutdown).
    pub fn sync_all(&self) {
        self.log.sync_all();
    }

    /// Whether every shard serves.
    pub fn loaded(&self) -> bool {
        (0..self.shards.len()).all(|i| self.lock(i).status == ShardStatus::Active)
    }

    /// Starts the timer task of every shard, and the task that publishes group gauges.
    fn spawn_timers(self: &Arc<Self>) {
        for i in 0..self.shards.len() {
            let me = self.clone();
            tokio::spawn(async move { me.run_timers(i).await });
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = me.shutdown.cancelled() => return,
                    _ = tick.tick() => me.publish_gauges(),
                }
            }
        });
    }

    /// Sets the gauges of groups per state and of members.
    fn publish_gauges(&self) {
        let mut members = 0usize;
        let mut states: HashMap<&'static str, usize> = HashMap::new();
        for i in 0..self.shards.len() {
            let st = self.lock(i);
            for g in st.shard.groups() {
                *states.entry(g.state.name()).or_default() += 1;
                members += g.members.len();
            }
        }
        for state in ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"] {
            metrics::gauge!("corral_groups", "state" => state).set(states.get(state).copied().unwrap_or(0) as f64);
        }
        metrics::gauge!("corral_group_members").set(members as f64);
    }

    async fn run_timers(self: Arc<Self>, shard: usize) {
        loop {
            let next = self.lock(shard).timers.earliest();
            let sleep = match next {
                Some(at) => Duration::from_millis((at - now_ms()).max(0) as u64),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = self.shards[shard].timer_wake.notified() => continue,
                _ = tokio::time::sleep(sleep) => {}
            }
            let d = {
                let mut st = self.lock(shard);
                self.settle(shard, &mut st, Output::default())
            };
            self.deliver(d).await;
        }
    }

    /// Takes an output under the shard lock: arms its timers, appends its records, fires any
    /// timers now due (so a zero delay completes in the same step), and collects the reply
    /// senders to use once the records are durable.
    fn settle(&self, shard: usize, st: &mut ShardState, mut out: Output) -> Deliveries {
        let mut sends = Vec::new();
        let mut position = None;
        loop {
            let before = st.timers.earliest();
            for op in out.timers.drain(..) {
                st.timers.apply(op);
            }
            if st.timers.earliest() < before || before.is_none() {
                self.shards[shard].timer_wake.notify_one();
            }
            if !out.records.is_empty() {
                let raws: Vec<record::RawRecord> = out.records.iter().map(|r| r.encode()).collect();
                match self.log.append(shard, &raws) {
                    Ok(p) => position = Some(p),
                    Err(e) => {
                        tracing::error!(shard, "offsets log append failed, shard stops serving: {e}");
                        st.status = ShardStatus::Failed;
                    }
                }
            }
            for (id, reply) in out.replies.drain(..) {
                if let Some(tx) = st.parked.remove(&id) {
                    sends.push((tx, reply));
                }
            }
            let now = now_ms();
            match st.timers.pop_due(now) {
                Some(key) => out = st.shard.on_timer(now, &key),
                None => break,
            }
        }
        let position = position.unwrap_or_else(|| self.log.appended(shard));
        Deliveries { shard, position, sends }
    }

    async fn deliver(&self, d: Deliveries) {
        if d.sends.is_empty() {
            return;
        }
        if let Err(e) = self.log.wait_durable(d.shard, d.position).await {
            tracing::error!(shard = d.shard, "offsets log sync failed: {e}");
            self.lock(d.shard).status = ShardStatus::Failed;
            for (tx, reply) in d.sends {
                let _ = tx.send(api::error_like(&reply, codes::NOT_COORDINATOR));
            }
            return;
        }
        for (tx, reply) in d.sends {
            let _ = tx.send(reply);
        }
    }

    /// Runs one input through a shard and waits for its answer. `None` if the shard is not
    /// serving (the status says why).
    async fn call(
        &self,
        shard: usize,
        input: impl FnOnce(&mut Shard, i64, RequestId) -> Output,
    ) -> Result<Reply, ShardStatus> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let d = {
            let mut st = self.lock(shard);
            if st.status != ShardStatus::Active {
                return Err(st.status);
            }
            st.parked.insert(id, tx);
            let out = input(&mut st.shard, now_ms(), id);
            self.settle(shard, &mut st, out)
        };
        self.deliver(d).await;
        match rx.await {
            Ok(reply) => Ok(reply),
            // The state machine dropped the request without answering: only at shutdown.
            Err(_) => Err(ShardStatus::Failed),
        }
    }

    /// Reads a shard's state under its lock.
    fn read<T>(&self, shard: usize, f: impl FnOnce(&Shard) -> T) -> Result<T, ShardStatus> {
        let st = self.lock(shard);
        if st.status != ShardStatus::Active {
            return Err(st.status);
        }
        Ok(f(&st.shard))
    }

    /// Tombstones the offsets of a deleted topic in every group.
    pub async fn on_topic_deleted(&self, topic: &str) {
        for i in 0..self.shards.len() {
            let d = {
                let mut st = self.lock(i);
                if st.status != ShardStatus::Active {
                    continue;
                }
                let out = st.shard.on_topic_deleted(now_ms(), topic);
                self.settle(i, &mut st, out)
            };
            self.deliver(d).await;
        }
    }

    /// Shutdown: every parked JoinGroup and SyncGroup is answered NOT_COORDINATOR, as when
    /// Kafka unloads a partition.
    pub fn fail_parked(&self) {
        for i in 0..self.shards.len() {
            let mut st = self.lock(i);
            let replies = st.shard.fail_parked(codes::NOT_COORDINATOR);
            for (id, reply) in replies {
                if let Some(tx) = st.parked.remove(&id) {
                    let _ = tx.send(reply);
                }
            }
        }
    }

    /// Groups per state, summed over shards (for metrics and tests).
    pub fn group_counts(&self) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::new();
        for i in 0..self.shards.len() {
            for (_, _, state) in self.lock(i).shard.list() {
                *counts.entry(state).or_default() += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use crate::config::{Config, HostPort};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    fn key(m: &str) -> TimerKey {
        TimerKey::Heartbeat { group: "g".into(), member: m.into() }
    }

    /// Re-arming later, earlier, cancelling: each key fires once, at its last deadline.
    #[test]
    fn timers_fire_at_the_last_deadline_set() {
        let mut t = Timers::default();
        t.apply(TimerOp::Set(key("a"), 100));
        t.apply(TimerOp::Set(key("a"), 200));
        t.apply(TimerOp::Set(key("b"), 150));
        // "a" was queued at 100: the timer task looks then, finds it re-armed, re-queues it
        assert_eq!(t.earliest(), Some(100));
        assert_eq!(t.pop_due(149), None);
        assert_eq!(t.earliest(), Some(150));
        assert_eq!(t.pop_due(150), Some(key("b")));
        assert_eq!(t.pop_due(199), None);
        assert_eq!(t.pop_due(200), Some(key("a")));
        assert_eq!(t.pop_due(1_000), None);
        // moved earlier: fires at the earlier deadline only
        t.apply(TimerOp::Set(key("c"), 300));
        t.apply(TimerOp::Set(key("c"), 100));
        assert_eq!(t.pop_due(100), Some(key("c")));
        assert_eq!(t.pop_due(1_000), None);
        // earlier, then later again than the first: fires at the last
        t.apply(TimerOp::Set(key("d"), 300));
        t.apply(TimerOp::Set(key("d"), 100));
        t.apply(TimerOp::Set(key("d"), 400));
        assert_eq!(t.pop_due(399), None);
        assert_eq!(t.pop_due(400), Some(key("d")));
        // cancelled: never fires
        t.apply(TimerOp::Set(key("e"), 10));
        t.apply(TimerOp::Cancel(key("e")));
        assert_eq!(t.pop_due(1_000), None);
        // heartbeats far more often than deadlines pass: the heap stays small
        for i in 0..10_000 {
            t.apply(TimerOp::Set(key("f"), 2_000 + i));
        }
        assert!(t.heap.len() <= 2, "{} entries", t.heap.len());
        assert_eq!(t.pop_due(11_998), None);
        assert_eq!(t.pop_due(11_999), Some(key("f")));
    }

    fn coordinator() -> (Arc<Coordinator>, Broker) {
        let config = Config::default();
        let broker = Broker::open(Arc::new(config.clone()), HostPort { host: "h".into(), port: 1 }, "c".into(), Arc::new(crate::log::datadir::DataDir::memory())).unwrap();
        let (p, o) = broker.validate_new_topic("t", 2, 1, &Default::default()).unwrap();
        broker.create_topic("t", p, o).unwrap();
        let data = Arc::new(crate::log::datadir::DataDir::memory());
        let logs = Arc::new(log::ShardLogs::new(data, 50, Default::default()));
        let c = Coordinator::new(ShardConfig::from_config(&config), 50, logs, CancellationToken::new());
        c.load_all().unwrap();
        c.spawn_flushers();
        (c, broker)
    }

    /// Checklist 6: while a shard loads, group APIs answer COORDINATOR_LOAD_IN_PROGRESS and
    /// Heartbeat answers NONE. Checklist 99: OffsetFetch v1 copies a group error into every
    /// partition; v2+ puts it at the top level.
    #[tokio::test]
    async fn item_06_99_a_loading_shard() {
        let (c, broker) = coordinator();
        let g = "loading-group";
        c.lock(c.shard_of(g)).status = ShardStatus::Loading;
        let plane = crate::plane::DataPlane::Broker(Arc::new(broker));
        let caller = api::Caller { coordinator: &c, plane: &plane, client_id: "x", client_host: "/127.0.0.1".into() };
        let gid = GroupId(StrBytes::from_static_str(g));
        let j = api::join_group(&caller, 5, JoinGroupRequest::default().with_group_id(gid.clone()).with_session_timeout_ms(10_000)).await;
        assert_eq!(j.error_code, codes::COORDINATOR_LOAD_IN_PROGRESS);
        let h = api::heartbeat(&caller, 3, HeartbeatRequest::default().with_group_id(gid.clone())).await;
        assert_eq!(h.error_code, codes::NONE);
        let topic = || offset_fetch_request::OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_indexes(vec![0, 1]);
        let f1 = api::offset_fetch(&caller, 1, OffsetFetchRequest::default().with_group_id(gid.clone()).with_topics(Some(vec![topic()]))).await;
        assert!(f1.topics[0].partitions.iter().all(|p| p.error_code == codes::COORDINATOR_LOAD_IN_PROGRESS && p.committed_offset == -1));
        let f3 = api::offset_fetch(&caller, 3, OffsetFetchRequest::default().with_group_id(gid.clone()).with_topics(Some(vec![topic()]))).await;
        assert_eq!(f3.error_code, codes::COORDINATOR_LOAD_IN_PROGRESS);
        let commit = OffsetCommitRequest::default().with_group_id(gid.clone()).with_generation_id_or_member_epoch(-1).with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()]),
        ]);
        let oc = api::offset_commit(&caller, 8, commit).await;
        assert_eq!(oc.topics[0].partitions[0].error_code, codes::COORDINATOR_LOAD_IN_PROGRESS);
        let d = api::describe_groups(&caller, 5, DescribeGroupsRequest::default().with_groups(vec![gid.clone()]));
        assert_eq!(d.groups[0].error_code, codes::COORDINATOR_LOAD_IN_PROGRESS);
        let l = api::list_groups(&caller, 4, ListGroupsRequest::default());
        assert_eq!(l.error_code, codes::COORDINATOR_LOAD_IN_PROGRESS);
        // other shards keep serving
        let other = GroupId(StrBytes::from_static_str("a-different-group"));
        assert_ne!(c.shard_of("a-different-group"), c.shard_of(g));
        let j = api::join_group(&caller, 3, JoinGroupRequest::default()
            .with_group_id(other)
            .with_session_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]))
            .await;
        assert_eq!(j.error_code, codes::NONE);
    }

    /// Checklist 1: Java String.hashCode over UTF-16 units, wrapping, Kafka's abs, modulo.
    #[test]
    fn placement_matches_kafka() {
        // "foo".hashCode() = 101574; 101574 % 50 = 24
        assert_eq!(shard_for("foo", 50), 24);
        assert_eq!(shard_for("", 50), 0);
        // "polygenelubricants".hashCode() == i32::MIN in Java: Kafka's abs maps it to 0
        assert_eq!(shard_for("polygenelubricants", 50), 0);
        // a negative hash: "Aa".repeat(5)... uses abs; and a non-BMP char counts as two units
        let h = |s: &str| {
            let mut h: i32 = 0;
            for u in s.encode_utf16() {
                h = h.wrapping_mul(31).wrapping_add(u as i32);
            }
            h
        };
        assert!(h("consumer-group-ümlaut-😀") != 0);
        assert_eq!(shard_for("consumer-group-ümlaut-😀", 50), (h("consumer-group-ümlaut-😀").unsigned_abs() % 50) as usize);
    }

    #[test]
    fn timers_replace_cancel_and_pop_in_order() {
        let mut t = Timers::default();
        let k = |g: &str| TimerKey::Join { group: g.to_string() };
        t.apply(TimerOp::Set(k("a"), 10));
        t.apply(TimerOp::Set(k("b"), 5));
        t.apply(TimerOp::Set(k("a"), 20));
        t.apply(TimerOp::Set(k("c"), 7));
        t.apply(TimerOp::Cancel(k("c")));
        assert_eq!(t.earliest(), Some(5));
        assert_eq!(t.pop_due(9), Some(k("b")));
        assert_eq!(t.pop_due(19), None);
        assert_eq!(t.pop_due(20), Some(k("a")));
        assert!(t.by_key.is_empty());
        assert_eq!(t.earliest(), None);
    }
}
