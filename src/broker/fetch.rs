//! Fetch: stored batches back to consumers, with Kafka's long poll.
//!
//! A fetch that finds fewer than `min_bytes` parks until a produce to one of its partitions
//! wakes it, `max_wait_ms` passes, or the server shuts down (then it answers with what it
//! has). corral creates no fetch sessions (KIP-227): a sessionless answer (session id 0) is
//! always legal and clients fall back to full fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Broker;
use super::partition::LEADER_EPOCH;
use crate::batch::BatchHeader;
use crate::error::ErrorCode;

/// Isolation level READ_COMMITTED.
const READ_COMMITTED: i8 = 1;

struct Built {
    response: FetchResponse,
    bytes: usize,
    /// A partition answered with an error: Kafka answers at once then.
    errored: bool,
}

fn build(broker: &Broker, version: i16, req: &FetchRequest, waiter: Option<&Arc<Notify>>) -> Built {
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut errored = false;
    let mut responses = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        // v13+ names topics by id (KIP-516).
        let by_id = version >= 13;
        let topic = if by_id { broker.topic_by_id(&ft.topic_id) } else { broker.topic(&ft.topic) };
        let unknown = if by_id { ErrorCode::UNKNOWN_TOPIC_ID } else { ErrorCode::UNKNOWN_TOPIC_OR_PARTITION };
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut pd = PartitionData::default()
                .with_aborted_transactions(None)
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_records(Some(Bytes::new()));
            if version >= 5 {
                pd.log_start_offset = -1;
            }
            if topic.is_none() {
                pd.records = None;
                pd.error_code = unknown.code();
                errored = true;
                partitions.push(pd);
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                pd.records = None;
                pd.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                errored = true;
                partitions.push(pd);
                continue;
            };
            if version >= 9 && fp.current_leader_epoch > LEADER_EPOCH {
                pd.records = None;
                pd.error_code = ErrorCode::UNKNOWN_LEADER_EPOCH.code();
                errored = true;
                partitions.push(pd);
                continue;
            }
            if version < 10 && topic.as_ref().is_some_and(|t| t.config().zstd) {
                pd.records = None;
                pd.error_code = ErrorCode::UNSUPPORTED_COMPRESSION_TYPE.code();
                errored = true;
                partitions.push(pd);
                continue;
            }
            if let Some(w) = waiter {
                partition.register_waiter(w);
            }
            let state = partition.lock();
            let (start, hwm, lso) = (state.log.start_offset(), state.log.next_offset(), state.last_stable_offset());
            pd.high_watermark = hwm;
            pd.last_stable_offset = lso;
            if version >= 5 {
                pd.log_start_offset = start;
            }
            let committed_only = req.isolation_level == READ_COMMITTED;
            // read_committed reads up to the last stable offset
            let end = if committed_only { lso } else { hwm };
            // Kafka: null for read_uncommitted, a list for read_committed.
            pd.aborted_transactions = committed_only.then(Vec::new);
            if fp.fetch_offset < start || fp.fetch_offset > hwm {
                // Kafka answers an error partition with -1 offsets and null records.
                pd = PartitionData::default()
                    .with_partition_index(fp.partition)
                    .with_error_code(ErrorCode::OFFSET_OUT_OF_RANGE.code())
                    .with_high_watermark(-1)
                    .with_last_stable_offset(-1)
                    .with_aborted_transactions(None)
                    .with_records(None);
                if version >= 5 {
                    pd.log_start_offset = -1;
                }
                errored = true;
            } else if fp.fetch_offset < end && remaining > 0 {
                let limit = (fp.partition_max_bytes.max(0) as usize).min(remaining);
                // planned under the partition's lock, read outside it
                let plan = state.log.read_plan(fp.fetch_offset, limit, total == 0);
                let aborted = if committed_only { state.log.txns().aborted_between(fp.fetch_offset, end) } else { Vec::new() };
                drop(state);
                match plan.map_or(Ok(bytes::Bytes::new()), |p| p.read()) {
                    Ok(records) => {
                        let (records, last) = if committed_only { below(records, end) } else { (records, None) };
                        if committed_only {
                            // only those that begin before the end of what is returned
                            let upto = last.map_or(fp.fetch_offset, |l| l + 1);
                            pd.aborted_transactions = Some(
                                aborted
                                    .iter()
                                    .filter(|a| a.first_offset < upto)
                                    .map(|a| {
                                        AbortedTransaction::default()
                                            .with_producer_id(ProducerId(a.producer_id))
                                            .with_first_offset(a.first_offset)
                                    })
                                    .collect(),
                            );
                        }
                        let n = records.len();
                        total += n;
                        remaining = remaining.saturating_sub(n);
                        pd.records = Some(records);
                    }
                    Err(e) => {
                        tracing::error!(topic = %ft.topic.as_str(), partition = fp.partition, "read failed: {e}");
                        pd.error_code = ErrorCode::KAFKA_STORAGE_ERROR.code();
                        errored = true;
                    }
                }
            }
            partitions.push(pd);
        }
        let mut t = FetchableTopicResponse::default().with_partitions(partitions);
        if by_id {
            t.topic_id = ft.topic_id;
        } else {
            t.topic = ft.topic.clone();
        }
        responses.push(t);
    }
    Built { response: FetchResponse::default().with_responses(responses), bytes: total, errored }
}

/// The whole batches of `records` that begin before `end` (a read_committed read stops at the
/// last stable offset), and the last offset among them: one walk over the headers.
fn below(records: Bytes, end: i64) -> (Bytes, Option<i64>) {
    let mut at = 0usize;
    let mut last = None;
    while let Some(h) = records.get(at..).and_then(BatchHeader::parse) {
        if h.base_offset >= end || at + h.total_len() > records.len() {
            break;
        }
        last = Some(h.last_offset());
        at += h.total_len();
    }
    (records.slice(..at), last)
}

/// Fetch with long poll.
pub async fn handle_fetch(broker: &Broker, version: i16, req: FetchRequest, shutdown: &CancellationToken) -> FetchResponse {
    if version >= 7 && req.session_id != 0 {
        // We never hand out session ids, so a client cannot hold a valid one.
        return FetchResponse::default().with_error_code(ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code());
    }
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_wait = Duration::from_millis(req.max_wait_ms.max(0) as u64);
    if max_wait.is_zero() || min_bytes == 0 {
        return build(broker, version, &req, None).response;
    }
    let deadline = tokio::time::Instant::now() + max_wait;
    let waiter = Arc::new(Notify::new());
    loop {
        let built = build(broker, version, &req, Some(&waiter));
        if built.bytes >= min_bytes || built.errored || shutdown.is_cancelled() || tokio::time::Instant::now() >= deadline {
            return built.response;
        }
        tokio::select! {
            _ = waiter.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}
