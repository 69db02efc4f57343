//! Drives one pure shard the way the runtime does, with literal time: timers fire in deadline
//! order as the clock advances, replies are collected per request, records are kept.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;

use super::RequestId;
use super::group::{Group, GroupState, Protocol};
use super::record::{RawRecord, Record};
use super::shard::*;
use crate::error::ErrorCode;

pub(crate) struct Kit {
    pub shard: Shard,
    pub now: i64,
    next: RequestId,
    timers: HashMap<TimerKey, i64>,
    pub replies: HashMap<RequestId, Reply>,
    pub records: Vec<Record>,
}

pub(crate) fn config() -> ShardConfig {
    ShardConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        max_size: usize::MAX,
        offsets_retention_ms: 7 * 24 * 3_600_000,
        offsets_retention_check_interval_ms: 600_000,
        offset_metadata_max_bytes: 4096,
        consumer_session_timeout_ms: 45_000,
        consumer_heartbeat_interval_ms: 5_000,
        consumer_max_size: usize::MAX,
        consumer_assignors: vec![crate::coordinator::consumer::Assignor::Uniform, crate::coordinator::consumer::Assignor::Range],
    }
}

/// A JoinGroup with sensible defaults: dynamic, consumer protocol "range", 10 s session,
/// 30 s rebalance timeout, v5.
pub(crate) fn join(group: &str, member: &str) -> JoinInput {
    JoinInput {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"m") }],
        version: 5,
    }
}

pub(crate) fn sync(group: &str, member: &str, generation: i32, assignments: &[(&str, &str)]) -> SyncInput {
    SyncInput {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments.iter().map(|(m, a)| (m.to_string(), Bytes::from(a.to_string()))).collect(),
    }
}

/// A static member's JoinGroup: `join` with a group.instance.id and MemberId "".
pub(crate) fn static_join(group: &str, instance: &str) -> JoinInput {
    JoinInput { group_instance_id: Some(instance.into()), ..join(group, "") }
}

/// Protocols with the given names, each with metadata `b"m"`, in order of preference.
pub(crate) fn protocols(names: &[&str]) -> Vec<Protocol> {
    names.iter().map(|n| Protocol { name: n.to_string(), metadata: Bytes::from_static(b"m") }).collect()
}

/// A ConsumerProtocol subscription (version 0: topics, null user data), as the Java client
/// sends it in its JoinGroup metadata.
pub(crate) fn subscription(topics: &[&str]) -> Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    b.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(b)
}

/// One member's entry in a LeaveGroup answer.
pub(crate) fn left_as(member: &str, instance: Option<&str>, error: ErrorCode) -> MemberError {
    MemberError { member_id: member.into(), group_instance_id: instance.map(Into::into), error }
}

/// One partition's entry in an OffsetDelete answer.
pub(crate) fn partition_error(topic: &str, partition: i32, error: ErrorCode) -> PartitionError {
    PartitionError { topic: topic.into(), partition, error }
}

/// One partition's entry in an OffsetFetch answer.
pub(crate) fn fetched(topic: &str, partition: i32, offset: i64, leader_epoch: i32, metadata: &str) -> FetchedPartition {
    FetchedPartition {
        topic: topic.into(),
        partition,
        committed: FetchedOffset { offset, leader_epoch, metadata: metadata.into() },
        error: ErrorCode::NONE,
    }
}

pub(crate) fn heartbeat(group: &str, member: &str, generation: i32) -> HeartbeatInput {
    HeartbeatInput { group_id: group.into(), member_id: member.into(), group_instance_id: None, generation_id: generation }
}

pub(crate) fn commit(group: &str, member: &str, generation: i32, parts: &[(&str, i32, i64)]) -> CommitInput {
    CommitInput {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        version: 8,
        partitions: parts
            .iter()
            .map(|(t, p, o)| CommitPartition { topic: t.to_string(), partition: *p, offset: *o, leader_epoch: -1, metadata: None })
            .collect(),
        producer_id: None,
    }
}

