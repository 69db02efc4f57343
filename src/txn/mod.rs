//! The transaction coordinator (broker mode): transactional ids, their producer ids and
//! epochs, the partitions of each ongoing transaction, and the markers that end them.
//!
//! State lives in one compacted keyed log (`transactions/` in the data dir; records in the
//! schemas of Kafka's `__transaction_state`, see [`record`]), replayed at start. Every
//! transition is appended and made durable (group commit) before it takes effect or is
//! answered, except the final Complete record: a crash before it is durable leaves the
//! transaction in PrepareCommit or PrepareAbort, and start-up writes its markers again.
//!
//! One transition at a time per transactional id: while one is being written (or its markers
//! are), the id is *busy* and other requests for it get CONCURRENT_TRANSACTIONS, which clients
//! retry — Kafka's `pendingState`.
//!
//! EndTxn writes its markers before it answers: a COMMIT or ABORT control batch in every data
//! partition of the transaction, and for the `__consumer_offsets` partition a group's offsets
//! shard turns the producer's pending offsets into committed ones (or drops them).

pub mod api;
pub mod record;
pub mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use self::state::{EndPlan, InitPlan, TxnMeta, TxnState};
use crate::batch::Marker;
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::config::Config;
use crate::coordinator::Coordinator;
use crate::error::ErrorCode;
use crate::log::LogError;
use crate::log::datadir::DataDir;
use crate::log::keyed::{KeyedConfig, KeyedLog};

/// The topic name a transaction's group offsets partitions go by (AddOffsetsToTxn).
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's placement of a transactional id: `abs(String.hashCode) % partitions`.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in transactional_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs: MIN_VALUE maps to 0
    let h = if h == i32::MIN { 0 } else { h.abs() };
    h % partitions.max(1)
}

/// The settings the coordinator acts on.
#[derive(Debug, Clone)]
pub struct TxnConfig {
    pub max_timeout_ms: i32,
    pub expiration_ms: i64,
    pub cleanup_interval_ms: i64,
}

impl TxnConfig {
    pub fn from_config(c: &Config) -> Self {
        TxnConfig {
            max_timeout_ms: c.transaction_max_timeout_ms,
            expiration_ms: c.transactional_id_expiration_ms,
            cleanup_interval_ms: c.transaction_abort_timed_out_transaction_cleanup_interval_ms,
        }
    }
}

#[derive(Debug)]
struct Slot {
    meta: TxnMeta,
    /// A transition is being written, or its markers are.
    busy: bool,
}

/// The transaction coordinator.
#[derive(Debug)]
pub struct TxnCoordinator {
    broker: Arc<Broker>,
    groups: Arc<Coordinator>,
    log: Arc<KeyedLog>,
    config: TxnConfig,
    slots: Mutex<HashMap<String, Slot>>,
}

/// Why a write of the coordinator's state failed: the client is told to retry elsewhere.
fn log_failed(what: &str, e: std::io::Error) -> ErrorCode {
    tracing::error!("writing transaction state ({what}) failed: {e}");
    ErrorCode::COORDINATOR_NOT_AVAILABLE
}

impl TxnCoordinator {
    /// Opens (or creates) the transaction state log in `data` and replays it.
    pub fn open(broker: Arc<Broker>, groups: Arc<Coordinator>, data: &DataDir, config: TxnConfig) -> Result<Arc<Self>, LogError> {
        let path = "transactions";
        let storage = data.storage(path).map_err(|e| LogError::Io { what: path.into(), source: e })?;
        let mut slots: HashMap<String, Slot> = HashMap::new();
        let mut bad = 0usize;
        let log = KeyedLog::open(path, storage, KeyedConfig::default(), |e| {
            let Ok(id) = record::decode_key(e.key) else {
                bad += 1;
                return;
            };
            match e.value {
                None => {
                    slots.remove(&id);
                }
                Some(v) => match record::decode_value(&id, v) {
                    Ok(meta) => {
                        slots.insert(id, Slot { meta, busy: false });
                    }
                    Err(_) => bad += 1,
                },
            }
        })?;
        if bad > 0 {
            tracing::warn!(records = bad, "skipped transaction state records that do not parse");
        }
        Ok(Arc::new(TxnCoordinator { broker, groups, log, config, slots: Mutex::new(slots) }))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().expect("transaction state lock poisoned")
    }

