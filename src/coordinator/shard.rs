//! One coordinator shard: a pure state machine over the groups that hash to it.
//!
//! Every input is `(now_ms, request)` and every output is data: the records to append, the
//! replies to send (to this request or to parked ones, once the records are durable), and the
//! timers to set or cancel. No socket, file, clock or runtime is touched here, so a test can
//! drive a whole rebalance with literal timestamps. The rules follow Kafka's classic group
//! coordinator; `reference/kafka-group-coordinator.md` §2-3 (cited as §) gives them one by one.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use super::group::{Group, GroupState, Member, Protocol, Waiter};
use super::record::{GroupValue, OffsetValue, Record};
use super::RequestId;
use crate::error::codes;

/// Kafka's fixed timeout for a new member's parked JoinGroup (§2.5).
pub const NEW_MEMBER_JOIN_TIMEOUT_MS: i64 = 300_000;

/// The settings a shard acts on.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
}

impl ShardConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        ShardConfig {
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            max_size: c.group_max_size as usize,
            offsets_retention_ms: c.offsets_retention_ms(),
            offsets_retention_check_interval_ms: c.offsets_retention_check_interval_ms,
            offset_metadata_max_bytes: c.offset_metadata_max_bytes as usize,
        }
    }
}

/// What a timer is for. Setting a key replaces its previous deadline; a cancelled or replaced
/// timer never fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's session (or a pending member's, or a new member's join timeout).
    Heartbeat { group: String, member: String },
    /// The end of a join phase: the initial delay, or the rebalance timeout.
    Join { group: String },
    /// Members that have not sent SyncGroup for this generation by then are removed.
    Sync { group: String, generation: i32 },
    /// The periodic offset expiry sweep of the shard.
    OffsetExpiry,
}

/// A timer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    Set(TimerKey, i64),
    Cancel(TimerKey),
}

/// How member ids are made: random UUIDs in production, a counter in tests.
#[derive(Debug, Clone)]
pub enum IdSource {
    Random,
    Counter(u64),
}

/// A JoinGroup, as the shard sees it.
#[derive(Debug, Clone)]
pub struct JoinInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub version: i16,
}

/// One member in the leader's JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(error: i16, member_id: &str) -> Self {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup, as the shard sees it.
#[derive(Debug, Clone)]
pub struct SyncInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> Self {
        SyncResult { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A Heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// A LeaveGroup (always in the batch form of v3+).
#[derive(Debug, Clone)]
pub struct LeaveInput {
    pub group_id: String,
    pub members: Vec<(String, Option<String>)>,
}

/// A LeaveGroup answer: a top-level error and one per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResult {
    pub error: i16,
    pub members: Vec<(String, Option<String>, i16)>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit (after the API layer removed unknown topics and partitions).
#[derive(Debug, Clone)]
pub struct CommitInput {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v2-4 `retention_time_ms`; -1 = the broker default.
    pub retention_time_ms: i64,
    pub version: i16,
    pub partitions: Vec<CommitPartition>,
}

/// An OffsetDelete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResult {
    pub error: i16,
    pub partitions: Vec<(String, i32, i16)>,
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
    Heartbeat(i16),
    Leave(LeaveResult),
    /// One error per partition, in request order.
    Commit(Vec<i16>),
    DeleteGroup(i16),
    OffsetDelete(OffsetDeleteResult),
}

/// What handling one input produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub records: Vec<Record>,
    pub replies: Vec<(RequestId, Reply)>,
    pub timers: Vec<TimerOp>,
}

/// A fetched offset: (offset, leader epoch, metadata).
pub type FetchedOffset = (i64, i32, String);