/// The topics of the KIP-848 tests: "t" (6 partitions, id 1), "u" (3 partitions, id 2).
pub(crate) fn topics() -> std::collections::BTreeMap<String, (uuid::Uuid, i32)> {
    [("t".to_string(), (uuid::Uuid::from_u128(1), 6)), ("u".to_string(), (uuid::Uuid::from_u128(2), 3))].into_iter().collect()
}

/// A ConsumerGroupHeartbeat v1 that joins `group` as `member`, subscribed to `subscribed`.
pub(crate) fn cjoin(group: &str, member: &str, subscribed: &[&str]) -> crate::coordinator::consumer::HeartbeatInput {
    crate::coordinator::consumer::HeartbeatInput {
        version: 1,
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(subscribed.iter().map(|t| t.to_string()).collect()),
        owned: Some(Default::default()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    }
}

/// A regular ConsumerGroupHeartbeat v1: only the member, its epoch and what it owns.
pub(crate) fn cbeat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: Option<crate::coordinator::consumer::Assignment>,
) -> crate::coordinator::consumer::HeartbeatInput {
    crate::coordinator::consumer::HeartbeatInput {
        version: 1,
        group_id: group.into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        ..Default::default()
    }
}

impl Kit {
    pub(crate) fn new() -> Self {
        Self::with(config())
    }

    pub(crate) fn with(config: ShardConfig) -> Self {
        Self::over(Shard::new(config, IdSource::Counter(0)), 1_000_000)
    }

    fn over(shard: Shard, now: i64) -> Self {
        Kit { shard, now, next: 0, timers: HashMap::new(), replies: HashMap::new(), records: Vec::new() }
    }

    fn take(&mut self, out: Output) {
        self.records.extend(out.records);
        for (id, r) in out.replies {
            assert!(self.replies.insert(id, r).is_none(), "request {id} answered twice");
        }
        for t in out.timers {
            match t {
                TimerOp::Set(k, at) => {
                    self.timers.insert(k, at);
                }
                TimerOp::Cancel(k) => {
                    self.timers.remove(&k);
                }
            }
        }
        self.fire_due();
    }

    /// Fires every timer due at `now`, earliest first (as the runtime does after each input).
    fn fire_due(&mut self) {
        loop {
            let due: BTreeSet<(i64, TimerKey)> =
                self.timers.iter().filter(|(_, at)| **at <= self.now).map(|(k, at)| (*at, k.clone())).collect();
            let Some((_, key)) = due.into_iter().next() else { return };
            self.timers.remove(&key);
            let out = self.shard.on_timer(self.now, &key);
            self.take(out);
        }
    }

    fn id(&mut self) -> RequestId {
        self.next += 1;
        self.next
    }

    pub(crate) fn join(&mut self, j: JoinInput) -> RequestId {
        let id = self.id();
        let out = self.shard.join(self.now, id, j);
        self.take(out);
        id
    }

    pub(crate) fn sync(&mut self, s: SyncInput) -> RequestId {
        let id = self.id();
        let out = self.shard.sync(self.now, id, s, 3);
        self.take(out);
        id
    }