    /// Starts the log's flusher, completes the transactions a crash left prepared, and runs
    /// the timeout and expiry sweep.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken) {
        tokio::spawn(self.log.clone().run_flusher(shutdown.clone()));
        let me = self.clone();
        tokio::spawn(async move {
            me.recover().await;
            me.sweep_loop(shutdown).await;
        });
    }

    /// Writes the markers of every transaction found prepared at start.
    async fn recover(&self) {
        let prepared: Vec<TxnMeta> = {
            let mut slots = self.lock();
            slots
                .values_mut()
                .filter(|s| s.meta.state.is_preparing())
                .map(|s| {
                    s.busy = true;
                    s.meta.clone()
                })
                .collect()
        };
        for meta in prepared {
            tracing::info!(transactional_id = %meta.transactional_id, state = meta.state.name(), "completing a transaction left prepared");
            self.finish(meta).await;
        }
    }

    /// Appends `meta` and waits until it is durable.
    async fn write(&self, meta: &TxnMeta) -> Result<(), ErrorCode> {
        let key = record::encode_key(&meta.transactional_id);
        let value = record::encode_value(meta);
        let end = self.log.append(&[(key, Some(value))], now_ms()).map_err(|e| log_failed("append", e))?;
        if let Err(e) = self.log.wait_durable(end).await {
            // what was written since the last good sync is of unknown durability: cut it off
            // (every transition waiting on it fails too and keeps its old state) so the log
            // takes writes again
            if let Err(cut) = self.log.discard_unsynced() {
                tracing::error!("cutting the transaction state log back failed: {cut}");
            }
            return Err(log_failed("sync", e));
        }
        Ok(())
    }

    /// Appends `meta` without waiting for it to be durable (Complete records: replaying the
    /// Prepare record before them writes the same markers again).
    fn write_behind(&self, meta: &TxnMeta) {
        let key = record::encode_key(&meta.transactional_id);
        if let Err(e) = self.log.append(&[(key, Some(record::encode_value(meta)))], now_ms()) {
            log_failed("append", e);
        }
    }

    /// Sets the slot of `id` to `meta` and not busy.
    fn settle(&self, id: &str, meta: Option<TxnMeta>) {
        let mut slots = self.lock();
        if let Some(s) = slots.get_mut(id) {
            if let Some(m) = meta {
                s.meta = m;
            }
            s.busy = false;
        }
    }

    /// Takes the slot of `id` for a transition: `f` plans it from the current metadata.
    fn begin<T>(&self, id: &str, f: impl FnOnce(&TxnMeta) -> Result<T, ErrorCode>) -> Result<T, ErrorCode> {
        let mut slots = self.lock();
        let Some(s) = slots.get_mut(id) else { return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING) };
        if s.busy {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        let planned = f(&s.meta)?;
        s.busy = true;
        Ok(planned)
    }

    /// Writes the markers of a prepared transaction, then its Complete state; the slot is
    /// busy throughout and settled at the end.
    async fn finish(&self, prepared: TxnMeta) -> TxnMeta {
        let commit = prepared.state == TxnState::PrepareCommit;
        self.write_markers(&prepared, commit).await;
        let done = state::complete(&prepared, now_ms());
        self.write_behind(&done);
        self.settle(&prepared.transactional_id, Some(done.clone()));
        done
    }

    /// Writes a COMMIT or ABORT marker to every partition of the transaction. A marker that
    /// cannot be written is retried until it is (Kafka's marker channel does the same).
    async fn write_markers(&self, m: &TxnMeta, commit: bool) {
        let marker = Marker { commit, coordinator_epoch: 0 };
        for (topic, partition) in &m.partitions {
            let mut delay = Duration::from_millis(10);
            loop {
                let result = if topic == OFFSETS_TOPIC {
                    self.groups.end_txn(*partition as usize, m.producer_id, commit).await
                } else {
                    match self.broker.topic(topic).and_then(|t| t.partition(*partition)) {
                        // a topic deleted since: nothing to mark
                        None => Ok(()),
                        Some(p) => p.append_marker(m.producer_id, m.producer_epoch, marker, now_ms()).map(|_| ()).map_err(|e| e.code),
                    }
                };
                match result {
                    Ok(()) => break,
                    Err(code) => {
                        tracing::warn!(transactional_id = %m.transactional_id, topic = %topic, partition, error = %code, "writing a transaction marker failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    pub async fn init_producer_id(&self, id: &str, timeout_ms: i32, given: Option<(i64, i16)>) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        loop {
            let exists = self.lock().get(id).map(|s| s.meta.producer_epoch >= state::EPOCH_EXHAUSTED);
            let spare = match exists {
                None | Some(true) => Some(self.broker.allocate_producer_id().await.map_err(|_| ErrorCode::COORDINATOR_NOT_AVAILABLE)?),
                Some(false) => None,
            };
            let plan = {
                let mut slots = self.lock();
                match slots.get_mut(id) {
                    None => {
                        let pid = spare.expect("allocated for a new id");
                        let meta = TxnMeta::new(id, pid, 0, timeout_ms, now_ms());
                        slots.insert(id.to_string(), Slot { meta: meta.clone(), busy: true });
                        None
                    }
                    Some(s) if s.busy => return Err(ErrorCode::CONCURRENT_TRANSACTIONS),
                    Some(s) => {
                        let plan = state::init(&s.meta, timeout_ms, given, now_ms(), || spare.unwrap_or(-1))?;
                        if !matches!(plan, InitPlan::Current) {
                            s.busy = true;
                        }
                        Some((plan, s.meta.producer_id, s.meta.producer_epoch))
                    }
                }
            };
            let Some(plan) = plan else {
                // a new id: its Empty record at epoch 0
                let pid = spare.expect("allocated for a new id");
                let meta = TxnMeta::new(id, pid, 0, timeout_ms, now_ms());
                return match self.write(&meta).await {
                    Ok(()) => {
                        self.settle(id, Some(meta));
                        Ok((pid, 0))
                    }
                    Err(code) => {
                        self.lock().remove(id);
                        Err(code)
                    }
                };
            };
            match plan {
                (InitPlan::Current, pid, epoch) => return Ok((pid, epoch)),
                (InitPlan::Write(m), _, _) => {
                    if m.producer_id < 0 {
                        self.settle(id, None);
                        continue; // the epoch ran out while we looked: allocate and plan again
                    }
                    return match self.write(&m).await {
                        Ok(()) => {
                            let answer = (m.producer_id, m.producer_epoch);
                            self.settle(id, Some(m));
                            Ok(answer)
                        }
                        Err(code) => {
                            self.settle(id, None);
                            Err(code)
                        }
                    };
                }
                (InitPlan::AbortFirst(fenced), _, _) => {
                    if let Err(code) = self.write(&fenced).await {
                        self.settle(id, None);
                        return Err(code);
                    }
                    self.finish(fenced).await;
                    // and plan the init again, now that the id is idle
                }
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: adds partitions to the ongoing transaction
    /// (starting one), durably. Data partitions are marked transactional first.
    pub async fn add_partitions(&self, id: &str, producer_id: i64, epoch: i16, partitions: &[(String, i32)]) -> Result<(), ErrorCode> {
        let now = now_ms();
        let next = self.begin(id, |m| state::add_partitions(m, producer_id, epoch, partitions, now))?;
        let Some(next) = next else {
            self.settle(id, None);
            return Ok(());
        };
        for (topic, partition) in partitions {
            if topic == OFFSETS_TOPIC {
                continue;
            }
            if let Some(p) = self.broker.topic(topic).and_then(|t| t.partition(*partition))
                && let Err(e) = p.mark_transactional().await
            {
                tracing::error!(topic = %topic, partition, "cannot mark the partition transactional: {e}");
                self.settle(id, None);
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        }
        let result = self.write(&next).await;
        self.settle(id, result.is_ok().then_some(next));
        result
    }

    /// EndTxn: prepares, writes every marker, completes; answers once the markers are written.
    pub async fn end_txn(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> Result<(), ErrorCode> {
        let now = now_ms();
        let plan = self.begin(id, |m| state::end(m, producer_id, epoch, commit, now))?;
        let prepared = match plan {
            EndPlan::AlreadyDone => {
                self.settle(id, None);
                return Ok(());
            }
            EndPlan::Prepare(p) => p,
        };
        if let Err(code) = self.write(&prepared).await {
            self.settle(id, None);
            return Err(code);
        }
        self.finish(prepared).await;
        Ok(())
    }

    /// Whether a transactional batch of `producer_id` at `epoch` may be written to the
    /// partition: its transaction must be ongoing and hold the partition (KIP-890's check,
    /// done here in the one process that holds both).
    pub fn verify(&self, id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), ErrorCode> {
        let slots = self.lock();
        let Some(s) = slots.get(id) else { return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING) };
        let m = &s.meta;
        if producer_id != m.producer_id {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch != m.producer_epoch {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(&(topic.to_string(), partition)) {
            return Err(ErrorCode::INVALID_TXN_STATE);
        }
        Ok(())
    }

    /// TxnOffsetCommit's check of the producer: its transaction must be ongoing and hold the
    /// group's offsets partition (AddOffsetsToTxn came first).
    pub fn verify_offsets(&self, id: &str, producer_id: i64, epoch: i16, group: &str) -> Result<(), ErrorCode> {
        self.verify(id, producer_id, epoch, OFFSETS_TOPIC, self.groups.shard_of(group) as i32)
    }

    /// The offsets partition of a group (AddOffsetsToTxn adds it).
    pub fn offsets_partition(&self, group: &str) -> (String, i32) {
        (OFFSETS_TOPIC.to_string(), self.groups.shard_of(group) as i32)
    }

    /// A snapshot of every transactional id's metadata.
    pub fn snapshot(&self) -> Vec<TxnMeta> {
        let mut v: Vec<TxnMeta> = self.lock().values().map(|s| s.meta.clone()).collect();
        v.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        v
    }

    /// The metadata of one id.
    pub fn describe(&self, id: &str) -> Option<TxnMeta> {
        self.lock().get(id).map(|s| s.meta.clone())
    }

    async fn sweep_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.config.cleanup_interval_ms.max(1) as u64);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            self.sweep().await;
        }
    }

    /// Aborts transactions past their timeout (fencing their producers) and forgets idle ids.
    pub async fn sweep(&self) {
        let now = now_ms();
        let (timed_out, expired) = {
            let mut slots = self.lock();
            let mut timed_out = Vec::new();
            let mut expired = Vec::new();
            for s in slots.values_mut().filter(|s| !s.busy) {
                if s.meta.producer_epoch < state::EPOCH_EXHAUSTED
                    && let Some(f) = state::fence_timed_out(&s.meta, now, || -1)
                {
                    s.busy = true;
                    timed_out.push(f);
                } else if s.meta.expired(now, self.config.expiration_ms) {
                    expired.push(s.meta.transactional_id.clone());
                }
            }
            for id in &expired {
                slots.remove(id);
            }
            (timed_out, expired)
        };
        for f in timed_out {
            tracing::info!(transactional_id = %f.transactional_id, "aborting a transaction past its timeout");
            match self.write(&f).await {
                Ok(()) => {
                    self.finish(f).await;
                }
                Err(_) => self.settle(&f.transactional_id, None),
            }
        }
        if !expired.is_empty() {
            let tombstones: Vec<(Bytes, Option<Bytes>)> = expired.iter().map(|id| (record::encode_key(id), None)).collect();
            if let Err(e) = self.log.append(&tombstones, now) {
                log_failed("expiry", e);
            }
            tracing::debug!(count = expired.len(), "forgot idle transactional ids");
        }
        if self.log.needs_compaction() {
            let log = self.log.clone();
            match tokio::task::spawn_blocking(move || log.compact(now_ms())).await {
                Ok(Ok(stats)) => tracing::debug!(?stats, "compacted the transaction state log"),
                Ok(Err(e)) => tracing::error!("compacting the transaction state log failed: {e}"),
                Err(e) => tracing::error!("compaction task failed: {e}"),
            }
        }
    }

    /// Syncs the log at shutdown.
    pub fn sync(&self) {
        if let Err(e) = self.log.sync_now() {
            tracing::error!("final sync of the transaction state log failed: {e}");
        }
    }
}

impl crate::broker::TxnCheck for TxnCoordinator {
    fn verify(&self, transactional_id: &str, producer_id: i64, epoch: i16, topic: &str, partition: i32) -> Result<(), ErrorCode> {
        TxnCoordinator::verify(self, transactional_id, producer_id, epoch, topic, partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_javas_string_hash_code() {
        // "txn-1".hashCode() = 110_810_510 in Java
        assert_eq!(partition_for("txn-1", 50), 10);
        assert_eq!(partition_for("", 50), 0);
        // a hash of Integer.MIN_VALUE maps to 0 (Utils.abs): "polygenelubricants".hashCode()
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }
}