/// A DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_data: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// A ListGroups entry: (group id, protocol type, state).
pub type Listed = (String, String, &'static str);

/// The shard.
#[derive(Debug)]
pub struct Shard {
    pub config: ShardConfig,
    groups: crate::FastMap<String, Group>,
    ids: IdSource,
    /// Replaying the log at start-up: GroupMetadata records rebuild their groups.
    loading: bool,
}

/// Per-input scratch: the time and what is being produced.
struct Cx {
    now: i64,
    out: Output,
}

impl Cx {
    fn reply(&mut self, to: RequestId, r: Reply) {
        self.out.replies.push((to, r));
    }
    fn set(&mut self, key: TimerKey, after_ms: i64) {
        self.out.timers.push(TimerOp::Set(key, self.now.saturating_add(after_ms.max(0))));
    }
    fn cancel(&mut self, key: TimerKey) {
        self.out.timers.push(TimerOp::Cancel(key));
    }
    fn emit(&mut self, record: Record) {
        self.out.records.push(record);
    }
}

fn heartbeat_key(g: &str, m: &str) -> TimerKey {
    TimerKey::Heartbeat { group: g.to_string(), member: m.to_string() }
}
fn join_key(g: &str) -> TimerKey {
    TimerKey::Join { group: g.to_string() }
}

/// The time an offset's retention is counted from, for one group's expiry rule (§3.4).
type OffsetClock = Box<dyn Fn(&OffsetValue) -> i64>;

/// Length of a string as Java counts it (UTF-16 code units).
fn java_len(s: &str) -> usize {
    s.encode_utf16().count()
}

impl Shard {
    pub fn new(config: ShardConfig, ids: IdSource) -> Self {
        Shard { config, groups: Default::default(), ids, loading: false }
    }

    /// The group with this id.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    /// The group with this id, to change by hand (tests reach states such as Dead this way).
    #[cfg(test)]
    pub(crate) fn group_mut(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.get_mut(id)
    }

    /// Every group.
    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        match &mut self.ids {
            IdSource::Random => format!("{prefix}-{}", uuid::Uuid::new_v4()),
            IdSource::Counter(n) => {
                *n += 1;
                format!("{prefix}-{n}")
            }
        }
    }

    // ------------------------------------------------------------------ records

    /// Applies one record: the only way offsets and persisted group snapshots change. While
    /// loading, a GroupMetadata record also rebuilds its group (Stable with the stored members,
    /// or Empty). Live handlers have already brought the live group to the state their records
    /// describe, as Kafka's classic-group writes do (they are not replayed live either).
    /// Replays one record of the log while loading: [`Shard::apply`], taking the record by
    /// value so that the common case, an offset, moves its strings instead of copying them.
    pub fn replay(&mut self, now: i64, record: Record) {
        match record {
            Record::Offset { group, topic, partition, value: Some(v) } => {
                let g = match self.groups.get_mut(&group) {
                    Some(g) => g,
                    None => self.groups.entry(group.clone()).or_insert_with(|| Group::new(&group, now)),
                };
                g.offsets.insert((topic, partition), v);
            }
            other => self.apply(now, &other),
        }
    }

    pub fn apply(&mut self, now: i64, record: &Record) {
        match record {
            Record::Offset { group, topic, partition, value } => match value {
                Some(v) => {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, now));
                    g.offsets.insert((topic.clone(), *partition), v.clone());
                }
                None => {
                    if let Some(g) = self.groups.get_mut(group) {
                        g.offsets.remove(&(topic.clone(), *partition));
                    }
                }
            },
            Record::Group { group, value: None } => {
                self.groups.remove(group);
            }
            Record::Group { group, value: Some(v) } => {
                if self.loading {
                    let offsets = self.groups.remove(group).map(|g| g.offsets).unwrap_or_default();
                    let mut g = load_group(group, v, now);
                    g.offsets = offsets;
                    self.groups.insert(group.clone(), g);
                } else {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, now));
                    g.persisted = Some(v.clone());
                }
            }
            Record::Unknown { key_version } => {
                tracing::warn!(key_version, "skipping a coordinator record of an unknown type");
            }
        }
    }

    /// Applies the records an input produced, in order, and hands back the output. Handlers
    /// only collect records; this is where they take effect.
    fn done(&mut self, cx: Cx) -> Output {
        for r in &cx.out.records {
            self.apply(cx.now, r);
        }
        cx.out
    }

    /// Starts replaying the log: records arriving before [`Shard::finish_load`] rebuild groups.
    pub fn begin_load(&mut self) {
        self.loading = true;
    }

    /// Ends the load (Kafka's `onLoaded`): every member gets a session timer from now, groups
    /// larger than group.max.size rebalance, and the offset expiry sweep is scheduled.
    pub fn finish_load(&mut self, now: i64) -> Output {
        self.loading = false;
        let mut cx = Cx { now, out: Output::default() };
        let ids: Vec<String> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(mut g) = self.groups.remove(&id) else { continue };
            for m in g.members.values() {
                cx.set(heartbeat_key(&g.id, &m.id), m.session_timeout_ms as i64);
            }
            if g.members.len() > self.config.max_size && g.is(GroupState::Stable) {
                self.prepare_rebalance(&mut cx, &mut g);
            }
            self.groups.insert(id, g);
        }
        cx.set(TimerKey::OffsetExpiry, self.config.offsets_retention_check_interval_ms);
        self.done(cx)
    }

    // ------------------------------------------------------------------ JoinGroup (§2.5-2.8)

    /// JoinGroup.
    pub fn join(&mut self, now: i64, req: RequestId, j: JoinInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let waiter = Waiter { request: req, version: j.version };
        if j.session_timeout_ms < self.config.min_session_timeout_ms
            || j.session_timeout_ms > self.config.max_session_timeout_ms
        {
            cx.reply(req, Reply::Join(JoinResult::error(codes::INVALID_SESSION_TIMEOUT, &j.member_id)));
            return self.done(cx);
        }
        let mut g = match self.groups.remove(&j.group_id) {
            Some(g) => g,
            None if j.member_id.is_empty() => {
                let g = Group::new(&j.group_id, now);
                // Checklist 106: a new group is made durable with an empty snapshot.
                cx.emit(Record::Group { group: j.group_id.clone(), value: Some(g.snapshot(now, None)) });
                g
            }
            None => {
                cx.reply(req, Reply::Join(JoinResult::error(codes::UNKNOWN_MEMBER_ID, &j.member_id)));
                return self.done(cx);
            }
        };
        if !g.accepts_joining_member(&j.member_id, self.config.max_size) {
            if g.members.contains_key(&j.member_id) {
                self.remove_member(&mut cx, &mut g, &j.member_id);
            }
            cx.reply(req, Reply::Join(JoinResult::error(codes::GROUP_MAX_SIZE_REACHED, "")));
        } else if j.member_id.is_empty() {
            self.join_new_member(&mut cx, &mut g, waiter, j);
        } else {
            self.join_existing_member(&mut cx, &mut g, waiter, j);
        }
        self.groups.insert(g.id.clone(), g);
        self.done(cx)
    }

    fn join_new_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        if g.is(GroupState::Dead) {
            cx.reply(req, Reply::Join(JoinResult::error(codes::COORDINATOR_NOT_AVAILABLE, "")));
            return;
        }
        if !g.supports_protocols(&j.protocol_type, &j.protocols) {
            cx.reply(req, Reply::Join(JoinResult::error(codes::INCONSISTENT_GROUP_PROTOCOL, "")));
            return;
        }
        let prefix = j.group_instance_id.clone().unwrap_or_else(|| j.client_id.clone());
        let new_id = self.new_member_id(&prefix);
        if let Some(instance) = j.group_instance_id.clone() {
            match g.static_members.get(&instance).cloned() {
                Some(old_id) => self.replace_static_member(cx, g, &old_id, new_id, waiter, j),
                None => self.add_member(cx, g, new_id, waiter, j),
            }
        } else if j.version >= 4 {
            // §2.5: the two-step join; the id is remembered until it rejoins or its session ends.
            g.pending_members.insert(new_id.clone());
            cx.set(heartbeat_key(&g.id, &new_id), j.session_timeout_ms as i64);
            cx.reply(req, Reply::Join(JoinResult::error(codes::MEMBER_ID_REQUIRED, &new_id)));
        } else {
            self.add_member(cx, g, new_id, waiter, j);
        }
    }

    fn join_existing_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        let fail = |cx: &mut Cx, code| cx.reply(req, Reply::Join(JoinResult::error(code, &j.member_id)));
        if g.is(GroupState::Dead) {
            return fail(cx, codes::COORDINATOR_NOT_AVAILABLE);
        }
        if !g.supports_protocols(&j.protocol_type, &j.protocols) {
            return fail(cx, codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        if g.pending_members.contains(&j.member_id) {
            let id = j.member_id.clone();
            return self.add_member(cx, g, id, waiter, j);
        }
        if let Err(code) = g.validate_member(&j.member_id, j.group_instance_id.as_deref()) {
            return fail(cx, code);
        }
        match g.state {
            GroupState::PreparingRebalance => self.update_member(cx, g, waiter, j),
            GroupState::CompletingRebalance => {
                if g.members[&j.member_id].same_protocols(&j.protocols) {
                    // §2.6: a duplicate join during CompletingRebalance gets the current generation.
                    let r = join_answer(g, &j.member_id, g.leader.as_deref() == Some(j.member_id.as_str()));
                    cx.reply(req, Reply::Join(r));
                } else {
                    self.update_member(cx, g, waiter, j);
                }
            }
            GroupState::Stable => {
                let is_leader = g.leader.as_deref() == Some(j.member_id.as_str());
                if is_leader || !g.members[&j.member_id].same_protocols(&j.protocols) {
                    self.update_member(cx, g, waiter, j);
                } else {
                    cx.reply(req, Reply::Join(join_answer(g, &j.member_id, false)));
                }
            }
            GroupState::Empty | GroupState::Dead => fail(cx, codes::UNKNOWN_MEMBER_ID),
        }
    }

    /// Kafka's `addMemberThenRebalanceOrCompleteJoin`.
    fn add_member(&mut self, cx: &mut Cx, g: &mut Group, id: String, waiter: Waiter, j: JoinInput) {
        if g.members.is_empty() {
            g.protocol_type = Some(j.protocol_type.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        if let Some(instance) = &j.group_instance_id {
            g.static_members.insert(instance.clone(), id.clone());
        }
        g.pending_members.remove(&id);
        if g.is(GroupState::PreparingRebalance) && g.previous_state == GroupState::Empty {
            g.new_member_added = true;
        }
        g.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: j.group_instance_id,
                client_id: j.client_id,
                client_host: j.client_host,
                session_timeout_ms: j.session_timeout_ms,
                rebalance_timeout_ms: j.rebalance_timeout_ms,
                protocol_type: j.protocol_type,
                protocols: j.protocols,
                assignment: Bytes::new(),
                awaiting_join: Some(waiter),
                awaiting_sync: None,
                is_new: true,
            },
        );
        cx.set(heartbeat_key(&g.id, &id), NEW_MEMBER_JOIN_TIMEOUT_MS);
        if g.can_rebalance() {
            self.prepare_rebalance(cx, g);
        } else {
            self.maybe_complete_join(cx, g);
        }
    }

    /// Kafka's `updateMemberThenRebalanceOrCompleteJoin`.
    fn update_member(&mut self, cx: &mut Cx, g: &mut Group, waiter: Waiter, j: JoinInput) {
        let m = g.members.get_mut(&j.member_id).expect("validated member");
        if let Some(old) = m.awaiting_join.replace(waiter) {
            // A second JoinGroup from the same member: the first one is superseded.
            cx.reply(old.request, Reply::Join(JoinResult::error(codes::REBALANCE_IN_PROGRESS, &m.id)));
        }
        m.protocols = j.protocols;
        m.rebalance_timeout_ms = j.rebalance_timeout_ms;
        m.session_timeout_ms = j.session_timeout_ms;
        if g.can_rebalance() {
            self.prepare_rebalance(cx, g);
        } else {
            self.maybe_complete_join(cx, g);
        }
    }

    /// §2.10: a static member rejoining with an unknown member id takes over its old identity.
    fn replace_static_member(&mut self, cx: &mut Cx, g: &mut Group, old_id: &str, new_id: String, waiter: Waiter, j: JoinInput) {
        let req = waiter.request;
        let previous_leader = g.leader.clone();
        let selected_before = g.protocol_name.clone();
        let mut m = g.members.remove(old_id).expect("static member maps to a member");
        if let Some(w) = m.awaiting_join.take() {
            cx.reply(w.request, Reply::Join(JoinResult::error(codes::FENCED_INSTANCE_ID, old_id)));
        }
        if let Some(w) = m.awaiting_sync.take() {
            cx.reply(w.request, Reply::Sync(SyncResult::error(codes::FENCED_INSTANCE_ID)));
        }
        cx.cancel(heartbeat_key(&g.id, old_id));
        let was_pending_sync = g.pending_sync.remove(old_id);
        m.id = new_id.clone();
        m.protocols = j.protocols.clone();
        m.rebalance_timeout_ms = j.rebalance_timeout_ms;
        m.session_timeout_ms = j.session_timeout_ms;
        let instance = j.group_instance_id.clone().expect("static member");
        g.static_members.insert(instance, new_id.clone());
        if g.leader.as_deref() == Some(old_id) {
            g.leader = Some(new_id.clone());
        }
        if was_pending_sync {
            g.pending_sync.insert(new_id.clone());
        }
        cx.set(heartbeat_key(&g.id, &new_id), m.session_timeout_ms as i64);
        g.members.insert(new_id.clone(), m);
        match g.state {
            GroupState::Stable if g.select_protocol() == selected_before => {
                // No rebalance: persist the new id, then answer (v9: SkipAssignment for the
                // leader; older versions are told the previous leader id, so an ex-leader
                // does not believe it must assign).
                cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, None)) });
                let is_leader = g.leader.as_deref() == Some(new_id.as_str());
                let mut r = join_answer(g, &new_id, is_leader && j.version >= 9);
                if j.version >= 9 {
                    r.skip_assignment = is_leader;
                } else {
                    r.leader = previous_leader.unwrap_or_default();
                }
                cx.reply(req, Reply::Join(r));
            }
            GroupState::Stable | GroupState::CompletingRebalance => {
                g.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(waiter);
                self.prepare_rebalance(cx, g);
            }
            _ => {
                g.members.get_mut(&new_id).expect("inserted").awaiting_join = Some(waiter);
                self.maybe_complete_join(cx, g);
            }
        }
    }

    /// §2.7: enters PreparingRebalance and arms the join phase's end.
    fn prepare_rebalance(&mut self, cx: &mut Cx, g: &mut Group) {
        if g.is(GroupState::CompletingRebalance) {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.awaiting_sync.take() {
                    cx.reply(w.request, Reply::Sync(SyncResult::error(codes::REBALANCE_IN_PROGRESS)));
                }
            }
        }
        cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
        g.pending_sync.clear();
        if g.is(GroupState::Empty) {
            let delay = self.config.initial_rebalance_delay_ms;
            let remaining = (g.rebalance_timeout_ms() - delay).max(0);
            g.initial_delay = Some((remaining, delay));
            g.new_member_added = false;
            cx.set(join_key(&g.id), delay);
        } else {
            g.initial_delay = None;
            cx.set(join_key(&g.id), g.rebalance_timeout_ms());
        }
        metrics::counter!("corral_rebalances_total").increment(1);
        g.rebalance_started.get_or_insert(cx.now);
        g.transition(GroupState::PreparingRebalance, cx.now);
        self.maybe_complete_join(cx, g);
    }

    /// Completes the join phase early once everyone has rejoined — never during the initial
    /// (delayed) rebalance of a group that was Empty (§2.7).
    fn maybe_complete_join(&mut self, cx: &mut Cx, g: &mut Group) {
        if g.is(GroupState::PreparingRebalance) && g.all_members_joined() && g.previous_state != GroupState::Empty {
            self.complete_join(cx, g);
        }
    }

    /// The join timer fired.
    fn on_join_timer(&mut self, cx: &mut Cx, g: &mut Group) {
        if !g.is(GroupState::PreparingRebalance) {
            return;
        }
        if let Some((remaining, delay)) = g.initial_delay
            && g.new_member_added
            && remaining != 0
        {
            // §2.7: a member joined during the initial delay: wait another step.
            g.new_member_added = false;
            let next = self.config.initial_rebalance_delay_ms.min(remaining);
            g.initial_delay = Some(((remaining - delay).max(0), next));
            cx.set(join_key(&g.id), next);
            return;
        }
        self.complete_join(cx, g);
    }

    /// §2.8: removes dynamic members that did not rejoin, starts the next generation and
    /// answers every parked JoinGroup.
    fn complete_join(&mut self, cx: &mut Cx, g: &mut Group) {
        let stragglers: Vec<String> = g
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in stragglers {
            self.remove_member(cx, g, &id);
        }
        if g.is(GroupState::Dead) {
            return;
        }
        let leader_joined = g.leader.as_ref().and_then(|l| g.members.get(l)).is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            match g.members.values().find(|m| m.awaiting_join.is_some()) {
                Some(m) => g.leader = Some(m.id.clone()),
                None if !g.members.is_empty() => {
                    // Only static members that did not rejoin are left: wait for them (§2.8.2).
                    tracing::info!(group = g.id.as_str(), "join phase waiting for static members that did not rejoin");
                    cx.set(join_key(&g.id), g.rebalance_timeout_ms());
                    return;
                }
                None => g.leader = None,
            }
        }
        cx.cancel(join_key(&g.id));
        g.initial_delay = None;
        g.generation += 1;
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.transition(GroupState::Empty, cx.now);
            cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, None)) });
            return;
        }
        g.protocol_name = g.select_protocol();
        g.transition(GroupState::CompletingRebalance, cx.now);
        tracing::info!(
            group = g.id.as_str(),
            generation = g.generation,
            members = g.members.len(),
            protocol = g.protocol_name.as_deref().unwrap_or(""),
            "join phase complete"
        );
        let leader = g.leader.clone().unwrap_or_default();
        let answered: Vec<(String, Waiter)> =
            g.members.values().filter_map(|m| m.awaiting_join.map(|w| (m.id.clone(), w))).collect();
        for (id, w) in answered {
            let r = join_answer(g, &id, id == leader);
            cx.reply(w.request, Reply::Join(r));
            let m = g.members.get_mut(&id).expect("member");
            m.awaiting_join = None;
            m.is_new = false;
            cx.set(heartbeat_key(&g.id, &id), m.session_timeout_ms as i64);
            g.pending_sync.insert(id);
        }
        cx.set(TimerKey::Sync { group: g.id.clone(), generation: g.generation }, g.rebalance_timeout_ms());
    }

    // ------------------------------------------------------------------ SyncGroup (§2.9)

    /// SyncGroup.
    pub fn sync(&mut self, now: i64, req: RequestId, s: SyncInput, version: i16) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let Some(mut g) = self.groups.remove(&s.group_id) else {
            cx.reply(req, Reply::Sync(SyncResult::error(codes::UNKNOWN_MEMBER_ID)));
            return self.done(cx);
        };
        let outcome = self.sync_in(&mut cx, &mut g, req, &s, version);
        if let Err(code) = outcome {
            cx.reply(req, Reply::Sync(SyncResult::error(code)));
        }
        self.groups.insert(g.id.clone(), g);
        self.done(cx)
    }

    fn sync_in(&mut self, cx: &mut Cx, g: &mut Group, req: RequestId, s: &SyncInput, version: i16) -> Result<(), i16> {
        match g.state {
            GroupState::Dead => return Err(codes::COORDINATOR_NOT_AVAILABLE),
            GroupState::Empty => return Err(codes::UNKNOWN_MEMBER_ID),
            _ => {}
        }
        g.validate_member(&s.member_id, s.group_instance_id.as_deref())?;
        if s.generation_id != g.generation {
            return Err(codes::ILLEGAL_GENERATION);
        }
        if s.protocol_type.as_ref().is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || s.protocol_name.as_ref().is_some_and(|n| Some(n) != g.protocol_name.as_ref())
        {
            return Err(codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        match g.state {
            GroupState::PreparingRebalance => Err(codes::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                g.pending_sync.remove(&s.member_id);
                if g.pending_sync.is_empty() {
                    cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
                }
                g.members.get_mut(&s.member_id).expect("validated").awaiting_sync = Some(Waiter { request: req, version });
                if g.leader.as_deref() == Some(s.member_id.as_str()) {
                    self.complete_sync(cx, g, &s.assignments);
                }
                Ok(())
            }
            GroupState::Stable => {
                g.pending_sync.remove(&s.member_id);
                if g.pending_sync.is_empty() {
                    cx.cancel(TimerKey::Sync { group: g.id.clone(), generation: g.generation });
                }
                let assignment = g.members[&s.member_id].assignment.clone();
                cx.reply(req, Reply::Sync(sync_answer(g, assignment)));
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => unreachable!("handled above"),
        }
    }

    /// The leader's assignment arrived: persist it, answer every parked SyncGroup, go Stable.
    fn complete_sync(&mut self, cx: &mut Cx, g: &mut Group, assignments: &[(String, Bytes)]) {
        let mut map: HashMap<String, Bytes> = HashMap::new();
        for (member, a) in assignments {
            if g.members.contains_key(member) {
                map.insert(member.clone(), a.clone());
            } else {
                tracing::debug!(group = g.id.as_str(), member = member.as_str(), "leader assigned to an unknown member; ignored");
            }
        }
        for id in g.members.keys() {
            map.entry(id.clone()).or_default();
        }
        cx.emit(Record::Group { group: g.id.clone(), value: Some(g.snapshot(cx.now, Some(&map))) });
        for (id, a) in map {
            let m = g.members.get_mut(&id).expect("member");
            m.assignment = a;
        }
        let parked: Vec<(String, Waiter)> =
            g.members.values().filter_map(|m| m.awaiting_sync.map(|w| (m.id.clone(), w))).collect();
        for (id, w) in parked {
            let assignment = g.members[&id].assignment.clone();
            cx.reply(w.request, Reply::Sync(sync_answer(g, assignment)));
            let m = g.members.get_mut(&id).expect("member");
            m.awaiting_sync = None;
            cx.set(heartbeat_key(&g.id, &id), m.session_timeout_ms as i64);
        }
        g.transition(GroupState::Stable, cx.now);
        if let Some(started) = g.rebalance_started.take() {
            metrics::histogram!("corral_rebalance_seconds").record((cx.now - started) as f64 / 1000.0);
        }
    }

    /// The pending-sync timer fired: members that never sent SyncGroup are removed (§2.9).
    fn on_sync_timer(&mut self, cx: &mut Cx, g: &mut Group, generation: i32) {
        if g.generation != generation || !matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) {
            return;
        }
        let late: Vec<String> = g.pending_sync.drain().collect();
        if late.is_empty() {
            return;
        }
        for id in &late {
            tracing::info!(group = g.id.as_str(), member = id.as_str(), "removing a member that did not send SyncGroup in time");
            self.remove_member(cx, g, id);
        }
        self.prepare_rebalance(cx, g);
    }

    // ------------------------------------------------------------------ Heartbeat (§2.11)

    /// Heartbeat.
    pub fn heartbeat(&mut self, now: i64, req: RequestId, h: HeartbeatInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let code = match self.groups.get(&h.group_id) {
            None => codes::UNKNOWN_MEMBER_ID,
            Some(g) if g.is(GroupState::Dead) => codes::COORDINATOR_NOT_AVAILABLE,
            Some(g) => match g.validate_member(&h.member_id, h.group_instance_id.as_deref()) {
                Err(code) => code,
                Ok(()) if h.generation_id != g.generation => codes::ILLEGAL_GENERATION,
                Ok(()) => match g.state {
                    GroupState::Empty | GroupState::Dead => codes::UNKNOWN_MEMBER_ID,
                    GroupState::PreparingRebalance => {
                        cx.set(heartbeat_key(&g.id, &h.member_id), g.members[&h.member_id].session_timeout_ms as i64);
                        codes::REBALANCE_IN_PROGRESS
                    }
                    GroupState::CompletingRebalance | GroupState::Stable => {
                        cx.set(heartbeat_key(&g.id, &h.member_id), g.members[&h.member_id].session_timeout_ms as i64);
                        codes::NONE
                    }
                },
            },
        };
        cx.reply(req, Reply::Heartbeat(code));
        self.done(cx)
    }

    /// A member's session timer fired (§2.11).
    fn on_heartbeat_timer(&mut self, cx: &mut Cx, g: &mut Group, member: &str) {
        if g.pending_members.remove(member) {
            tracing::info!(group = g.id.as_str(), member, "pending member did not rejoin within its session timeout");
            // §2.5: the join completes if it was the last one outstanding — even during the
            // initial delay (Kafka's removePendingMemberAndUpdateClassicGroup; checklist 25).
            if g.is(GroupState::PreparingRebalance) && g.all_members_joined() {
                self.complete_join(cx, g);
            }
            return;
        }
        let Some(m) = g.members.get(member) else { return };
        if !m.is_new && (m.awaiting_join.is_some() || m.awaiting_sync.is_some()) {
            return;
        }
        tracing::info!(group = g.id.as_str(), member, "member's session expired");
        metrics::counter!("corral_expired_members_total").increment(1);
        self.remove_member_and_update(cx, g, member);
    }

    /// Removes a member: its timers go, a parked request is told UNKNOWN_MEMBER_ID, the lead
    /// passes on.
    fn remove_member(&mut self, cx: &mut Cx, g: &mut Group, id: &str) {
        let Some(mut m) = g.members.remove(id) else { return };
        if let Some(instance) = &m.instance_id
            && g.static_members.get(instance).map(String::as_str) == Some(id)
        {
            g.static_members.remove(instance);
        }
        cx.cancel(heartbeat_key(&g.id, id));
        if let Some(w) = m.awaiting_join.take() {
            cx.reply(w.request, Reply::Join(JoinResult::error(codes::UNKNOWN_MEMBER_ID, "")));
        }
        if let Some(w) = m.awaiting_sync.take() {
            cx.reply(w.request, Reply::Sync(SyncResult::error(codes::UNKNOWN_MEMBER_ID)));
        }
        g.pending_sync.remove(id);
        if g.leader.as_deref() == Some(id) {
            g.leader = g.members.keys().next().cloned();
        }
    }

    /// Removes a member and moves the group on: a rebalance from Stable or
    /// CompletingRebalance, or the end of the join phase if everyone left has joined.
    fn remove_member_and_update(&mut self, cx: &mut Cx, g: &mut Group, id: &str) {
        self.remove_member(cx, g, id);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(cx, g),
            GroupState::PreparingRebalance if g.all_members_joined() => self.complete_join(cx, g),
            _ => {}
        }
    }

    // ------------------------------------------------------------------ LeaveGroup (§2.12)

    /// LeaveGroup, in its batch form.
    pub fn leave(&mut self, now: i64, req: RequestId, l: LeaveInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let Some(mut g) = self.groups.remove(&l.group_id) else {
            let members = l.members.into_iter().map(|(m, i)| (m, i, codes::UNKNOWN_MEMBER_ID)).collect();
            cx.reply(req, Reply::Leave(LeaveResult { error: codes::NONE, members }));
            return self.done(cx);
        };
        if g.is(GroupState::Dead) {
            self.groups.insert(g.id.clone(), g);
            cx.reply(req, Reply::Leave(LeaveResult { error: codes::COORDINATOR_NOT_AVAILABLE, members: Vec::new() }));
            return self.done(cx);
        }
        let mut results = Vec::with_capacity(l.members.len());
        let mut removed = false;
        for (member_id, instance) in l.members {
            let code = if member_id.is_empty() {
                match instance.as_ref().and_then(|i| g.static_members.get(i)).cloned() {
                    Some(id) => {
                        self.remove_member(&mut cx, &mut g, &id);
                        removed = true;
                        codes::NONE
                    }
                    None => codes::UNKNOWN_MEMBER_ID,
                }
            } else if g.pending_members.remove(&member_id) {
                cx.cancel(heartbeat_key(&g.id, &member_id));
                removed = true;
                codes::NONE
            } else {
                match g.validate_member(&member_id, instance.as_deref()) {
                    Err(code) => code,
                    Ok(()) => {
                        self.remove_member(&mut cx, &mut g, &member_id);
                        removed = true;
                        codes::NONE
                    }
                }
            };
            results.push((member_id, instance, code));
        }
        if removed {
            match g.state {
                GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(&mut cx, &mut g),
                // Kafka's maybeCompleteJoinPhase: an initial rebalance still waits out its delay.
                GroupState::PreparingRebalance => self.maybe_complete_join(&mut cx, &mut g),
                _ => {}
            }
        }
        self.groups.insert(g.id.clone(), g);
        cx.reply(req, Reply::Leave(LeaveResult { error: codes::NONE, members: results }));
        self.done(cx)
    }

    // ------------------------------------------------------------------ offsets (§3)

    /// OffsetCommit.
    pub fn commit(&mut self, now: i64, req: RequestId, c: CommitInput) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let all = |code: i16| Reply::Commit(vec![code; c.partitions.len()]);
        let check = match self.groups.get(&c.group_id) {
            None if c.generation_id < 0 => Ok(()),
            None if c.version >= 9 => Err(codes::GROUP_ID_NOT_FOUND),
            None => Err(codes::ILLEGAL_GENERATION),
            Some(g) => validate_commit(g, &c),
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
                errors.push(codes::OFFSET_METADATA_TOO_LARGE);
                continue;
            }
            cx.emit(
                Record::Offset {
                    group: c.group_id.clone(),
                    topic: p.topic,
                    partition: p.partition,
                    value: Some(OffsetValue {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata,
                        commit_timestamp: now,
                        expire_timestamp: expire,
                    }),
                },
            );
            errors.push(codes::NONE);
        }
        metrics::counter!("corral_offset_commits_total").increment(errors.iter().filter(|e| **e == 0).count() as u64);
        cx.reply(req, Reply::Commit(errors));
        self.done(cx)
    }

    /// OffsetFetch of one group: `None` = all committed partitions. Unknown groups answer -1
    /// offsets (explicit partitions) or nothing (all), with no error (§3.2).
    pub fn fetch_offsets(&self, group: &str, partitions: Option<&[(String, i32)]>) -> Vec<(String, i32, FetchedOffset)> {
        let g = self.groups.get(group).filter(|g| !g.is(GroupState::Dead));
        match partitions {
            Some(list) => list
                .iter()
                .map(|(t, p)| {
                    let found = g
                        .and_then(|g| g.offsets.get(&(t.clone(), *p)))
                        .map(|o| (o.offset, o.leader_epoch, o.metadata.clone()))
                        .unwrap_or((-1, -1, String::new()));
                    (t.clone(), *p, found)
                })
                .collect(),
            None => {
                let mut v: Vec<(String, i32, FetchedOffset)> = g
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|((t, p), o)| (t.clone(), *p, (o.offset, o.leader_epoch, o.metadata.clone())))
                            .collect()
                    })
                    .unwrap_or_default();
                v.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                v
            }
        }
    }

    /// OffsetDelete (§3.3).
    pub fn delete_offsets(&mut self, now: i64, req: RequestId, group: &str, partitions: Vec<(String, i32)>) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let Some(g) = self.groups.get(group).filter(|g| !g.is(GroupState::Dead)) else {
            cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: codes::GROUP_ID_NOT_FOUND, partitions: Vec::new() }));
            return self.done(cx);
        };
        if !g.is(GroupState::Empty) && g.protocol_type.as_deref() != Some("consumer") {
            cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: codes::NON_EMPTY_GROUP, partitions: Vec::new() }));
            return self.done(cx);
        }
        let subscribed = if g.is(GroupState::Empty) { Some(HashSet::new()) } else { g.subscribed_topics() };
        let mut results = Vec::with_capacity(partitions.len());
        let mut tombstones = Vec::new();
        for (topic, partition) in partitions {
            let is_subscribed = subscribed.as_ref().is_none_or(|s| s.contains(&topic));
            if is_subscribed {
                results.push((topic, partition, codes::GROUP_SUBSCRIBED_TO_TOPIC));
            } else {
                if g.offsets.contains_key(&(topic.clone(), partition)) {
                    tombstones.push(Record::Offset { group: group.to_string(), topic: topic.clone(), partition, value: None });
                }
                results.push((topic, partition, codes::NONE));
            }
        }
        for t in tombstones {
            cx.emit(t);
        }
        cx.reply(req, Reply::OffsetDelete(OffsetDeleteResult { error: codes::NONE, partitions: results }));
        self.done(cx)
    }

    /// DeleteGroups, for one group (§2.12).
    pub fn delete_group(&mut self, now: i64, req: RequestId, group: &str) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let code = match self.groups.get(group) {
            None => codes::GROUP_ID_NOT_FOUND,
            Some(g) if g.is(GroupState::Dead) => codes::GROUP_ID_NOT_FOUND,
            Some(g) if !g.is(GroupState::Empty) => codes::NON_EMPTY_GROUP,
            Some(g) => {
                let mut records: Vec<Record> = g
                    .offsets
                    .keys()
                    .map(|(t, p)| Record::Offset { group: group.to_string(), topic: t.clone(), partition: *p, value: None })
                    .collect();
                records.push(Record::Group { group: group.to_string(), value: None });
                for r in records {
                    cx.emit(r);
                }
                codes::NONE
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
    fn expire_offsets(&mut self, cx: &mut Cx) {
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
            let subscribed = if g.is(GroupState::Empty) { Some(HashSet::new()) } else { g.subscribed_topics() };
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
            if expired == g.offsets.len() && g.is(GroupState::Empty) && g.members.is_empty() {
                records.push(Record::Group { group: g.id.clone(), value: None });
            }
        }
        for r in records {
            cx.emit(r);
        }
    }

    // ------------------------------------------------------------------ timers

    /// A timer fired.
    pub fn on_timer(&mut self, now: i64, key: &TimerKey) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        if *key == TimerKey::OffsetExpiry {
            self.expire_offsets(&mut cx);
            cx.set(TimerKey::OffsetExpiry, self.config.offsets_retention_check_interval_ms);
            return self.done(cx);
        }
        let group = match key {
            TimerKey::Heartbeat { group, .. } | TimerKey::Join { group } | TimerKey::Sync { group, .. } => group,
            TimerKey::OffsetExpiry => unreachable!(),
        };
        let Some(mut g) = self.groups.remove(group) else { return self.done(cx) };
        match key {
            TimerKey::Heartbeat { member, .. } => self.on_heartbeat_timer(&mut cx, &mut g, member),
            TimerKey::Join { .. } => self.on_join_timer(&mut cx, &mut g),
            TimerKey::Sync { generation, .. } => self.on_sync_timer(&mut cx, &mut g, *generation),
            TimerKey::OffsetExpiry => {}
        }
        self.groups.insert(g.id.clone(), g);
        self.done(cx)
    }

    // ------------------------------------------------------------------ reads

    /// DescribeGroups of one group; `None` if unknown.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group)?;
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| {
                    let meta = if stable { m.metadata(&protocol).cloned().unwrap_or_default() } else { Bytes::new() };
                    (m.id.clone(), m.instance_id.clone(), m.client_id.clone(), m.client_host.clone(), meta, m.assignment.clone())
                })
                .collect(),
        })
    }

    /// ListGroups.
    pub fn list(&self) -> Vec<Listed> {
        self.groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| (g.id.clone(), g.protocol_type.clone().unwrap_or_default(), g.state.name()))
            .collect()
    }

    /// Answers every parked JoinGroup and SyncGroup with `code` (shutdown, unload).
    pub fn fail_parked(&mut self, code: i16) -> Vec<(RequestId, Reply)> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            for m in g.members.values_mut() {
                if let Some(w) = m.awaiting_join.take() {
                    out.push((w.request, Reply::Join(JoinResult::error(code, &m.id))));
                }
                if let Some(w) = m.awaiting_sync.take() {
                    out.push((w.request, Reply::Sync(SyncResult::error(code))));
                }
            }
        }
        out
    }
}

