//! The broker's background work: `flush.ms` syncs, retention, and compaction of compacted
//! topics. It runs on a blocking thread; compaction holds a partition's lock only to plan and
//! to swap the result in, never while it reads or writes files.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Broker;
use crate::clock::now_ms;

/// Runs until shutdown.
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let retention_every = broker.config.log_retention_check_interval_ms.max(1);
    let mut last_retention = now_ms();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let b = broker.clone();
        let now = now_ms();
        let retention_due = now - last_retention >= retention_every;
        if retention_due {
            last_retention = now;
        }
        let _ = tokio::task::spawn_blocking(move || {
            b.flush_due(now);
            if retention_due {
                b.enforce_retention(now);
            }
        })
        .await;
    }
}

impl Broker {
    /// Syncs partitions whose oldest unsynced batch is older than their topic's `flush.ms`.
    /// The syncs run outside the partitions' locks: produces go on meanwhile.
    pub fn flush_due(&self, now: i64) {
        for t in self.topics() {
            let flush_ms = t.config().flush_ms;
            if flush_ms == i64::MAX {
                continue;
            }
            for p in t.partitions.read().expect("partitions lock").iter() {
                let plan = {
                    let mut s = p.lock();
                    if s.log.unflushed() == 0 || now - s.last_flush_ms < flush_ms {
                        continue;
                    }
                    s.last_flush_ms = now;
                    s.log.sync_plan()
                };
                match plan.run() {
                    Ok(batches) => p.lock().log.synced(batches),
                    Err(e) => tracing::error!(topic = t.name.as_str(), partition = p.index, "flush failed: {e}"),
                }
            }
        }
    }

    /// Applies `retention.ms`/`retention.bytes` (delete policy) and compacts compacted topics.
    pub fn enforce_retention(&self, now: i64) {
        for t in self.topics() {
            let c = t.config();
            for p in t.partitions.read().expect("partitions lock").iter() {
                let mut s = p.lock();
                let removal = if c.delete { s.log.enforce_retention(now, c.retention_ms, c.retention_bytes) } else { Default::default() };
                let start = s.log.start_offset();
                s.producers.forget_before(start);
                let plan = if c.compact { s.log.begin_compaction(now, c.delete_retention_ms) } else { Ok(None) };
                let storage = s.log.storage();
                let work = s.log.take_flush_work();
                drop(s);
                if let Err(e) = removal.run() {
                    tracing::error!(topic = t.name.as_str(), partition = p.index, "removing segments past retention failed: {e}");
                }
                if let Some(work) = work
                    && let Err(e) = work.run()
                {
                    tracing::error!(topic = t.name.as_str(), partition = p.index, "syncing sealed segments failed: {e}");
                }
                let compacted = match plan {
                    Ok(Some(plan)) => plan.write().map_err(|e| e.to_string()),
                    Ok(None) => Ok(None),
                    Err(e) => Err(e.to_string()),
                };
                match compacted {
                    Ok(Some(done)) => {
                        let old = p.lock().log.swap_compacted(&done);
                        match done.finish(old, &storage) {
                            Ok(n) => tracing::debug!(topic = t.name.as_str(), partition = p.index, segments = n, "compacted"),
                            Err(e) => tracing::error!(topic = t.name.as_str(), partition = p.index, "finishing a compaction failed: {e}"),
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(topic = t.name.as_str(), partition = p.index, "compaction failed: {e}"),
                }
            }
        }
    }

    /// Syncs every partition (shutdown).
    pub fn sync_all(&self) {
        for t in self.topics() {
            for p in t.partitions.read().expect("partitions lock").iter() {
                if let Err(e) = p.lock().log.sync() {
                    tracing::error!(topic = t.name.as_str(), partition = p.index, "final sync failed: {e}");
                }
            }
        }
    }
}
