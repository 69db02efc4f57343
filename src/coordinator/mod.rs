//! The group coordinator: Kafka's classic consumer-group protocol over lock-sharded, pure
//! shards.
//!
//! Groups live in `offsets.topic.num.partitions` shards, placed exactly as Kafka places them
//! ([`shard_for`]). Each shard is a pure state machine ([`shard::Shard`]); this module is its
//! runtime: one mutex per shard (covering the state machine, its timers and its parked
//! requests — never held across an `.await`), a timer task per shard, and the offsets log the
//! records go to. A reply is sent only after the records its request produced — and every
//! record appended before them — are durable.
//!
//! # When the store fails
//!
//! A failed append or sync does not stop the shard for good. The requests whose records were
//! not made durable are answered with the error Kafka maps a storage failure to
//! (NOT_COORDINATOR); the shard stops serving (COORDINATOR_LOAD_IN_PROGRESS, as while it
//! loads), its parked requests are answered NOT_COORDINATOR, the store discards what was never
//! durable, and the shard is loaded again from what is left — exactly what was acknowledged —
//! retried with backoff while the storage keeps failing. Its in-memory state is rebuilt, so a
//! change whose record failed (a commit, a static member's replacement) is undone.

pub mod answer;
pub mod api;
pub mod consumer;
pub mod group;
pub mod log;
pub mod record;
pub mod shard;

#[cfg(test)]
mod checklist;
#[cfg(test)]
mod checklist_848;
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

use crate::error::ErrorCode;
use answer::{Answer, Waiting};
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

use crate::clock::now_ms;

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
    /// A request got no answer: dropped at shutdown, or by a reload after a store failure
    /// (NOT_COORDINATOR).
    Failed,
    /// Another proxy serves the shard (several proxies share the coordinator): NOT_COORDINATOR.
    NotOwned,
}

/// Everything one shard's lock covers.
#[derive(Debug)]
struct ShardState {
    shard: Shard,
    status: ShardStatus,
    timers: Timers,
    /// Requests waiting for an answer from the state machine, each by its kind of answer.
    parked: HashMap<RequestId, Waiting>,
    /// Counts reloads after store failures: a reply whose records were appended before the
    /// latest reload must not go out as a success, whatever the store says of its position.
    incarnation: u64,
    /// A reload after a store failure is under way.
    reloading: bool,
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
    sends: Vec<(Waiting, Reply)>,
    /// The shard's incarnation when the records were appended.
    incarnation: u64,
    /// An append failed: the replies carry this error, and the shard is reloaded.
    failed: bool,
}

