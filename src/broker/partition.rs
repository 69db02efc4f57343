//! One partition: its log, its idempotent-producer state, and the parked fetches to wake.
//!
//! The mutex covers "check sequence + assign offsets + append", which must be atomic per
//! partition; it is never held across an `.await`.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::BytesMut;
use tokio::sync::Notify;

use super::producer::{ProducerTable, Verdict};
use super::topic_config::TopicConfig;
use crate::batch::{self, BatchHeader, Marker};
use crate::error::ErrorCode;
use crate::log::batches::BatchLog;

/// The leader epoch every batch is stamped with: a single node never changes leader.
pub const LEADER_EPOCH: i32 = 0;

/// A partition's mutable state.
#[derive(Debug)]
pub struct PartitionState {
    pub log: BatchLog,
    pub producers: ProducerTable,
    /// When the log was last synced (ms), for `flush.ms`.
    pub last_flush_ms: i64,
}

impl PartitionState {
    /// The last stable offset (read_committed consumers read up to it).
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }
}

/// The answer to a Produce for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// -1 unless the topic uses LogAppendTime (or the batch was a duplicate).
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// A refused append: the Kafka error code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendError {
    pub code: ErrorCode,
    pub message: String,
}

/// One partition of a topic.
#[derive(Debug)]
pub struct Partition {
    pub index: i32,
    state: Mutex<PartitionState>,
    /// Fetches parked on this partition; each is woken (and removed) by the next append.
    waiters: Mutex<Vec<Weak<Notify>>>,
    /// The log is marked as holding transactions.
    transactional: std::sync::atomic::AtomicBool,
}

/// Runs a roll's owed file work (sync, index, recovery point) on a blocking thread, off the
/// produce path (inline when there is no runtime, as in unit tests).
fn flush_in_background(work: crate::log::batches::FlushWork) {
    let run = move || {
        if let Err(e) = work.run() {
            tracing::error!("syncing a sealed segment failed: {e}");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(run)),
        Err(_) => run(),
    }
}