    pub(crate) fn heartbeat(&mut self, h: HeartbeatInput) -> ErrorCode {
        let id = self.id();
        let out = self.shard.heartbeat(self.now, id, h);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::Heartbeat(c)) => c,
            other => panic!("heartbeat got {other:?}"),
        }
    }

    pub(crate) fn leave(&mut self, group: &str, members: &[(&str, Option<&str>)]) -> LeaveResult {
        let id = self.id();
        let input = LeaveInput {
            group_id: group.into(),
            members: members.iter().map(|(m, i)| (m.to_string(), i.map(|i| i.to_string()))).collect(),
        };
        let out = self.shard.leave(self.now, id, input);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::Leave(r)) => r,
            other => panic!("leave got {other:?}"),
        }
    }

    /// A ConsumerGroupHeartbeat against [`topics`].
    pub(crate) fn cgh(&mut self, h: crate::coordinator::consumer::HeartbeatInput) -> crate::coordinator::consumer::HeartbeatResult {
        self.cgh_over(h, &topics())
    }

    /// A ConsumerGroupHeartbeat against `view`.
    pub(crate) fn cgh_over(
        &mut self,
        h: crate::coordinator::consumer::HeartbeatInput,
        view: &dyn crate::coordinator::consumer::TopicView,
    ) -> crate::coordinator::consumer::HeartbeatResult {
        let id = self.id();
        let out = self.shard.consumer_heartbeat(self.now, id, h, view);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::ConsumerHeartbeat(r)) => r,
            other => panic!("consumer heartbeat got {other:?}"),
        }
    }

    pub(crate) fn commit(&mut self, c: CommitInput) -> Vec<ErrorCode> {
        let id = self.id();
        let out = self.shard.commit(self.now, id, c);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::Commit(v)) => v,
            other => panic!("commit got {other:?}"),
        }
    }

    /// A TxnOffsetCommit of producer `pid` (generation -1, no member).
    pub(crate) fn txn_commit(&mut self, group: &str, pid: i64, parts: &[(&str, i32, i64)]) -> Vec<ErrorCode> {
        self.commit(CommitInput { producer_id: Some(pid), ..commit(group, "", -1, parts) })
    }

    /// The COMMIT (or ABORT) marker of producer `pid`'s transaction reaching the shard.
    pub(crate) fn end_txn(&mut self, pid: i64, commit: bool) {
        let id = self.id();
        let out = self.shard.end_txn(self.now, id, pid, commit);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::TxnEnded) => {}
            other => panic!("end_txn got {other:?}"),
        }
    }

    pub(crate) fn delete_group(&mut self, group: &str) -> ErrorCode {
        let id = self.id();
        let out = self.shard.delete_group(self.now, id, group);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::DeleteGroup(c)) => c,
            other => panic!("delete got {other:?}"),
        }
    }

    pub(crate) fn delete_offsets(&mut self, group: &str, parts: &[(&str, i32)]) -> OffsetDeleteResult {
        let id = self.id();
        let out = self.shard.delete_offsets(self.now, id, group, parts.iter().map(|(t, p)| (t.to_string(), *p)).collect());
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::OffsetDelete(r)) => r,
            other => panic!("offset delete got {other:?}"),
        }
    }

    /// Moves the clock forward, firing timers as their deadlines pass.
    pub(crate) fn advance(&mut self, ms: i64) {
        let target = self.now + ms;
        loop {
            let next = self.timers.values().copied().filter(|at| *at <= target).min();
            match next {
                Some(at) => {
                    self.now = at.max(self.now);
                    self.fire_due();
                }
                None => break,
            }
        }
        self.now = target;
    }

    /// The answer to a JoinGroup, if it has come.
    pub(crate) fn joined(&mut self, id: RequestId) -> Option<JoinResult> {
        match self.replies.remove(&id) {
            Some(Reply::Join(r)) => Some(r),
            None => None,
            other => panic!("join got {other:?}"),
        }
    }

    /// The answer to a SyncGroup, if it has come.
    pub(crate) fn synced(&mut self, id: RequestId) -> Option<SyncResult> {
        match self.replies.remove(&id) {
            Some(Reply::Sync(r)) => Some(r),
            None => None,
            other => panic!("sync got {other:?}"),
        }
    }

    pub(crate) fn group(&self, id: &str) -> &Group {
        self.shard.group(id).unwrap_or_else(|| panic!("no group {id}"))
    }

    pub(crate) fn has_timer(&self, key: &TimerKey) -> Option<i64> {
        self.timers.get(key).copied()
    }

    /// Writes every record so far to an offsets log on the memory storage twin (small
    /// segments), optionally compacts it, then rebuilds a fresh shard from the log, as start-up
    /// does. Returns the shard and what compaction did.
    pub(crate) fn replayed_through_log(&self, compact: bool) -> (Shard, Option<crate::log::keyed::Compacted>) {
        use crate::log::keyed::{KeyedConfig, KeyedLog};
        use crate::log::storage::{MemoryStorage, Storage};
        let storage: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStorage::new());
        let log_config = KeyedConfig { segment_bytes: 512, delete_retention_ms: 0, min_compaction_bytes: 0 };
        let log = KeyedLog::open("test", storage.clone(), log_config.clone(), |_| {}).expect("open");
        for r in self.raw_records() {
            log.append(&[(r.key, r.value)], self.now).expect("append");
        }
        log.sync_now().expect("sync");
        let stats = compact.then(|| log.compact(self.now + 1).expect("compact"));
        drop(log);
        let mut s = Shard::new(config(), IdSource::Counter(1000));
        s.begin_load();
        let now = self.now;
        KeyedLog::open("test", storage, log_config, |e| {
            s.apply(now, &Record::decode_parts(e.key, e.value).expect("records decode"));
        })
        .expect("reopen");
        let _ = s.finish_load(self.now);
        (s, stats)
    }

    /// Replays every record written so far into a fresh shard, as start-up does.
    pub(crate) fn replayed(&self) -> Shard {
        Kit::loaded(self.shard.config.clone(), self.now, &self.raw_records()).shard
    }

    /// The records written so far, encoded as the log stores them.
    pub(crate) fn raw_records(&self) -> Vec<RawRecord> {
        self.records.iter().map(Record::encode).collect()
    }

    /// A kit over a shard loaded from `raws` at `now`, as start-up loads one: every record is
    /// decoded (unknown types too) and applied, then `finish_load` arms the timers. The kit's
    /// `records` start as the known records of the log, so later writes append to them.
    pub(crate) fn loaded(config: ShardConfig, now: i64, raws: &[RawRecord]) -> Kit {
        // member ids of its own, so ids it hands out never collide with the loaded ones
        let mut kit = Kit::over(Shard::new(config, IdSource::Counter(1000)), now);
        kit.shard.begin_load();
        for raw in raws {
            let r = Record::decode(raw).expect("records decode");
            kit.shard.apply(now, &r);
            if !matches!(r, Record::Unknown { .. }) {
                kit.records.push(r);
            }
        }
        let out = kit.shard.finish_load(now);
        kit.take(out);
        kit
    }

    /// Runs the offset expiry sweep now. Tests call it explicitly: the periodic timer it re-arms
    /// is dropped, so no sweep happens behind a test's back.
    pub(crate) fn sweep(&mut self) {
        let out = self.shard.on_timer(self.now, &TimerKey::OffsetExpiry);
        self.take(out);
        self.timers.remove(&TimerKey::OffsetExpiry);
    }

    /// A topic was deleted.
    pub(crate) fn topic_deleted(&mut self, topic: &str) {
        let out = self.shard.on_topic_deleted(self.now, topic);
        self.take(out);
    }

    /// Marks a group Dead, as Kafka's tests do to reach that state (a shard only removes
    /// groups, it never keeps a Dead one).
    pub(crate) fn kill(&mut self, group: &str) {
        let now = self.now;
        self.shard.group_mut(group).unwrap_or_else(|| panic!("no group {group}")).transition(GroupState::Dead, now);
    }

    /// The records written since `from` (an earlier `records.len()`).
    pub(crate) fn records_since(&self, from: usize) -> &[Record] {
        &self.records[from..]
    }

    /// The member id a JoinGroup request got or is parked under.
    fn member_of(&self, group: &str, req: RequestId) -> String {
        if let Some(Reply::Join(r)) = self.replies.get(&req) {
            return r.member_id.clone();
        }
        self.group(group)
            .members
            .values()
            .find(|m| m.awaiting_join.map(|w| w.request) == Some(req))
            .unwrap_or_else(|| panic!("join {req} neither answered nor parked"))
            .id
            .clone()
    }

    /// A new member joins: dynamic members at v4+ take the MEMBER_ID_REQUIRED step first.
    /// Returns the member id and the request id of the (possibly parked) join that counts.
    pub(crate) fn join_new(&mut self, j: JoinInput) -> (String, RequestId) {
        assert!(j.member_id.is_empty(), "join_new is for new members");
        if j.group_instance_id.is_none() && j.version >= 4 {
            let first = self.join(j.clone());
            let r = self.joined(first).expect("MEMBER_ID_REQUIRED comes at once");
            assert_eq!(r.error, ErrorCode::MEMBER_ID_REQUIRED);
            let id = self.join(JoinInput { member_id: r.member_id.clone(), ..j });
            return (r.member_id, id);
        }
        let group = j.group_id.clone();
        let req = self.join(j);
        (self.member_of(&group, req), req)
    }

    /// New members join an Empty group (no initial delay) and the join phase completes with all
    /// of them: the first member's join completes alone at once, so it rejoins to let the others
    /// in. Returns every member's id and JoinGroup answer, in join order (the first leads).
    pub(crate) fn join_all(&mut self, joins: Vec<JoinInput>) -> Vec<(String, JoinResult)> {
        assert_eq!(self.shard.config.initial_rebalance_delay_ms, 0, "join_all expects no initial delay");
        let group = joins[0].group_id.clone();
        let mut members: Vec<(String, RequestId)> = Vec::new();
        for j in &joins {
            members.push(self.join_new(j.clone()));
        }
        let first = self.joined(members[0].1).expect("a lone first member is answered at once");
        assert_eq!(first.error, ErrorCode::NONE);
        if members.len() == 1 {
            return vec![(members[0].0.clone(), first)];
        }
        members[0].1 = self.join(JoinInput { member_id: members[0].0.clone(), ..joins[0].clone() });
        let answers: Vec<(String, JoinResult)> = members
            .into_iter()
            .map(|(id, req)| {
                let answer = self.joined(req).unwrap_or_else(|| panic!("{id} not answered"));
                (id, answer)
            })
            .collect();
        for (id, r) in &answers {
            assert_eq!((id.as_str(), r.error), (id.as_str(), ErrorCode::NONE));
        }
        assert!(self.group(&group).is(GroupState::CompletingRebalance));
        answers
    }

    /// A Stable group of these members: they join (see `join_all`), the leader (the first)
    /// assigns `a-<member id>` to each, and everyone syncs. Returns the member ids, leader first.
    pub(crate) fn stable_members(&mut self, joins: Vec<JoinInput>) -> Vec<String> {
        let group = joins[0].group_id.clone();
        let answers = self.join_all(joins);
        let generation = answers[0].1.generation_id;
        let ids: Vec<String> = answers.iter().map(|(id, _)| id.clone()).collect();
        assert_eq!(answers[0].1.leader, ids[0]);
        let assignments: Vec<(String, String)> = ids.iter().map(|id| (id.clone(), format!("a-{id}"))).collect();
        let pairs: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
        let mut reqs = Vec::new();
        for (k, id) in ids.iter().enumerate() {
            let mut s = sync(&group, id, generation, if k == 0 { &pairs } else { &[] });
            s.group_instance_id = self.group(&group).members[id].instance_id.clone();
            reqs.push(self.sync(s));
        }
        for (id, req) in ids.iter().zip(reqs) {
            let r = self.synced(req).unwrap_or_else(|| panic!("{id} sync not answered"));
            assert_eq!(r.error, ErrorCode::NONE);
            assert_eq!(r.assignment, Bytes::from(format!("a-{id}")));
        }
        assert!(self.group(&group).is(GroupState::Stable));
        ids
    }

    /// A Stable group of `n` dynamic members with `join`'s defaults.
    pub(crate) fn stable(&mut self, group: &str, n: usize) -> Vec<String> {
        self.stable_members(vec![join(group, ""); n])
    }

    /// Moves the clock `ms` forward in steps of `step`, each member heartbeating (at the group's
    /// current generation) after every step, as live clients do.
    pub(crate) fn advance_heartbeating(&mut self, ms: i64, step: i64, group: &str, members: &[&str]) {
        let end = self.now + ms;
        while self.now < end {
            self.advance(step.min(end - self.now));
            let generation = self.shard.group(group).map_or(-1, |g| g.generation);
            for m in members {
                self.heartbeat(heartbeat(group, m, generation));
            }
        }
    }
}
