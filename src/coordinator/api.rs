//! The coordinator's wire side: each group API's request, at its version, becomes a shard
//! input, and the shard's answer becomes the response at that version. Checks that need the
//! broker (unknown topics) or the request shape (empty group ids, mandatory v5 SyncGroup
//! fields) happen here, in Kafka's order (§2.4).

use std::collections::HashSet;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tracing::Instrument;

use super::answer::{Committed, GroupDeleted, Heartbeated};
use super::consumer::{Assignment, HeartbeatInput as ConsumerHeartbeatInput, HeartbeatResult as ConsumerHeartbeatResult, TopicView};
use super::group::Protocol;
use super::shard::{
    CommitInput, CommitPartition, FetchedOffset, FetchedPartition, HeartbeatInput, JoinInput, JoinResult, LeaveInput, LeaveResult,
    OffsetDeleteResult, PartitionError, SyncInput, SyncResult,
};
use super::{Coordinator, ShardStatus};
use crate::error::ErrorCode;
use crate::plane::DataPlane;

/// Everything a group API needs: the coordinator, the data plane (which topics exist, our own
/// address), and who is asking.
pub struct Caller<'a> {
    pub coordinator: &'a Coordinator,
    pub plane: &'a DataPlane,
    pub client_id: &'a str,
    /// As Kafka records it: `/` followed by the peer's IP address.
    pub client_host: String,
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The error a shard that is not serving gives (§2.4.5).
fn status_error(status: ShardStatus) -> ErrorCode {
    match status {
        ShardStatus::Loading => ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
        ShardStatus::Active | ShardStatus::Failed | ShardStatus::NotOwned => ErrorCode::NOT_COORDINATOR,
    }
}

// ---------------------------------------------------------------------- FindCoordinator

/// FindCoordinator: every group and every transactional id is coordinated by us (broker
/// mode; a proxy asks the upstream for transactional ids). Share groups are not supported and
/// say so.
pub fn find_coordinator(c: &Caller<'_>, version: i16, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let answer = |key_type: i8, key: &str| -> (ErrorCode, Option<&'static str>) {
        match key_type {
            0 => (ErrorCode::NONE, None),
            1 if key.is_empty() => (ErrorCode::INVALID_REQUEST, Some("the transactional id is empty")),
            1 => (ErrorCode::NONE, None),
            2 if version < 6 => (ErrorCode::INVALID_REQUEST, Some("share groups need FindCoordinator v6")),
            2 => (ErrorCode::INVALID_REQUEST, Some("corral does not support share groups")),
            _ => (ErrorCode::INVALID_REQUEST, Some("unknown coordinator key type")),
        }
    };
    // a group's coordinator is whoever serves its shard: corral itself, or (several proxies
    // sharing the coordinator) the proxy the last assignment named; none while it moves
    let node = |key_type: i8, key: &str| -> Result<crate::plane::NodeAddr, (ErrorCode, Option<&'static str>)> {
        match answer(key_type, key) {
            (ErrorCode::NONE, _) if key_type == 0 => c
                .plane
                .coordinator_for(c.coordinator.shard_of(key))
                .ok_or((ErrorCode::COORDINATOR_NOT_AVAILABLE, Some("the group's coordinator shard is moving between proxies"))),
            (ErrorCode::NONE, _) => Ok(c.plane.me()),
            failed => Err(failed),
        }
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let e = CoordinatorEntry::default().with_key(key.clone());
                match node(req.key_type, key.as_str()) {
                    Ok(n) => e.with_error_code(0).with_node_id(BrokerId(n.id)).with_host(n.host).with_port(n.port),
                    Err((code, msg)) => e
                        .with_error_code(code.code())
                        .with_error_message(msg.map(s))
                        .with_node_id(BrokerId(-1))
                        .with_host(StrBytes::default())
                        .with_port(-1),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let (found, code, msg) = match node(if version >= 1 { req.key_type } else { 0 }, req.key.as_str()) {
        Ok(n) => (Some(n), ErrorCode::NONE, None),
        Err((code, msg)) => (None, code, msg),
    };
    let mut r = FindCoordinatorResponse::default().with_error_code(code.code());
    if version >= 1 {
        r.error_message = msg.map(s);
    }
    if let Some(me) = found {
        r.node_id = BrokerId(me.id);
        r.host = me.host;
        r.port = me.port;
    } else {
        r.node_id = BrokerId(-1);
        r.host = StrBytes::default();
        r.port = -1;
    }
    r
}

// ---------------------------------------------------------------------- JoinGroup

fn join_response(version: i16, r: JoinResult) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default()
        .with_error_code(r.error.code())
        .with_generation_id(r.generation_id)
        .with_leader(s(r.leader))
        .with_member_id(s(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    let mut e = JoinGroupResponseMember::default().with_member_id(s(m.member_id)).with_metadata(m.metadata);
                    if version >= 5 {
                        e.group_instance_id = m.group_instance_id.map(s);
                    }
                    e
                })
                .collect(),
        );
    // v7+: null protocol type/name on errors; before v7 the name is "" when unset.
    let ok = r.error == ErrorCode::NONE;
    if version >= 7 {
        resp.protocol_type = if ok { r.protocol_type.map(s) } else { None };
        resp.protocol_name = if ok { r.protocol_name.filter(|n| !n.is_empty()).map(s) } else { None };
    } else {
        resp.protocol_name = Some(s(if ok { r.protocol_name.unwrap_or_default() } else { String::new() }));
    }
    if version >= 9 {
        resp.skip_assignment = r.skip_assignment;
    }
    resp
}