/// §3.1 validation of a commit against an existing group.
fn validate_commit(g: &Group, c: &CommitInput) -> Result<(), i16> {
    if g.is(GroupState::Dead) {
        return Err(codes::COORDINATOR_NOT_AVAILABLE);
    }
    if c.generation_id < 0 && g.is(GroupState::Empty) {
        return Ok(());
    }
    if c.generation_id >= 0 || !c.member_id.is_empty() || c.group_instance_id.is_some() {
        g.validate_member(&c.member_id, c.group_instance_id.as_deref())?;
        if c.generation_id != g.generation {
            return Err(codes::ILLEGAL_GENERATION);
        }
    } else {
        return Err(codes::UNKNOWN_MEMBER_ID);
    }
    if g.is(GroupState::CompletingRebalance) {
        return Err(codes::REBALANCE_IN_PROGRESS);
    }
    Ok(())
}

/// A JoinGroup answer for the current generation; the leader also gets the member list.
fn join_answer(g: &Group, member_id: &str, with_members: bool) -> JoinResult {
    let protocol = g.protocol_name.clone();
    JoinResult {
        error: codes::NONE,
        generation_id: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol_name: protocol.clone(),
        leader: g.leader.clone().unwrap_or_default(),
        skip_assignment: false,
        member_id: member_id.to_string(),
        members: if with_members {
            g.members
                .values()
                .map(|m| JoinMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    metadata: protocol.as_deref().and_then(|p| m.metadata(p)).cloned().unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

fn sync_answer(g: &Group, assignment: Bytes) -> SyncResult {
    SyncResult {
        error: codes::NONE,
        protocol_type: g.protocol_type.clone(),
        protocol_name: g.protocol_name.clone(),
        assignment,
    }
}

/// Builds a group from its GroupMetadata snapshot at load (§3.7).
fn load_group(id: &str, v: &GroupValue, now: i64) -> Group {
    let mut g = Group::new(id, now);
    g.generation = v.generation;
    g.protocol_type = (!v.protocol_type.is_empty()).then(|| v.protocol_type.clone());
    g.protocol_name = v.protocol.clone();
    g.leader = v.leader.clone();
    g.state_timestamp = (v.current_state_timestamp >= 0).then_some(v.current_state_timestamp);
    for mv in &v.members {
        let protocols = match &v.protocol {
            Some(p) => vec![Protocol { name: p.clone(), metadata: mv.subscription.clone() }],
            None => Vec::new(),
        };
        if let Some(i) = &mv.group_instance_id {
            g.static_members.insert(i.clone(), mv.member_id.clone());
        }
        g.members.insert(
            mv.member_id.clone(),
            Member {
                id: mv.member_id.clone(),
                instance_id: mv.group_instance_id.clone(),
                client_id: mv.client_id.clone(),
                client_host: mv.client_host.clone(),
                session_timeout_ms: mv.session_timeout_ms,
                rebalance_timeout_ms: mv.rebalance_timeout_ms,
                protocol_type: v.protocol_type.clone(),
                protocols,
                assignment: mv.assignment.clone(),
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
            },
        );
    }
    g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
    g.previous_state = g.state;
    g.persisted = Some(v.clone());
    g
}
