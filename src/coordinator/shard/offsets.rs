//! Committed offsets (`reference/kafka-group-coordinator.md` §3): OffsetCommit, OffsetFetch,
//! OffsetDelete, and the tombstones that remove offsets — DeleteGroups, a deleted topic, the
//! periodic expiry sweep.

use std::collections::HashSet;

use super::types::*;
use super::{Cx, Shard, heartbeat_key};
use crate::coordinator::RequestId;
use crate::coordinator::consumer::ConsumerGroup;
use crate::coordinator::group::{Group, GroupState};
use crate::coordinator::record::{OffsetValue, Record};
use crate::error::ErrorCode;

/// The time an offset's retention is counted from, for one group's expiry rule (§3.4).
type OffsetClock = Box<dyn Fn(&OffsetValue) -> i64>;

/// Length of a string as Java counts it (UTF-16 code units).
fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

impl Shard {
    /// OffsetCommit.
    pub fn commit(&mut self, now: i64, req: RequestId, c: CommitInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let all = |code: ErrorCode| Reply::Commit(vec![code; c.partitions.len()]);
        let check = match self.groups.get(&c.group_id) {
            None if c.generation_id < 0 => Ok(()),
            None if c.version >= 9 => Err(ErrorCode::GROUP_ID_NOT_FOUND),
            None => Err(ErrorCode::ILLEGAL_GENERATION),
            Some(g) => validate_commit(g, &c, c.producer_id.is_some()),
        };
        if let Err(code) = check {
            cx.reply(req, all(code));
            return self.done(cx);
        }
        if let Some(g) = self.groups.get(&c.group_id)
            && matches!(g.state, GroupState::Stable | GroupState::PreparingRebalance)
            && let Some(m) = g.members.get(&c.member_id)
        {
            // §2.11: commits keep a member's session alive.
            cx.set(heartbeat_key(&g.id, &m.id), m.session_timeout_ms as i64);
        }
        let expire = (c.version <= 4 && c.retention_time_ms >= 0).then(|| now.saturating_add(c.retention_time_ms));
        let mut errors = Vec::with_capacity(c.partitions.len());
        for p in c.partitions {
            let metadata = p.metadata.unwrap_or_default();
            if java_len(&metadata) > self.config.offset_metadata_max_bytes {
                errors.push(ErrorCode::OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            let value = Some(OffsetValue {
                offset: p.offset,
                leader_epoch: p.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: expire,
            });
            cx.emit(match c.producer_id {
                None => Record::Offset { group: c.group_id.clone(), topic: p.topic, partition: p.partition, value },
                Some(producer_id) => {
                    Record::PendingOffset { producer_id, group: c.group_id.clone(), topic: p.topic, partition: p.partition, value }
                }
            });
            errors.push(ErrorCode::NONE);
        }
        metrics::counter!("corral_offset_commits_total").increment(errors.iter().filter(|e| **e == ErrorCode::NONE).count() as u64);
        cx.reply(req, Reply::Commit(errors));
        self.done(cx)
    }

    /// A transaction's end (its COMMIT or ABORT marker reaching this shard): every pending
    /// offset of `producer_id` becomes a committed offset (commit) or is dropped (abort), in
    /// every group of the shard. The committed offsets are written before the pending
    /// records' tombstones, so a torn write leaves the rest pending for the marker's retry.
    pub fn end_txn(&mut self, now: i64, req: RequestId, producer_id: i64, commit: bool) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let mut offsets = Vec::new();
        let mut tombstones = Vec::new();
        let mut groups: Vec<&Group> = self.groups.values().filter(|g| g.pending_txn.contains_key(&producer_id)).collect();
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        for g in groups {
            for ((t, p), v) in &g.pending_txn[&producer_id] {
                if commit {
                    offsets.push(Record::Offset { group: g.id.clone(), topic: t.clone(), partition: *p, value: Some(v.clone()) });
                }
                tombstones.push(Record::PendingOffset { producer_id, group: g.id.clone(), topic: t.clone(), partition: *p, value: None });
            }
        }
        for r in offsets.into_iter().chain(tombstones) {
            cx.emit(r);
        }
        cx.reply(req, Reply::TxnEnded);
        self.done(cx)
    }

    /// OffsetFetch of one group: `None` = all committed partitions. Unknown groups answer -1
    /// offsets (explicit partitions) or nothing (all), with no error (§3.2). With
    /// `require_stable`, a partition with a pending transactional offset answers -1 and
    /// UNSTABLE_OFFSET_COMMIT (checklist 98).
    pub fn fetch_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>, require_stable: bool) -> Vec<FetchedPartition> {
        let g = self.groups.get(group).filter(|g| !g.is(GroupState::Dead));
        let committed = |o: &OffsetValue| FetchedOffset { offset: o.offset, leader_epoch: o.leader_epoch, metadata: o.metadata.clone() };
        let row = |t: &str, p: i32, o: Option<&OffsetValue>| {
            if require_stable && g.is_some_and(|g| g.has_pending_txn_offset(t, p)) {
                return FetchedPartition {
                    topic: t.to_string(),
                    partition: p,
                    committed: FetchedOffset::absent(),
                    error: ErrorCode::UNSTABLE_OFFSET_COMMIT,
                };
            }
            FetchedPartition {
                topic: t.to_string(),
                partition: p,
                committed: o.map(committed).unwrap_or_else(FetchedOffset::absent),
                error: ErrorCode::NONE,
            }
        };
        match partitions {
            Some(list) => list.iter().map(|(t, p)| row(t, *p, g.and_then(|g| g.offsets.get(&(t.clone(), *p))))).collect(),
            None => {
                let mut v: Vec<FetchedPartition> =
                    g.map(|g| g.offsets.iter().map(|((t, p), o)| row(t, *p, Some(o))).collect()).unwrap_or_default();
                v.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                v
            }
        }
    }