/// JoinGroup.
pub async fn join_group(c: &Caller<'_>, version: i16, req: JoinGroupRequest) -> JoinGroupResponse {
    if req.group_id.is_empty() {
        return join_response(version, JoinResult::error(ErrorCode::INVALID_GROUP_ID, ""));
    }
    let input = JoinInput {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        client_id: c.client_id.to_string(),
        client_host: c.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 { req.rebalance_timeout_ms } else { req.session_timeout_ms },
        protocol_type: req.protocol_type.to_string(),
        protocols: req.protocols.into_iter().map(|p| Protocol { name: p.name.to_string(), metadata: p.metadata }).collect(),
        version,
    };
    let member_id = input.member_id.clone();
    let shard = c.coordinator.shard_of(&input.group_id);
    let span = tracing::debug_span!("join_group", group = %input.group_id, member = %member_id, instance = ?input.group_instance_id);
    // the topics, for a JoinGroup into a consumer group (broker mode)
    let topics = match c.plane {
        crate::plane::DataPlane::Broker(b) => Some(BrokerTopics(b)),
        crate::plane::DataPlane::Proxy(_) => None,
    };
    let result = match c
        .coordinator
        .call::<JoinResult>(shard, move |sh, now, id| sh.join_with(now, id, input, topics.as_ref().map(|t| t as &dyn TopicView)))
        .instrument(span)
        .await
    {
        Ok(r) => r,
        Err(status) => JoinResult::error(status_error(status), &member_id),
    };
    join_response(version, result)
}

// ---------------------------------------------------------------------- SyncGroup

fn sync_response(version: i16, r: SyncResult) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default().with_error_code(r.error.code()).with_assignment(r.assignment);
    if version >= 5 && r.error == ErrorCode::NONE {
        resp.protocol_type = r.protocol_type.map(s);
        resp.protocol_name = r.protocol_name.map(s);
    } else {
        resp.protocol_type = None;
        resp.protocol_name = None;
    }
    resp
}

