//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::Broker;
use super::partition::{LEADER_EPOCH, Partition};
use crate::batch::records::read_records;
use crate::error::ErrorCode;

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

/// The (offset, timestamp) ListOffsets answers for `ts` on one partition; (-1, -1) if none.
/// `committed_only` (isolation level READ_COMMITTED): nothing at or past the last stable
/// offset is answered, and LATEST is the last stable offset.
pub fn lookup(partition: &Partition, ts: i64, committed_only: bool) -> Result<(i64, i64), ErrorCode> {
    let found = lookup_any(partition, ts, committed_only)?;
    // a timestamp lookup (not EARLIEST, LATEST and the like) answers only a stable offset
    let by_timestamp = ts >= 0 || ts == MAX_TIMESTAMP;
    if committed_only && by_timestamp && found.0 >= 0 && found.0 >= partition.lock().last_stable_offset() {
        return Ok((-1, -1));
    }
    Ok(found)
}

fn lookup_any(partition: &Partition, ts: i64, committed_only: bool) -> Result<(i64, i64), ErrorCode> {
    let state = partition.lock();
    let start = state.log.start_offset();
    let end = if committed_only { state.last_stable_offset() } else { state.log.next_offset() };
    match ts {
        LATEST => Ok((end, -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((start, -1)),
        // No tiered storage: nothing has been tiered.
        LATEST_TIERED => Ok((-1, -1)),
        MAX_TIMESTAMP | 0.. => {
            let target = if ts == MAX_TIMESTAMP { i64::MAX } else { ts };
            let plan = state.log.timestamp_plan(target);
            drop(state);
            let batch = plan.find().map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?;
            let Some(batch) = batch else {
                return Ok((-1, -1));
            };
            let records = read_records(&batch).map_err(|_| ErrorCode::CORRUPT_MESSAGE)?;
            let live = records.into_iter().filter(|r| r.offset >= start);
            let found = if ts == MAX_TIMESTAMP {
                let mut best: Option<(i64, i64)> = None;
                for r in live {
                    if best.is_none_or(|(_, t)| r.timestamp > t) {
                        best = Some((r.offset, r.timestamp));
                    }
                }
                best
            } else {
                live.into_iter().find(|r| r.timestamp >= ts).map(|r| (r.offset, r.timestamp))
            };
            Ok(found.unwrap_or((-1, -1)))
        }
        _ => Err(ErrorCode::UNSUPPORTED_VERSION),
    }
}

/// ListOffsets.
pub fn handle_list_offsets(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut seen = std::collections::HashMap::<(String, i32), usize>::new();
    for t in &req.topics {
        for p in &t.partitions {
            *seen.entry((t.name.to_string(), p.partition_index)).or_default() += 1;
        }
    }
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.name);
            let name = t.name.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r =
                        ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index).with_offset(-1).with_timestamp(-1);
                    if version >= 4 {
                        r.leader_epoch = -1;
                    }
                    if seen[&(name.clone(), p.partition_index)] > 1 {
                        r.error_code = ErrorCode::INVALID_REQUEST.code();
                        return r;
                    }
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index)) else {
                        r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                        return r;
                    };
                    if version >= 4 && p.current_leader_epoch > LEADER_EPOCH {
                        r.error_code = ErrorCode::UNKNOWN_LEADER_EPOCH.code();
                        return r;
                    }
                    if (p.timestamp == MAX_TIMESTAMP && version < 7)
                        || (p.timestamp == EARLIEST_LOCAL && version < 8)
                        || (p.timestamp == LATEST_TIERED && version < 9)
                    {
                        r.error_code = ErrorCode::UNSUPPORTED_VERSION.code();
                        return r;
                    }
                    match lookup(&partition, p.timestamp, version >= 2 && req.isolation_level == 1) {
                        Ok((offset, ts)) => {
                            r.offset = offset;
                            r.timestamp = ts;
                            if version >= 4 && offset >= 0 {
                                r.leader_epoch = LEADER_EPOCH;
                            }
                        }
                        Err(code) => r.error_code = code.code(),
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch: every batch was written at leader epoch 0, so epoch 0 ends at the log
/// end and any other epoch is unknown.
pub fn handle_offset_for_leader_epoch(broker: &Broker, _version: i16, req: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default().with_partition(p.partition).with_leader_epoch(-1).with_end_offset(-1);
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
                        return r;
                    };
                    if p.current_leader_epoch > LEADER_EPOCH {
                        r.error_code = ErrorCode::UNKNOWN_LEADER_EPOCH.code();
                    } else if p.leader_epoch == LEADER_EPOCH {
                        r.leader_epoch = LEADER_EPOCH;
                        r.end_offset = partition.offsets().1;
                    }
                    r
                })
                .collect();
            OffsetForLeaderTopicResult::default().with_topic(t.topic).with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