    /// §4.8 check of an OffsetFetch v9 that names a member (checklist 134): in a consumer
    /// group, a member id must be a member's and its epoch current. Admin fetches (no member,
    /// epoch −1) and classic groups are not checked.
    pub fn check_offset_fetch(&self, group: &str, member_id: Option<&str>, member_epoch: i32) -> Result<(), ErrorCode> {
        let Some(cg) = self.groups.get(group).and_then(|g| g.consumer.as_ref()) else { return Ok(()) };
        let member_id = match member_id {
            None if member_epoch < 0 => return Ok(()),
            None => "",
            Some(m) => m,
        };
        let m = cg.members.get(member_id).ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
        if m.epoch != member_epoch {
            return Err(ErrorCode::STALE_MEMBER_EPOCH);
        }
        Ok(())
    }

    /// OffsetDelete (§3.3).
    pub fn delete_offsets(&mut self, now: i64, req: RequestId, group: &str, partitions: Vec<(String, i32)>) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let Some(g) = self.groups.get(group).filter(|g| !g.is(GroupState::Dead)) else {
            cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: ErrorCode::GROUP_ID_NOT_FOUND, partitions: Vec::new() }));
            return self.done(cx);
        };
        if !g.is_empty_group() && g.consumer.is_none() && g.protocol_type.as_deref() != Some("consumer") {
            cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: ErrorCode::NON_EMPTY_GROUP, partitions: Vec::new() }));
            return self.done(cx);
        }
        let subscribed = if g.is_empty_group() { Some(HashSet::new()) } else { g.subscribed_topics() };
        let mut results = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            let is_subscribed = subscribed.as_ref().is_none_or(|s| s.contains(&topic));
            if is_subscribed {
                results.push(PartitionError { topic, partition, error: ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC });
            } else {
                if g.offsets.contains_key(&(topic.clone(), partition)) {
                    tombstones.push(Record::Offset { group: group.to_string(), topic: topic.clone(), partition, value: None });
                }
                results.push(PartitionError { topic, partition, error: ErrorCode::NONE });
            }
        }
        for t in tombstones {
            cx.emit(t);
        }
        cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: ErrorCode::NONE, partitions: results }));
        self.done(cx)
    }

    /// DeleteGroups, for one group (§2.12).
    pub fn delete_group(&mut self, now: i64, req: RequestId, group: &str) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let code = match self.groups.get(group) {
            None => ErrorCode::GROUP_ID_NOT_FOUND,
            Some(g) if g.is(GroupState::Dead) => ErrorCode::GROUP_ID_NOT_FOUND,
            Some(g) if !g.is_empty_group() => ErrorCode::NON_EMPTY_GROUP,
            Some(g) => {
                let mut records: Vec<Record> = g
                    .offsets
                    .keys()
                    .map(|(t, p)| Record::Offset { group: group.to_string(), topic: t.clone(), partition: *p, value: None })
                    .collect();
                for (pid, pending) in &g.pending_txn {
                    records.extend(pending.keys().map(|(t, p)| Record::PendingOffset {
                        producer_id: *pid,
                        group: group.to_string(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    }));
                }
                if g.consumer.is_some() {
                    records.extend(ConsumerGroup::deletion_records(group).map(Record::Consumer));
                }
                records.push(Record::Group { group: group.to_string(), value: None });
                for r in records {
                    cx.emit(r);
                }
                ErrorCode::NONE
            }
        };
        cx.reply(req, Reply::DeleteGroup(code));
        self.done(cx)
    }

    /// Tombstones every offset of a deleted topic, in every group (checklist 104).
    pub fn on_topic_deleted(&mut self, now: i64, topic: &str) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let mut records = Vec::new();
        for g in self.groups.values() {
            for (t, p) in g.offsets.keys() {
                if t == topic {
                    records.push(Record::Offset { group: g.id.clone(), topic: t.clone(), partition: *p, value: None });
                }
            }
        }
        for r in records {
            cx.emit(r);
        }
        self.done(cx)
    }

    /// The offset expiry sweep (§3.4).
    pub(super) fn expire_offsets(&mut self, cx: &mut Cx) {
        let retention = self.config.offsets_retention_ms;
        let mut records = Vec::new();
        for g in self.groups.values() {
            // Which clock an offset's age runs on. A group without one (one that is rebalancing,
            // or a non-consumer group with members) expires nothing, not even offsets with an
            // explicit expire timestamp (Kafka's offsetExpirationCondition; checklist 103).
            let base: Option<OffsetClock> = match (&g.protocol_type, g.state) {
                (Some(_), GroupState::Empty) => {
                    let since = g.state_timestamp;
                    Some(Box::new(move |o: &OffsetValue| since.unwrap_or(o.commit_timestamp)))
                }
                (Some(t), GroupState::Stable) if t == "consumer" => Some(Box::new(|o: &OffsetValue| o.commit_timestamp)),
                (None, _) => Some(Box::new(|o: &OffsetValue| o.commit_timestamp)),
                _ => None,
            };
            let Some(base) = base else { continue };
            let subscribed = if g.is_empty_group() { Some(HashSet::new()) } else { g.subscribed_topics() };
            let mut expired = 0;
            for ((t, p), o) in &g.offsets {
                if subscribed.as_ref().is_none_or(|s| s.contains(t)) {
                    continue;
                }
                let gone = match o.expire_timestamp {
                    Some(e) => cx.now >= e,
                    None => cx.now - base(o) >= retention,
                };
                if gone {
                    expired += 1;
                    records.push(Record::Offset { group: g.id.clone(), topic: t.clone(), partition: *p, value: None });
                }
            }
            if expired == g.offsets.len() && g.is_empty_group() && g.members.is_empty() && g.pending_txn.is_empty() {
                if g.consumer.is_some() {
                    records.extend(ConsumerGroup::deletion_records(&g.id).map(Record::Consumer));
                }
                records.push(Record::Group { group: g.id.clone(), value: None });
            }
        }
        for r in records {
            cx.emit(r);
        }
    }
}