/// SyncGroup.
pub async fn sync_group(c: &Caller<'_>, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    if req.group_id.is_empty() {
        return sync_response(version, SyncResult::error(ErrorCode::INVALID_GROUP_ID));
    }
    // KIP-559: v5 must name the protocol type and name.
    if version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        return sync_response(version, SyncResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL));
    }
    let input = SyncInput {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation_id: req.generation_id,
        protocol_type: req.protocol_type.map(|p| p.to_string()),
        protocol_name: req.protocol_name.map(|p| p.to_string()),
        assignments: req.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let shard = c.coordinator.shard_of(&input.group_id);
    let span = tracing::debug_span!("sync_group", group = %input.group_id, member = %input.member_id, generation = input.generation_id);
    let result = match c.coordinator.call::<SyncResult>(shard, move |sh, now, id| sh.sync(now, id, input, version)).instrument(span).await {
        Ok(r) => r,
        Err(status) => SyncResult::error(status_error(status)),
    };
    sync_response(version, result)
}

// ---------------------------------------------------------------------- Heartbeat

/// Heartbeat. A loading shard answers NONE, as Kafka does ("blindly respond").
pub async fn heartbeat(c: &Caller<'_>, _version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    if req.group_id.is_empty() {
        return HeartbeatResponse::default().with_error_code(ErrorCode::INVALID_GROUP_ID.code());
    }
    let input = HeartbeatInput {
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        generation_id: req.generation_id,
    };
    let shard = c.coordinator.shard_of(&input.group_id);
    let span = tracing::trace_span!("heartbeat", group = %input.group_id, member = %input.member_id, generation = input.generation_id);
    let code = match c.coordinator.call::<Heartbeated>(shard, move |sh, now, id| sh.heartbeat(now, id, input)).instrument(span).await {
        Ok(Heartbeated(code)) => code,
        Err(ShardStatus::Loading) => ErrorCode::NONE,
        Err(status) => status_error(status),
    };
    HeartbeatResponse::default().with_error_code(code.code())
}

// ---------------------------------------------------------------------- LeaveGroup

/// LeaveGroup: v0-2 leave one member, v3+ a batch.
pub async fn leave_group(c: &Caller<'_>, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if req.group_id.is_empty() {
        return LeaveGroupResponse::default().with_error_code(ErrorCode::INVALID_GROUP_ID.code());
    }
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members.into_iter().map(|m| (m.member_id.to_string(), m.group_instance_id.map(|i| i.to_string()))).collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let input = LeaveInput { group_id: req.group_id.to_string(), members };
    let shard = c.coordinator.shard_of(&input.group_id);
    let span = tracing::debug_span!("leave_group", group = %input.group_id, members = input.members.len());
    let result = match c.coordinator.call::<LeaveResult>(shard, move |sh, now, id| sh.leave(now, id, input)).instrument(span).await {
        Ok(r) => r,
        Err(status) => LeaveResult { error: status_error(status), members: Vec::new() },
    };
    if version >= 3 {
        LeaveGroupResponse::default().with_error_code(result.error.code()).with_members(
            result
                .members
                .into_iter()
                .map(|m| {
                    MemberResponse::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.group_instance_id.map(s))
                        .with_error_code(m.error.code())
                })
                .collect(),
        )
    } else {
        // Before v3 there is one error: the top-level one, else the first member error.
        let code = if result.error != ErrorCode::NONE {
            result.error
        } else {
            result.members.iter().map(|m| m.error).find(|e| *e != ErrorCode::NONE).unwrap_or(ErrorCode::NONE)
        };
        LeaveGroupResponse::default().with_error_code(code.code())
    }
}

// ---------------------------------------------------------------------- OffsetCommit

/// One partition of an OffsetCommit or TxnOffsetCommit, as sent.
struct SentOffset {
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<String>,
}