impl Partition {
    /// A partition over an opened log, with the producer state its last segment held.
    pub fn new(index: i32, log: BatchLog, producers: ProducerTable, now_ms: i64) -> Self {
        Partition {
            index,
            state: Mutex::new(PartitionState { log, producers, last_flush_ms: now_ms }),
            waiters: Mutex::new(Vec::new()),
            transactional: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Locks the partition state. Poisoning means a panic while appending: a broken
    /// invariant, so it propagates.
    pub fn lock(&self) -> MutexGuard<'_, PartitionState> {
        self.state.lock().expect("partition lock poisoned")
    }

    /// (log start offset, high watermark).
    pub fn offsets(&self) -> (i64, i64) {
        let s = self.lock();
        (s.log.start_offset(), s.log.next_offset())
    }

    /// Appends the one validated batch of a Produce partition.
    pub fn append(&self, batch_bytes: &[u8], h: &BatchHeader, config: &TopicConfig, now_ms: i64) -> Result<Appended, AppendError> {
        if h.total_len() > config.max_message_bytes as usize {
            return Err(AppendError {
                code: ErrorCode::MESSAGE_TOO_LARGE,
                message: format!(
                    "The request included a message larger than the max message size the server will accept ({} > {})",
                    h.total_len(),
                    config.max_message_bytes
                ),
            });
        }
        if !config.log_append_time
            && (h.max_timestamp.saturating_sub(now_ms) > config.timestamp_after_max_ms
                || now_ms.saturating_sub(h.base_timestamp) > config.timestamp_before_max_ms)
        {
            return Err(AppendError {
                code: ErrorCode::INVALID_TIMESTAMP,
                message: "One or more records have been rejected due to invalid timestamp".into(),
            });
        }
        let state = self.lock();
        if h.is_transactional()
            && let Some(epoch) = state.producers.epoch_of(h.producer_id)
            && h.producer_epoch < epoch
        {
            return Err(AppendError {
                code: ErrorCode::INVALID_PRODUCER_EPOCH,
                message: format!("producer {} epoch {} is older than {epoch}", h.producer_id, h.producer_epoch),
            });
        }
        if !h.is_transactional() && h.has_producer_id() && state.log.txns().open_of(h.producer_id).is_some() {
            return Err(AppendError {
                code: ErrorCode::INVALID_TXN_STATE,
                message: format!("producer {} has a transaction open on this partition", h.producer_id),
            });
        }
        match state.producers.check(h) {
            Verdict::Append => {}
            // Kafka answers a duplicate with the first append's offset and timestamp.
            Verdict::Duplicate { base_offset, timestamp } => {
                return Ok(Appended { base_offset, log_append_time: timestamp, log_start_offset: state.log.start_offset() });
            }
            Verdict::Reject(code) => {
                return Err(AppendError {
                    code,
                    message: format!("producer {} epoch {} sequence {} refused", h.producer_id, h.producer_epoch, h.base_sequence),
                });
            }
        }
        let mut bytes = BytesMut::from(batch_bytes);
        if config.log_append_time {
            batch::stamp_log_append_time(&mut bytes, now_ms);
        }
        let log_append_time = if config.log_append_time { now_ms } else { -1 };
        let (base_offset, log_start_offset) = self.write(state, bytes, now_ms)?;
        Ok(Appended { base_offset, log_append_time, log_start_offset })
    }

    /// Writes a transaction marker (COMMIT or ABORT control batch) for `producer_id` at
    /// `producer_epoch`, ending its transaction here. Returns the marker's offset.
    pub fn append_marker(&self, producer_id: i64, producer_epoch: i16, marker: Marker, now_ms: i64) -> Result<i64, AppendError> {
        let bytes = BytesMut::from(&batch::encode_marker(producer_id, producer_epoch, marker, now_ms)[..]);
        self.write(self.lock(), bytes, now_ms).map(|(base, _)| base)
    }

    /// Gives `bytes` (a checked batch) the next offset and appends it under the held lock,
    /// then takes it into the producer and transaction state; file work a roll left owed goes
    /// to a blocking thread after the lock is released, and parked fetches are woken.
    /// Returns (base offset, log start offset).
    fn write(&self, mut state: MutexGuard<'_, PartitionState>, mut bytes: BytesMut, now_ms: i64) -> Result<(i64, i64), AppendError> {
        let base = state.log.next_offset();
        batch::patch_offsets(&mut bytes, base, LEADER_EPOCH);
        let stored = BatchHeader::parse(&bytes).expect("a checked batch has a header");
        let unflushed_before = state.log.unflushed();
        let rolled = match state.log.append(&bytes, &stored) {
            Ok(rolled) => rolled,
            Err(e) => {
                tracing::error!(partition = self.index, "append failed: {e}");
                // a roll before the failed write still owes its segment's sync and index
                let work = state.log.take_flush_work();
                drop(state);
                if let Some(work) = work {
                    flush_in_background(work);
                }
                return Err(AppendError { code: ErrorCode::KAFKA_STORAGE_ERROR, message: format!("cannot append to the log: {e}") });
            }
        };
        if state.log.unflushed() < unflushed_before || state.log.unflushed() == 0 {
            state.last_flush_ms = now_ms;
        }
        state.producers.record(&stored, base, stored.max_timestamp);
        let log_start = state.log.start_offset();
        let work = if rolled { state.log.take_flush_work() } else { None };
        drop(state);
        if let Some(work) = work {
            flush_in_background(work);
        }
        self.wake_fetches();
        Ok((base, log_start))
    }

    /// Marks the partition's log as holding transactions (see
    /// [`crate::log::batches::mark_transactional`]) before its first transactional batch; the
    /// file work runs on a blocking thread, once per partition.
    pub async fn mark_transactional(&self) -> std::io::Result<()> {
        if self.transactional.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let storage = self.lock().log.storage();
        tokio::task::spawn_blocking(move || crate::log::batches::mark_transactional(&*storage))
            .await
            .map_err(|e| std::io::Error::other(format!("marking task failed: {e}")))??;
        self.transactional.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Registers a parked fetch to be woken by the next append.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut w = self.waiters.lock().expect("waiters lock poisoned");
        w.retain(|x| x.strong_count() > 0);
        w.push(Arc::downgrade(waiter));
    }

    fn wake_fetches(&self) {
        let drained: Vec<Weak<Notify>> = {
            let mut w = self.waiters.lock().expect("waiters lock poisoned");
            if w.is_empty() {
                return;
            }
            std::mem::take(&mut *w)
        };
        for w in drained {
            if let Some(n) = w.upgrade() {
                n.notify_one();
            }
        }
    }
}
