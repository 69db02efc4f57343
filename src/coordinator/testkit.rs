//! Drives one pure shard the way the runtime does, with literal time: timers fire in deadline
//! order as the clock advances, replies are collected per request, records are kept.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;

use super::RequestId;
use super::group::{Group, Protocol};
use super::record::Record;
use super::shard::*;

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
    }
}

impl Kit {
    pub(crate) fn new() -> Self {
        Self::with(config())
    }

    pub(crate) fn with(config: ShardConfig) -> Self {
        Kit {
            shard: Shard::new(config, IdSource::Counter(0)),
            now: 1_000_000,
            next: 0,
            timers: HashMap::new(),
            replies: HashMap::new(),
            records: Vec::new(),
        }
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

    pub(crate) fn heartbeat(&mut self, h: HeartbeatInput) -> i16 {
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

    pub(crate) fn commit(&mut self, c: CommitInput) -> Vec<i16> {
        let id = self.id();
        let out = self.shard.commit(self.now, id, c);
        self.take(out);
        match self.replies.remove(&id) {
            Some(Reply::Commit(v)) => v,
            other => panic!("commit got {other:?}"),
        }
    }

    pub(crate) fn delete_group(&mut self, group: &str) -> i16 {
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

    /// A dynamic member joins a group (two steps at v4+) and, if it is answered at once,
    /// returns its answer; the request id is returned for a parked join.
    pub(crate) fn join_dynamic(&mut self, group: &str) -> (String, RequestId) {
        let first = self.join(join(group, ""));
        let r = self.joined(first).expect("MEMBER_ID_REQUIRED comes at once");
        assert_eq!(r.error, crate::error::codes::MEMBER_ID_REQUIRED);
        let id = self.join(join(group, &r.member_id));
        (r.member_id, id)
    }

    /// Replays every record written so far into a fresh shard, as start-up does.
    pub(crate) fn replayed(&self) -> Shard {
        let mut s = Shard::new(config(), IdSource::Counter(1000));
        s.begin_load();
        for r in &self.records {
            let raw = r.encode();
            s.apply(self.now, &Record::decode(&raw).expect("records decode"));
        }
        let _ = s.finish_load(self.now);
        s
    }
}