/// Commits offsets (plain or transactional, per `base.producer_id`): partitions of unknown
/// topics get UNKNOWN_TOPIC_OR_PARTITION, the rest go to the group's shard. One error per
/// partition, in request order.
async fn commit_offsets(
    c: &Caller<'_>,
    mut base: CommitInput,
    topics: Vec<(TopicName, Vec<SentOffset>)>,
) -> Vec<(TopicName, Vec<(i32, ErrorCode)>)> {
    let mut answer: Vec<(TopicName, Vec<(i32, ErrorCode)>)> = Vec::with_capacity(topics.len());
    let mut to_shard = Vec::new();
    // (topic index, partition index within topic) of each partition sent to the shard
    let mut slots = Vec::new();
    for (ti, (name, partitions)) in topics.into_iter().enumerate() {
        let count = c.plane.partition_count(&name).await;
        let mut parts = Vec::with_capacity(partitions.len());
        for (pi, p) in partitions.into_iter().enumerate() {
            let mut exists = count.is_some_and(|n| p.partition >= 0 && p.partition < n);
            if !exists && count.is_some() {
                // a partition added since the view was taken
                exists = c.plane.has_partition(&name, p.partition).await;
            }
            if exists {
                to_shard.push(CommitPartition {
                    topic: name.to_string(),
                    partition: p.partition,
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata,
                });
                slots.push((ti, pi));
                parts.push((p.partition, ErrorCode::NONE));
            } else {
                parts.push((p.partition, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
            }
        }
        answer.push((name, parts));
    }
    if !to_shard.is_empty() {
        let n = to_shard.len();
        base.partitions = to_shard;
        let shard = c.coordinator.shard_of(&base.group_id);
        let span = tracing::trace_span!("offset_commit", group = %base.group_id, member = %base.member_id, generation = base.generation_id);
        let errors = match c.coordinator.call::<Committed>(shard, move |sh, now, id| sh.commit(now, id, base)).instrument(span).await {
            Ok(Committed(v)) => v,
            Err(status) => vec![status_error(status); n],
        };
        for ((ti, pi), e) in slots.into_iter().zip(errors) {
            answer[ti].1[pi].1 = e;
        }
    }
    answer
}

/// OffsetCommit.
pub async fn offset_commit(c: &Caller<'_>, version: i16, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .into_iter()
                .map(|p| SentOffset {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
                .collect();
            (t.name, parts)
        })
        .collect();
    let base = CommitInput {
        group_id: req.group_id.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.map(|i| i.to_string()),
        retention_time_ms: if version <= 4 { req.retention_time_ms } else { -1 },
        version,
        partitions: Vec::new(),
        producer_id: None,
    };
    let answer = commit_offsets(c, base, topics).await;
    OffsetCommitResponse::default().with_topics(
        answer
            .into_iter()
            .map(|(name, parts)| {
                OffsetCommitResponseTopic::default().with_name(name).with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, e)| OffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(e.code()))
                        .collect(),
                )
            })
            .collect(),
    )
}

/// TxnOffsetCommit: offsets of a producer's transaction, pending until it ends (checked by the
/// transaction coordinator first: `check` is its verdict on the producer, applied to every
/// partition). Member and generation are checked from v3 (KIP-447).
pub async fn txn_offset_commit(c: &Caller<'_>, version: i16, req: TxnOffsetCommitRequest, check: ErrorCode) -> TxnOffsetCommitResponse {
    let respond = |answer: Vec<(TopicName, Vec<(i32, ErrorCode)>)>| {
        TxnOffsetCommitResponse::default().with_topics(
            answer
                .into_iter()
                .map(|(name, parts)| {
                    TxnOffsetCommitResponseTopic::default().with_name(name).with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, e)| TxnOffsetCommitResponsePartition::default().with_partition_index(p).with_error_code(e.code()))
                            .collect(),
                    )
                })
                .collect(),
        )
    };
    let every = |code: ErrorCode, req: &TxnOffsetCommitRequest| {
        req.topics.iter().map(|t| (t.name.clone(), t.partitions.iter().map(|p| (p.partition_index, code)).collect())).collect::<Vec<_>>()
    };
    let group_error = if req.group_id.is_empty() { ErrorCode::INVALID_GROUP_ID } else { check };
    if group_error != ErrorCode::NONE {
        return respond(every(group_error, &req));
    }
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let parts = t
                .partitions
                .into_iter()
                .map(|p| SentOffset {
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                })
                .collect();
            (t.name, parts)
        })
        .collect();
    let base = CommitInput {
        group_id: req.group_id.to_string(),
        generation_id: if version >= 3 { req.generation_id } else { -1 },
        member_id: if version >= 3 { req.member_id.to_string() } else { String::new() },
        group_instance_id: if version >= 3 { req.group_instance_id.map(|i| i.to_string()) } else { None },
        retention_time_ms: -1,
        version,
        partitions: Vec::new(),
        producer_id: Some(req.producer_id.0),
    };
    respond(commit_offsets(c, base, topics).await)
}