/// The coordinator runtime.
#[derive(Debug)]
pub struct Coordinator {
    /// Itself, for the reload tasks it starts.
    me: std::sync::Weak<Coordinator>,
    shards: Box<[ShardCell]>,
    next_request: AtomicU64,
    /// Where the shards' records go (the data dir's logs, or an upstream topic).
    pub(crate) log: Arc<dyn OffsetsStore>,
    shutdown: CancellationToken,
    /// Set when a shard's log cannot be loaded: start-up fails with it.
    fatal: Mutex<Option<String>>,
    /// Wakes whoever waits for a fatal error or for every shard to finish loading.
    load_events: Notify,
    /// Woken when a shard is given up because the store found it fenced (another proxy took
    /// it): the proxy's group membership joins again.
    pub fenced: Notify,
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
                    incarnation: 0,
                    reloading: false,
                }),
                timer_wake: Notify::new(),
            })
            .collect();
        Arc::new_cyclic(|me| Coordinator {
            me: me.clone(),
            shards,
            next_request: AtomicU64::new(1),
            log,
            shutdown,
            fatal: Mutex::new(None),
            load_events: Notify::new(),
            fenced: Notify::new(),
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
        let (fresh, out) = self.read_shard(i)?;
        self.install(i, fresh, out, None);
        Ok(())
    }

    /// Rebuilds shard `i` from its log, without touching the live one.
    fn read_shard(&self, i: usize) -> Result<(Shard, Output), crate::log::LogError> {
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
        if count > 0 {
            tracing::debug!(shard = i, records = count, "coordinator shard loaded");
        }
        let out = fresh.finish_load(now_ms());
        Ok((fresh, out))
    }

    /// Makes a rebuilt shard the live one and serves it (ending a reload, if one ran), unless
    /// the shard changed hands since the load began (`incarnation` is no longer its own).
    fn install(&self, i: usize, fresh: Shard, out: Output, incarnation: Option<u64>) -> bool {
        let mut st = self.lock(i);
        if incarnation.is_some_and(|inc| inc != st.incarnation) {
            return false;
        }
        st.shard = fresh;
        st.status = ShardStatus::Active;
        st.reloading = false;
        st.timers = Timers::default();
        let d = self.settle(i, &mut st, out);
        drop(st);
        debug_assert!(d.sends.is_empty());
        self.shards[i].timer_wake.notify_one();
        true
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
        // none with nothing to load (an in-memory data dir): no threads started for nothing
        let workers = if pending.is_empty() { 0 } else { std::thread::available_parallelism().map_or(2, |n| n.get()).min(pending.len()) };
        let queue = Arc::new(Mutex::new(pending.into_iter()));
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
                *states.entry(g.state_name()).or_default() += 1;
                members += g.members.len() + g.consumer.as_ref().map_or(0, |c| c.members.len());
            }
        }
        for state in ["Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Assigning", "Reconciling"] {
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
        let mut failed = false;
        loop {
            let before = st.timers.earliest();
            for op in out.timers.drain(..) {
                st.timers.apply(op);
            }
            if st.timers.earliest() < before || before.is_none() {
                self.shards[shard].timer_wake.notify_one();
            }
            if !out.records.is_empty() && !failed {
                let raws: Vec<record::RawRecord> = out.records.iter().map(|r| r.encode()).collect();
                match self.log.append(shard, &raws) {
                    Ok(p) => position = Some(p),
                    Err(e) => {
                        tracing::error!(shard, "offsets log append failed: {e}; the shard reloads from what is durable");
                        st.status = ShardStatus::Loading;
                        failed = true;
                    }
                }
            }
            for (id, reply) in out.replies.drain(..) {
                if let Some(tx) = st.parked.remove(&id) {
                    sends.push((tx, reply));
                }
            }
            if failed {
                break;
            }
            let now = now_ms();
            match st.timers.pop_due(now) {
                Some(key) => out = st.shard.on_timer(now, &key),
                None => break,
            }
        }
        let position = position.unwrap_or_else(|| self.log.appended(shard));
        Deliveries { shard, position, sends, incarnation: st.incarnation, failed }
    }

    async fn deliver(&self, d: Deliveries) {
        // Kafka maps a storage failure (KAFKA_STORAGE_ERROR) to NOT_COORDINATOR for the group apis
        let failure = Some(ErrorCode::NOT_COORDINATOR);
        if d.failed {
            for (waiting, reply) in d.sends {
                waiting.send(reply, failure);
            }
            self.after_store_failure(d.shard);
            return;
        }
        if d.sends.is_empty() {
            return;
        }
        if let Err(e) = self.log.wait_durable(d.shard, d.position).await {
            tracing::error!(shard = d.shard, "offsets log sync failed: {e}; the shard reloads from what is durable");
            for (waiting, reply) in d.sends {
                waiting.send(reply, failure);
            }
            self.after_store_failure(d.shard);
            return;
        }
        let current = self.lock(d.shard).incarnation == d.incarnation;
        for (waiting, reply) in d.sends {
            waiting.send(reply, if current { None } else { failure });
        }
    }

    /// A failed append or sync: a shard the store found fenced (another proxy took it) is
    /// given up; any other failure reloads it.
    fn after_store_failure(&self, shard: usize) {
        if self.log.fenced(shard) {
            tracing::warn!(shard, "another proxy took the shard (its producer was fenced): giving it up");
            self.lose(shard);
            self.fenced.notify_one();
        } else {
            self.reload(shard);
        }
    }

    /// Stops serving a shard at once (under its lock): bumps its incarnation (replies to
    /// records appended before go out as NOT_COORDINATOR), drops its timers and answers its
    /// parked requests NOT_COORDINATOR.
    fn stop_serving(st: &mut ShardState, status: ShardStatus) {
        st.status = status;
        st.incarnation += 1;
        st.timers = Timers::default();
        for (id, reply) in st.shard.fail_parked(ErrorCode::NOT_COORDINATOR) {
            if let Some(waiting) = st.parked.remove(&id) {
                // in the failure's shape: a parked join learns no member id (checklist 106)
                waiting.send(reply, Some(ErrorCode::NOT_COORDINATOR));
            }
        }
        // anything else still parked learns of it as a closed channel (NOT_COORDINATOR)
        st.parked.clear();
    }

    /// Reloads a shard after a store failure (see the module docs): at once it stops serving
    /// and answers its parked requests; a task then has the store discard what was never
    /// durable and loads the shard again, retrying with backoff while that fails.
    fn reload(&self, shard: usize) {
        let incarnation = {
            let mut st = self.lock(shard);
            if st.reloading || st.status == ShardStatus::NotOwned {
                return;
            }
            st.reloading = true;
            Self::stop_serving(&mut st, ShardStatus::Loading);
            st.incarnation
        };
        metrics::counter!("corral_coordinator_shard_reloads_total").increment(1);
        self.spawn_load(shard, incarnation, true);
    }

    /// Loads a shard in the background for incarnation `incarnation`: the store resets it (drops
    /// what was never durable; a shared store fences the previous owner), then it is read and
    /// served. Retried with backoff while it fails; abandoned once the shard changed hands.
    fn spawn_load(&self, shard: usize, incarnation: u64, reload: bool) {
        let Some(me) = self.me.upgrade() else { return };
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            loop {
                if me.lock(shard).incarnation != incarnation {
                    return;
                }
                let m = me.clone();
                let result = tokio::task::spawn_blocking(move || {
                    m.log.reset(shard)?;
                    m.read_shard(shard)
                })
                .await;
                match result {
                    Ok(Ok((fresh, out))) => {
                        // the flusher runs before the first request can append again
                        me.log.clone().start(shard, me.shutdown.clone());
                        // a reload after a failure is news; a gained shard is one of many, summed up
                        // by the membership's line
                        match me.install(shard, fresh, out, Some(incarnation)) {
                            true if reload => tracing::info!(shard, "coordinator shard reloaded after a store failure"),
                            true => tracing::debug!(shard, "coordinator shard loaded: this proxy serves it"),
                            false => {}
                        }
                        return;
                    }
                    Ok(Err(_)) if me.shutdown.is_cancelled() => return,
                    Ok(Err(e)) => tracing::warn!(shard, "loading the shard failed: {e}; retrying in {delay:?}"),
                    Err(e) => tracing::error!(shard, "loading the shard panicked: {e}; retrying in {delay:?}"),
                }
                tokio::select! {
                    _ = me.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
    }

    /// Marks every shard as served elsewhere (a proxy sharing the coordinator starts owning
    /// none; the group's assignment gives it shards with [`Coordinator::gain`]).
    pub fn disown_all(&self) {
        for i in 0..self.shards.len() {
            self.lock(i).status = ShardStatus::NotOwned;
        }
    }

    /// Whether this proxy owns `shard` (served, or loading).
    pub fn owns(&self, shard: usize) -> bool {
        shard < self.shards.len() && self.lock(shard).status != ShardStatus::NotOwned
    }

    /// A shard this proxy now owns: it loads in the background (groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS meanwhile) — the store fences the previous owner before the
    /// shard is read — and serves once loaded.
    pub fn gain(&self, shard: usize) {
        let incarnation = {
            let mut st = self.lock(shard);
            if st.status != ShardStatus::NotOwned {
                return;
            }
            st.status = ShardStatus::Loading;
            st.reloading = false;
            st.incarnation += 1;
            st.incarnation
        };
        self.spawn_load(shard, incarnation, false);
    }

    /// A shard another proxy serves from now on: it stops serving at once (parked requests
    /// answer NOT_COORDINATOR), its groups leave memory, and the store stops writing it.
    pub fn lose(&self, shard: usize) {
        {
            let mut st = self.lock(shard);
            if st.status == ShardStatus::NotOwned {
                return;
            }
            st.reloading = false;
            Self::stop_serving(&mut st, ShardStatus::NotOwned);
            st.shard = Shard::new(st.shard.config.clone(), IdSource::Random);
        }
        self.log.release(shard);
        tracing::debug!(shard, "coordinator shard given up: another proxy serves it");
    }

    /// Runs one input through a shard and waits for its answer, of the kind `A` the input's
    /// request expects. `Err` if the shard is not serving (the status says why).
    pub(crate) async fn call<A: Answer>(
        &self,
        shard: usize,
        input: impl FnOnce(&mut Shard, i64, RequestId) -> Output,
    ) -> Result<A, ShardStatus> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let d = {
            let mut st = self.lock(shard);
            if st.status != ShardStatus::Active {
                return Err(st.status);
            }
            st.parked.insert(id, A::waiting(tx));
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
    pub(crate) fn read<T>(&self, shard: usize, f: impl FnOnce(&Shard) -> T) -> Result<T, ShardStatus> {
        let st = self.lock(shard);
        if st.status != ShardStatus::Active {
            return Err(st.status);
        }
        Ok(f(&st.shard))
    }

    /// A transaction's COMMIT or ABORT marker for offsets shard `shard` (the
    /// `__consumer_offsets` partition the transaction added): the producer's pending offsets
    /// there become committed or are dropped, durably. A shard still loading is waited for.
    pub async fn end_txn(&self, shard: usize, producer_id: i64, commit: bool) -> Result<(), ErrorCode> {
        if shard >= self.shards.len() {
            return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        }
        loop {
            match self.call::<answer::TxnEnded>(shard, move |sh, now, id| sh.end_txn(now, id, producer_id, commit)).await {
                Ok(_) => return Ok(()),
                Err(ShardStatus::Loading) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                Err(_) => return Err(ErrorCode::NOT_COORDINATOR),
            }
        }
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
            let replies = st.shard.fail_parked(ErrorCode::NOT_COORDINATOR);
            for (id, reply) in replies {
                if let Some(waiting) = st.parked.remove(&id) {
                    waiting.send(reply, None);
                }
            }
        }
    }

    /// Groups per state, summed over shards (for metrics and tests).
    pub fn group_counts(&self) -> HashMap<&'static str, usize> {
        let mut counts = HashMap::new();
        for i in 0..self.shards.len() {
            for g in self.lock(i).shard.list() {
                *counts.entry(g.state).or_default() += 1;
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

    /// A broker on an in-memory data dir holding topic "t" (2 partitions).
    async fn broker_with_t() -> Arc<Broker> {
        let broker = Broker::open(
            Arc::new(Config::default()),
            HostPort { host: "h".into(), port: 1 },
            "c".into(),
            Arc::new(crate::log::datadir::DataDir::memory()),
        )
        .unwrap();
        let (p, o) = broker.validate_new_topic("t", 2, 1, &Default::default()).unwrap();
        let broker = Arc::new(broker);
        broker.create_topic("t", p, o).await.unwrap();
        broker
    }

    async fn coordinator() -> (Arc<Coordinator>, Arc<Broker>) {
        let config = Config::default();
        let broker = broker_with_t().await;
        let data = Arc::new(crate::log::datadir::DataDir::memory());
        let logs = Arc::new(log::ShardLogs::new(data, 50, Default::default()));
        let c = Coordinator::new(ShardConfig::from_config(&config), 50, logs, CancellationToken::new());
        c.load_all().unwrap();
        c.spawn_flushers();
        (c, broker)
    }

    /// A coordinator whose offsets logs model syncs, over a data dir that can fail on demand,
    /// with a broker holding topic "t" (2 partitions).
    async fn faulty() -> (Arc<Coordinator>, Arc<crate::log::datadir::DataDir>, crate::plane::DataPlane) {
        let broker = broker_with_t().await;
        let data = Arc::new(crate::log::datadir::DataDir::memory_modelled());
        let c = over(&data);
        (c, data, crate::plane::DataPlane::Broker(broker))
    }

    /// A coordinator loaded from `data` (a start, or a restart over the same data).
    fn over(data: &Arc<crate::log::datadir::DataDir>) -> Arc<Coordinator> {
        let logs = Arc::new(log::ShardLogs::new(data.clone(), 50, Default::default()));
        let c = Coordinator::new(ShardConfig::from_config(&Config::default()), 50, logs, CancellationToken::new());
        c.load_all().unwrap();
        c.spawn_flushers();
        c
    }

    fn caller<'a>(c: &'a Coordinator, plane: &'a crate::plane::DataPlane) -> api::Caller<'a> {
        api::Caller { coordinator: c, plane, client_id: "x", client_host: "/127.0.0.1".into() }
    }

    /// A simple-group commit of `offset` for t-0 (OffsetCommit v8); its partition's error.
    async fn commit(c: &Coordinator, plane: &crate::plane::DataPlane, group: &str, offset: i64) -> ErrorCode {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(offset)]),
            ]);
        ErrorCode::from(api::offset_commit(&caller(c, plane), 8, req).await.topics[0].partitions[0].error_code)
    }

    /// t-0's committed offset for `group` (OffsetFetch v8, require_stable): Ok(offset) or the
    /// group-level error.
    async fn fetched(c: &Coordinator, plane: &crate::plane::DataPlane, group: &str) -> Result<i64, ErrorCode> {
        let req = OffsetFetchRequest::default().with_require_stable(true).with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group.into())))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(TopicName(StrBytes::from_static_str("t")))
                        .with_partition_indexes(vec![0]),
                ])),
        ]);
        let r = api::offset_fetch(&caller(c, plane), 8, req).await;
        let g = &r.groups[0];
        let code = ErrorCode::from(g.error_code);
        if code != ErrorCode::NONE {
            return Err(code);
        }
        Ok(g.topics[0].partitions[0].committed_offset)
    }

    /// Retries `f` while the shard reloads (COORDINATOR_LOAD_IN_PROGRESS), up to 5 s.
    async fn once_loaded<T>(mut f: impl AsyncFnMut() -> Result<T, ErrorCode>) -> Result<T, ErrorCode> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match f().await {
                Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                other => return other,
            }
        }
    }

    /// Checklist 8 (a failed write answers the write with a mapped error; storage failures map
    /// to NOT_COORDINATOR): a commit whose append fails (ENOSPC, half written) or whose fsync
    /// fails (EIO) is refused; what it wrote never becomes visible, before or after a restart;
    /// the shard reloads from what is durable and takes writes again without a restart once
    /// the disk recovers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn item_08_failed_writes_answer_not_coordinator_and_leave_nothing_visible() {
        use crate::log::storage::FaultOp;
        let (c, data, plane) = faulty().await;
        let g = "faulty-group";
        assert_eq!(commit(&c, &plane, g, 5).await, ErrorCode::NONE);
        data.fail(FaultOp::Write, 28, true);
        assert_eq!(commit(&c, &plane, g, 9).await, ErrorCode::NOT_COORDINATOR, "a failed append");
        assert_eq!(once_loaded(async || fetched(&c, &plane, g).await).await, Ok(5), "the failed commit is not visible");
        assert_eq!(
            once_loaded(async || match commit(&c, &plane, g, 11).await {
                ErrorCode::NONE => Ok(()),
                e => Err(e),
            })
            .await,
            Ok(()),
            "writes resume"
        );
        data.fail(FaultOp::Sync, 5, true);
        assert_eq!(commit(&c, &plane, g, 13).await, ErrorCode::NOT_COORDINATOR, "a failed fsync");
        assert_eq!(once_loaded(async || fetched(&c, &plane, g).await).await, Ok(11));
        // a disk that keeps failing: refused every time, reads answer from what is durable
        data.fail(FaultOp::Write, 28, false);
        for offset in [15, 17] {
            let e = once_loaded(async || match commit(&c, &plane, g, offset).await {
                ErrorCode::NONE => Ok(()),
                e => Err(e),
            })
            .await;
            assert_eq!(e, Err(ErrorCode::NOT_COORDINATOR));
        }
        data.clear_faults();
        assert_eq!(
            once_loaded(async || match commit(&c, &plane, g, 19).await {
                ErrorCode::NONE => Ok(()),
                e => Err(e),
            })
            .await,
            Ok(())
        );
        // a restart over the same data sees exactly what was acknowledged
        c.shutdown.cancel();
        let restarted = over(&data);
        assert_eq!(once_loaded(async || fetched(&restarted, &plane, g).await).await, Ok(19));
    }

    /// Checklist 9: an OffsetFetch (require_stable) waiting on writes whose sync fails gets a
    /// group-level NOT_COORDINATOR.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn item_09_a_fetch_waiting_on_a_failed_sync_gets_not_coordinator() {
        use crate::log::storage::FaultOp;
        let (c, data, plane) = faulty().await;
        let g = "fetching-group";
        assert_eq!(commit(&c, &plane, g, 3).await, ErrorCode::NONE);
        // the commit's fsync is held until the fetch reads and waits behind it, then fails
        let gate = data.fail_held(FaultOp::Sync, 5).expect("a memory data dir");
        let shard = c.shard_of(g);
        let before = c.log.appended(shard);
        let (committed, fetch) = tokio::join!(commit(&c, &plane, g, 4), async {
            while c.log.appended(shard) == before {
                tokio::task::yield_now().await;
            }
            let mut f = std::pin::pin!(fetched(&c, &plane, g));
            assert!(tokio::time::timeout(Duration::from_millis(50), &mut f).await.is_err(), "the fetch waits for the sync");
            gate.open();
            f.await
        });
        assert_eq!(committed, ErrorCode::NOT_COORDINATOR);
        assert_eq!(fetch, Err(ErrorCode::NOT_COORDINATOR));
        assert_eq!(once_loaded(async || fetched(&c, &plane, g).await).await, Ok(3));
    }

    fn static_join(group: &str, instance: &str) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_group_instance_id(Some(StrBytes::from_string(instance.into())))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(bytes::Bytes::from_static(b"m")),
            ])
    }

    /// Checklist 83 (and the failure half of 106): a static member's replacement whose record
    /// fails to write gets the mapped error and no member id; the old member is restored and
    /// goes on heartbeating. A new group whose first record fails answers its JoinGroup with
    /// the mapped error and leaves no group behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn item_83_106_a_failed_group_write_restores_the_group() {
        use crate::log::storage::FaultOp;
        let (c, data, plane) = faulty().await;
        let cl = caller(&c, &plane);
        let g = "static-group";
        let j = api::join_group(&cl, 5, static_join(g, "i1")).await;
        assert_eq!(ErrorCode::from(j.error_code), ErrorCode::NONE);
        let m1 = j.member_id.clone();
        let s = api::sync_group(
            &cl,
            5,
            SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str(g)))
                .with_member_id(m1.clone())
                .with_group_instance_id(Some(StrBytes::from_static_str("i1")))
                .with_generation_id(j.generation_id)
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(StrBytes::from_static_str("range")))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(m1.clone())
                        .with_assignment(bytes::Bytes::from_static(b"a")),
                ]),
        )
        .await;
        assert_eq!(ErrorCode::from(s.error_code), ErrorCode::NONE);
        data.fail(FaultOp::Write, 28, true);
        let replacement = api::join_group(&cl, 5, static_join(g, "i1")).await;
        assert_eq!((ErrorCode::from(replacement.error_code), replacement.member_id.as_str()), (ErrorCode::NOT_COORDINATOR, ""));
        let hb = |member: StrBytes| {
            HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str(g)))
                .with_member_id(member)
                .with_group_instance_id(Some(StrBytes::from_static_str("i1")))
                .with_generation_id(j.generation_id)
        };
        // while the shard reloads a heartbeat is answered NONE blindly; once it serves, the
        // restored member's heartbeat is checked for real
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !c.loaded() {
            assert!(std::time::Instant::now() < deadline, "the shard did not reload");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(ErrorCode::from(api::heartbeat(&cl, 4, hb(m1.clone())).await.error_code), ErrorCode::NONE, "the old member is restored");
        let d = api::describe_groups(&cl, 5, DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str(g))]));
        assert_eq!(d.groups[0].members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>(), vec![m1]);
        // 106: a brand-new group's first record fails
        data.fail(FaultOp::Write, 28, true);
        let fresh = api::join_group(&cl, 5, static_join("brand-new", "i9")).await;
        assert_eq!((ErrorCode::from(fresh.error_code), fresh.member_id.as_str()), (ErrorCode::NOT_COORDINATOR, ""));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !c.loaded() {
            assert!(std::time::Instant::now() < deadline, "the shard did not reload");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let d = api::describe_groups(
            &cl,
            5,
            DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("brand-new"))]),
        );
        assert_eq!(d.groups[0].group_state.as_str(), "Dead", "no group is left behind");
    }

    /// Checklist 6: while a shard loads, group APIs answer COORDINATOR_LOAD_IN_PROGRESS and
    /// Heartbeat answers NONE. Checklist 99: OffsetFetch v1 copies a group error into every
    /// partition; v2+ puts it at the top level.
    #[tokio::test]
    async fn item_06_99_a_loading_shard() {
        let (c, broker) = coordinator().await;
        let g = "loading-group";
        c.lock(c.shard_of(g)).status = ShardStatus::Loading;
        let plane = crate::plane::DataPlane::Broker(broker);
        let caller = api::Caller { coordinator: &c, plane: &plane, client_id: "x", client_host: "/127.0.0.1".into() };
        let gid = GroupId(StrBytes::from_static_str(g));
        let j = api::join_group(&caller, 5, JoinGroupRequest::default().with_group_id(gid.clone()).with_session_timeout_ms(10_000)).await;
        assert_eq!(ErrorCode::from(j.error_code), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        let h = api::heartbeat(&caller, 3, HeartbeatRequest::default().with_group_id(gid.clone())).await;
        assert_eq!(ErrorCode::from(h.error_code), ErrorCode::NONE);
        let topic = || {
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0, 1])
        };
        let f1 =
            api::offset_fetch(&caller, 1, OffsetFetchRequest::default().with_group_id(gid.clone()).with_topics(Some(vec![topic()]))).await;
        assert!(
            f1.topics[0]
                .partitions
                .iter()
                .all(|p| ErrorCode::from(p.error_code) == ErrorCode::COORDINATOR_LOAD_IN_PROGRESS && p.committed_offset == -1)
        );
        let f3 =
            api::offset_fetch(&caller, 3, OffsetFetchRequest::default().with_group_id(gid.clone()).with_topics(Some(vec![topic()]))).await;
        assert_eq!(ErrorCode::from(f3.error_code), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        let commit = OffsetCommitRequest::default().with_group_id(gid.clone()).with_generation_id_or_member_epoch(-1).with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default()]),
        ]);
        let oc = api::offset_commit(&caller, 8, commit).await;
        assert_eq!(ErrorCode::from(oc.topics[0].partitions[0].error_code), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        let d = api::describe_groups(&caller, 5, DescribeGroupsRequest::default().with_groups(vec![gid.clone()]));
        assert_eq!(ErrorCode::from(d.groups[0].error_code), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        let l = api::list_groups(&caller, 4, ListGroupsRequest::default());
        assert_eq!(ErrorCode::from(l.error_code), ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        // other shards keep serving
        let other = GroupId(StrBytes::from_static_str("a-different-group"));
        assert_ne!(c.shard_of("a-different-group"), c.shard_of(g));
        let j = api::join_group(
            &caller,
            3,
            JoinGroupRequest::default()
                .with_group_id(other)
                .with_session_timeout_ms(10_000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range")),
                ]),
        )
        .await;
        assert_eq!(ErrorCode::from(j.error_code), ErrorCode::NONE);
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

    /// Shards gained and lost at runtime (several proxies sharing the coordinator), in process:
    /// a shard not owned answers NOT_COORDINATOR (checklist 5); one gained answers
    /// COORDINATOR_LOAD_IN_PROGRESS while it loads (checklist 6), then serves what its store
    /// holds; a commit in flight when the shard is lost is answered NOT_COORDINATOR, never as a
    /// success; a parked join is answered NOT_COORDINATOR and the group leaves memory (checklist
    /// 110).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn item_5_6_110_a_shard_lost_and_gained_at_runtime() {
        use crate::log::storage::FaultOp;
        let (c, data, plane) = faulty().await;
        let cl = caller(&c, &plane);
        let g = "moving-group";
        let shard = c.shard_of(g);
        assert_eq!(commit(&c, &plane, g, 5).await, ErrorCode::NONE);
        // a commit whose record is appended but not yet durable when the shard is lost
        let gate = data.hold(FaultOp::Sync).expect("a memory data dir");
        let in_flight = {
            let (c, plane) = (c.clone(), plane.clone());
            tokio::spawn(async move { commit(&c, &plane, g, 6).await })
        };
        let gate = tokio::task::spawn_blocking(move || {
            assert!(gate.wait_reached(Duration::from_secs(5)), "the commit's sync was reached");
            gate
        })
        .await
        .unwrap();
        c.lose(shard);
        gate.open();
        assert_eq!(in_flight.await.unwrap(), ErrorCode::NOT_COORDINATOR, "a commit in flight when the shard was lost");
        assert!(!c.owns(shard));
        // 5: not owned
        assert_eq!(commit(&c, &plane, g, 7).await, ErrorCode::NOT_COORDINATOR);
        assert_eq!(fetched(&c, &plane, g).await, Err(ErrorCode::NOT_COORDINATOR));
        // 6: gained, loading (held on its first read), then serving what the store holds
        let gate = data.hold(FaultOp::Read).expect("a memory data dir");
        c.gain(shard);
        assert!(c.owns(shard));
        assert_eq!(commit(&c, &plane, g, 8).await, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        gate.open();
        let offset = once_loaded(async || fetched(&c, &plane, g).await).await.unwrap();
        // the acknowledged commit is there; the one answered NOT_COORDINATOR may be too (its
        // record had been written, as when a reply is lost)
        assert!(offset == 5 || offset == 6, "committed offset {offset} after the shard came back");
        // 110: a join parked in a rebalance when the shard is lost
        let pg = "parked-group";
        let ps = c.shard_of(pg);
        let first = api::join_group(&cl, 5, static_join(pg, "i1")).await;
        assert_eq!(ErrorCode::from(first.error_code), ErrorCode::NONE);
        let parked = {
            let (c, plane) = (c.clone(), plane.clone());
            tokio::spawn(async move { api::join_group(&caller(&c, &plane), 5, static_join(pg, "i2")).await })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!parked.is_finished(), "the second member waits for the first to rejoin");
        c.lose(ps);
        let answer = parked.await.unwrap();
        assert_eq!((ErrorCode::from(answer.error_code), answer.member_id.as_str()), (ErrorCode::NOT_COORDINATOR, ""));
        c.gain(ps);
        let d = once_loaded(async || {
            let d =
                api::describe_groups(&cl, 5, DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str(pg))]));
            match ErrorCode::from(d.groups[0].error_code) {
                ErrorCode::NONE => Ok(d),
                e => Err(e),
            }
        })
        .await
        .unwrap();
        // what the store held: the first member's join (its record); the parked one left nothing
        assert!(d.groups[0].members.iter().all(|m| m.group_instance_id.as_deref() != Some("i2")), "{:?}", d.groups[0].members);
    }
}