/// §3.1 validation of a commit against an existing group.
/// A transactional commit (TxnOffsetCommit) may come without member and generation from any
/// group, and is not refused while the group completes a rebalance.
fn validate_commit(g: &Group, c: &CommitInput, transactional: bool) -> Result<(), ErrorCode> {
    if let Some(cg) = &g.consumer {
        return validate_consumer_commit(cg, c, transactional);
    }
    if g.is(GroupState::Dead) {
        return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    }
    if c.generation_id < 0 && g.is(GroupState::Empty) {
        return Ok(());
    }
    if c.generation_id >= 0 || !c.member_id.is_empty() || c.group_instance_id.is_some() {
        g.validate_member(&c.member_id, c.group_instance_id.as_deref())?;
        if c.generation_id != g.generation {
            return Err(ErrorCode::ILLEGAL_GENERATION);
        }
    } else if !transactional {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    if !transactional && g.is(GroupState::CompletingRebalance) {
        return Err(ErrorCode::REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

/// §4.8 validation of a commit to a consumer group (checklist 133): the member epoch stands for
/// the generation. Without one (−1) only an empty group takes commits (an admin's); members of
/// the consumer protocol must use OffsetCommit v9 or later.
fn validate_consumer_commit(g: &ConsumerGroup, c: &CommitInput, transactional: bool) -> Result<(), ErrorCode> {
    if c.generation_id < 0 && g.members.is_empty() {
        return Ok(());
    }
    let m = g.members.get(&c.member_id).ok_or(ErrorCode::UNKNOWN_MEMBER_ID)?;
    if m.meta.classic.is_some() {
        // a classic member: its generation is its member epoch
        return if c.generation_id == m.epoch { Ok(()) } else { Err(ErrorCode::ILLEGAL_GENERATION) };
    }
    if !transactional && c.version < 9 {
        return Err(ErrorCode::UNSUPPORTED_VERSION);
    }
    if c.generation_id != m.epoch {
        // a transaction's producer knows ILLEGAL_GENERATION, not the consumer protocol's code
        return Err(if transactional { ErrorCode::ILLEGAL_GENERATION } else { ErrorCode::STALE_MEMBER_EPOCH });
    }
    Ok(())
}