// ---------------------------------------------------------------------- OffsetFetch

/// One group's offsets, read after everything appended so far is durable; `Err` is a
/// group-level error.
async fn fetch_group(
    c: &Caller<'_>,
    group: &str,
    wanted: Option<Vec<(String, i32)>>,
    require_stable: bool,
    member: (Option<&str>, i32),
) -> Result<Vec<FetchedPartition>, ErrorCode> {
    let shard = c.coordinator.shard_of(group);
    let (rows, position) = c
        .coordinator
        .read(shard, |sh| {
            sh.check_offset_fetch(group, member.0, member.1)?;
            Ok::<_, ErrorCode>(sh.fetch_offsets(group, wanted.as_deref(), require_stable))
        })
        .map_err(status_error)?
        .map(|rows| (rows, c.coordinator.log.appended(shard)))?;
    c.coordinator.log.wait_durable(shard, position).await.map_err(|_| ErrorCode::NOT_COORDINATOR)?;
    Ok(rows)
}

/// Groups rows by topic, keeping first-seen topic order.
type TopicRows = Vec<(String, Vec<(i32, FetchedOffset, ErrorCode)>)>;

fn by_topic(rows: Vec<FetchedPartition>) -> TopicRows {
    let mut out: TopicRows = Vec::new();
    for FetchedPartition { topic, partition, committed, error } in rows {
        match out.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, v)) => v.push((partition, committed, error)),
            None => out.push((topic, vec![(partition, committed, error)])),
        }
    }
    out
}

/// OffsetFetch: one group (v1-7) or many (v8+); `topics = null` means every committed partition.
pub async fn offset_fetch(c: &Caller<'_>, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let wanted_of = |topics: Option<Vec<(String, Vec<i32>)>>| {
        topics.map(|ts| ts.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p))).collect::<Vec<_>>())
    };
    if version >= 8 {
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in req.groups {
            let wanted = wanted_of(g.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect()));
            let member = (g.member_id.as_ref().map(|m| m.as_str()), g.member_epoch);
            let entry = match fetch_group(c, g.group_id.as_str(), wanted, req.require_stable, member).await {
                Ok(rows) => OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_topics(
                    by_topic(rows)
                        .into_iter()
                        .map(|(t, ps)| {
                            OffsetFetchResponseTopics::default().with_name(TopicName(s(t))).with_partitions(
                                ps.into_iter()
                                    .map(|(p, o, e)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o.offset)
                                            .with_committed_leader_epoch(o.leader_epoch)
                                            .with_metadata(Some(s(o.metadata)))
                                            .with_error_code(e.code())
                                    })
                                    .collect(),
                            )
                        })
                        .collect(),
                ),
                Err(code) => OffsetFetchResponseGroup::default().with_group_id(g.group_id).with_error_code(code.code()),
            };
            groups.push(entry);
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = wanted_of(req.topics.map(|ts| ts.into_iter().map(|t| (t.name.to_string(), t.partition_indexes)).collect()));
    let explicit = wanted.clone();
    let (rows, error) = match fetch_group(c, req.group_id.as_str(), wanted, version >= 7 && req.require_stable, (None, -1)).await {
        Ok(rows) => (rows, ErrorCode::NONE),
        Err(code) => {
            // Before v2 a group-level error goes into every requested partition.
            let rows = explicit
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| FetchedPartition { topic, partition, committed: FetchedOffset::absent(), error: ErrorCode::NONE })
                .collect();
            (rows, code)
        }
    };
    let part_error = if version < 2 { error } else { ErrorCode::NONE };
    let mut resp = OffsetFetchResponse::default().with_topics(
        by_topic(rows)
            .into_iter()
            .map(|(t, ps)| {
                OffsetFetchResponseTopic::default().with_name(TopicName(s(t))).with_partitions(
                    ps.into_iter()
                        .map(|(p, o, row_error)| {
                            let code = if row_error == ErrorCode::NONE { part_error } else { row_error };
                            let mut e = OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o.offset)
                                .with_metadata(Some(s(o.metadata)))
                                .with_error_code(code.code());
                            if version >= 5 {
                                e.committed_leader_epoch = o.leader_epoch;
                            }
                            e
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    if version >= 2 {
        resp.error_code = error.code();
    }
    resp
}

// ---------------------------------------------------------------------- ListGroups / DescribeGroups

/// ListGroups over every shard, with the v4 state and v5 type filters (case-insensitive).
pub fn list_groups(c: &Caller<'_>, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = req.states_filter.iter().map(|f| f.to_lowercase()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|f| f.to_lowercase()).collect();
    let mut error = ErrorCode::NONE;
    let mut groups = Vec::new();
    for i in 0..c.coordinator.partitions() {
        match c.coordinator.read(i, |sh| sh.list()) {
            Ok(list) => {
                for g in list {
                    if !states.is_empty() && !states.iter().any(|f| *f == g.state.to_lowercase()) {
                        continue;
                    }
                    if !types.is_empty() && !types.iter().any(|f| f == g.group_type) {
                        continue;
                    }
                    let mut e = ListedGroup::default().with_group_id(GroupId(s(g.group_id))).with_protocol_type(s(g.protocol_type));
                    if version >= 4 {
                        e.group_state = s(g.state);
                    }
                    if version >= 5 {
                        e.group_type = s(g.group_type);
                    }
                    groups.push(e);
                }
            }
            Err(ShardStatus::Loading) => error = ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            Err(_) => {}
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse::default().with_error_code(error.code()).with_groups(groups)
}

/// The operations a group allows without an authorizer: READ, DELETE, DESCRIBE,
/// DESCRIBE_CONFIGS, ALTER_CONFIGS.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11);

/// DescribeGroups.
pub fn describe_groups(c: &Caller<'_>, version: i16, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .into_iter()
        .map(|gid| {
            let mut d = DescribedGroup::default().with_group_id(gid.clone()).with_error_message(None);
            if version >= 3 {
                d.authorized_operations = if req.include_authorized_operations { GROUP_OPERATIONS } else { i32::MIN };
            }
            let shard = c.coordinator.shard_of(gid.as_str());
            match c.coordinator.read(shard, |sh| sh.describe(gid.as_str())) {
                Err(status) => {
                    d.error_code = status_error(status).code();
                    d.group_state = s("");
                }
                Ok(None) if version >= 6 => {
                    d.error_code = ErrorCode::GROUP_ID_NOT_FOUND.code();
                    d.error_message = Some(s(format!("Group {} not found.", gid.as_str())));
                    d.group_state = s("Dead");
                }
                Ok(None) => d.group_state = s("Dead"),
                Ok(Some(desc)) if desc.not_classic => {
                    // a consumer group (KIP-848): ConsumerGroupDescribe describes it
                    d.group_state = s("Dead");
                    if version >= 6 {
                        d.error_code = ErrorCode::GROUP_ID_NOT_FOUND.code();
                        d.error_message = Some(s(format!("Group {} is not a classic group.", gid.as_str())));
                    }
                }
                Ok(Some(desc)) => {
                    d.group_state = s(desc.state);
                    d.protocol_type = s(desc.protocol_type);
                    d.protocol_data = s(desc.protocol_data);
                    d.members = desc
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut e = DescribedGroupMember::default()
                                .with_member_id(s(m.member_id))
                                .with_client_id(s(m.client_id))
                                .with_client_host(s(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                e.group_instance_id = m.group_instance_id.map(s);
                            }
                            e
                        })
                        .collect();
                }
            }
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

// ---------------------------------------------------------------------- DeleteGroups / OffsetDelete

/// DeleteGroups (duplicates answered once).
pub async fn delete_groups(c: &Caller<'_>, _version: i16, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut seen = HashSet::new();
    let mut results = Vec::new();
    for gid in req.groups_names {
        if !seen.insert(gid.to_string()) {
            continue;
        }
        let group = gid.to_string();
        let shard = c.coordinator.shard_of(&group);
        let code = match c.coordinator.call::<GroupDeleted>(shard, move |sh, now, id| sh.delete_group(now, id, &group)).await {
            Ok(GroupDeleted(code)) => code,
            Err(status) => status_error(status),
        };
        results.push(DeletableGroupResult::default().with_group_id(gid).with_error_code(code.code()));
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete.
pub async fn offset_delete(c: &Caller<'_>, _version: i16, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    if req.group_id.is_empty() {
        return OffsetDeleteResponse::default().with_error_code(ErrorCode::INVALID_GROUP_ID.code());
    }
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if c.plane.has_partition(&t.name, p.partition_index).await {
                known.push((t.name.to_string(), p.partition_index));
            } else {
                unknown.push(PartitionError {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    error: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                });
            }
        }
    }
    let group = req.group_id.to_string();
    let shard = c.coordinator.shard_of(&group);
    let result = match c.coordinator.call::<OffsetDeleteResult>(shard, move |sh, now, id| sh.delete_offsets(now, id, &group, known)).await {
        Ok(r) => r,
        Err(status) => OffsetDeleteResult { error: status_error(status), partitions: Vec::new() },
    };
    if result.error != ErrorCode::NONE {
        return OffsetDeleteResponse::default().with_error_code(result.error.code());
    }
    let mut rows = result.partitions;
    rows.extend(unknown);
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for PartitionError { topic, partition, error } in rows {
        let part = OffsetDeleteResponsePartition::default().with_partition_index(partition).with_error_code(error.code());
        match topics.iter_mut().find(|x| x.name.as_str() == topic) {
            Some(x) => x.partitions.push(part),
            None => topics.push(OffsetDeleteResponseTopic::default().with_name(TopicName(s(topic))).with_partitions(vec![part])),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}

// ---------------------------------------------------------------------- KIP-848

/// The broker's topics as the consumer-group coordinator sees them.
struct BrokerTopics<'a>(&'a crate::broker::Broker);

impl TopicView for BrokerTopics<'_> {
    fn by_name(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.0.topic(name).map(|t| (t.id, t.partition_count()))
    }
    fn names(&self) -> Vec<String> {
        self.0.topics().iter().map(|t| t.name.clone()).collect()
    }
}

fn to_assignment(tps: impl IntoIterator<Item = (uuid::Uuid, Vec<i32>)>) -> Assignment {
    let mut a = Assignment::new();
    for (id, ps) in tps {
        a.entry(id).or_default().extend(ps);
    }
    a
}

/// ConsumerGroupHeartbeat (KIP-848). Served in broker mode, where the coordinator sees the
/// topics and their ids.
pub async fn consumer_group_heartbeat(c: &Caller<'_>, version: i16, req: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
    let fail = |code: ErrorCode, message: Option<String>| {
        ConsumerGroupHeartbeatResponse::default().with_error_code(code.code()).with_error_message(message.map(s))
    };
    let crate::plane::DataPlane::Broker(broker) = c.plane else {
        return fail(ErrorCode::UNSUPPORTED_VERSION, Some("corral proxy does not serve the consumer group protocol yet".into()));
    };
    let h = ConsumerHeartbeatInput {
        version,
        group_id: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.map(|i| i.to_string()),
        rack_id: req.rack_id.map(|r| r.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req.subscribed_topic_names.map(|ns| ns.into_iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: if version >= 1 { req.subscribed_topic_regex.map(|r| r.to_string()) } else { None },
        server_assignor: req.server_assignor.map(|a| a.to_string()),
        owned: req.topic_partitions.map(|tps| to_assignment(tps.into_iter().map(|tp| (tp.topic_id, tp.partitions)))),
        client_id: c.client_id.to_string(),
        client_host: c.client_host.clone(),
    };
    let shard = c.coordinator.shard_of(&h.group_id);
    let topics = BrokerTopics(broker);
    let r: ConsumerHeartbeatResult = match c.coordinator.call(shard, move |sh, now, id| sh.consumer_heartbeat(now, id, h, &topics)).await {
        Ok(r) => r,
        Err(status) => return fail(status_error(status), None),
    };
    let mut resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(r.error.code())
        .with_error_message(r.message.map(s))
        .with_member_id(r.member_id.map(s))
        .with_member_epoch(r.member_epoch)
        .with_heartbeat_interval_ms(r.heartbeat_interval_ms);
    if let Some(a) = r.assignment {
        resp.assignment = Some(
            consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(id, ps)| {
                        consumer_group_heartbeat_response::TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps.into_iter().collect())
                    })
                    .collect(),
            ),
        );
    }
    resp
}

/// ConsumerGroupDescribe (KIP-848).
pub fn consumer_group_describe(c: &Caller<'_>, version: i16, req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    use consumer_group_describe_response::{Assignment as DescribedAssignment, DescribedGroup as Described, Member, TopicPartitions};
    let groups =
        req.group_ids
            .into_iter()
            .map(|gid| {
                let mut d = Described::default()
                    .with_group_id(gid.clone())
                    .with_authorized_operations(if req.include_authorized_operations { GROUP_OPERATIONS } else { i32::MIN });
                if gid.is_empty() {
                    return d.with_error_code(ErrorCode::INVALID_GROUP_ID.code());
                }
                let shard = c.coordinator.shard_of(gid.as_str());
                match c.coordinator.read(shard, |sh| sh.describe_consumer_group(gid.as_str())) {
                    Err(status) => d.with_error_code(status_error(status).code()),
                    Ok(Err((code, message))) => d.with_error_code(code.code()).with_error_message(Some(s(message))),
                    Ok(Ok(desc)) => {
                        let names = &desc.topic_names;
                        let assignment = |a: &Assignment| {
                            DescribedAssignment::default().with_topic_partitions(
                                a.iter()
                                    .map(|(id, ps)| {
                                        TopicPartitions::default()
                                            .with_topic_id(*id)
                                            .with_topic_name(TopicName(s(names.get(id).cloned().unwrap_or_default())))
                                            .with_partitions(ps.iter().copied().collect())
                                    })
                                    .collect(),
                            )
                        };
                        d.group_state = s(desc.state);
                        d.group_epoch = desc.epoch;
                        d.assignment_epoch = desc.assignment_epoch;
                        d.assignor_name = s(desc.assignor);
                        d.members = desc
                            .members
                            .iter()
                            .map(|dm| {
                                let m = &dm.member;
                                let mut e = Member::default()
                                    .with_member_id(s(m.id.clone()))
                                    .with_instance_id(m.meta.instance_id.clone().map(s))
                                    .with_rack_id(m.meta.rack_id.clone().map(s))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(s(m.meta.client_id.clone()))
                                    .with_client_host(s(m.meta.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.meta.subscribed_topic_names.iter().map(|n| TopicName(s(n.clone()))).collect(),
                                    )
                                    .with_subscribed_topic_regex(m.meta.subscribed_topic_regex.clone().map(s))
                                    .with_assignment(assignment(&m.assigned))
                                    .with_target_assignment(assignment(&dm.target));
                                if version >= 1 {
                                    // KIP-1099: 0 = a member of the classic protocol, 1 = of the consumer one
                                    e.member_type = if m.meta.classic.is_some() { 0 } else { 1 };
                                }
                                e
                            })
                            .collect();
                        d
                    }
                }
            })
            .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
