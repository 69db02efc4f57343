//! One coordinator shard: a pure state machine over the groups that hash to it.
//!
//! Every input is `(now_ms, request)` and every output is data: the records to append, the
//! replies to send (to this request or to parked ones, once the records are durable), and the
//! timers to set or cancel. No socket, file, clock or runtime is touched here, so a test can
//! drive a whole rebalance with literal timestamps. The rules follow Kafka's classic group
//! coordinator; `reference/kafka-group-coordinator.md` §2-3 (cited as §) gives them one by one.
//!
//! This file holds the shard itself: its groups, how records change them (replay, load), its
//! timers and its reads. The rules are split by what they govern: `membership` (JoinGroup,
//! SyncGroup, Heartbeat, LeaveGroup and the timers of a member's session and of a rebalance)
//! and `offsets` (OffsetCommit, OffsetFetch, OffsetDelete, DeleteGroups, expiry). The inputs
//! and answers are in `types`, re-exported here.

mod consumer;
mod membership;
mod mixed;
mod offsets;
mod types;

use bytes::Bytes;

use super::RequestId;
use super::group::{Group, GroupState, Member, Protocol};
use super::record::{GroupValue, Record};
use crate::error::ErrorCode;

pub use membership::NEW_MEMBER_JOIN_TIMEOUT_MS;
pub use types::{
    CommitInput, CommitPartition, DescribedMember, FetchedOffset, FetchedPartition, GroupDescription, GroupListing, HeartbeatInput,
    IdSource, JoinInput, JoinMember, JoinResult, LeaveInput, LeaveResult, MemberError, OffsetDeleteResult, Output, PartitionError, Reply,
    ShardConfig, SyncInput, SyncResult, TimerKey, TimerOp,
};

/// The shard: the groups that hash to it, with their offsets.
#[derive(Debug)]
pub struct Shard {
    pub config: ShardConfig,
    /// Every group of the shard by id, simple groups (offsets only) included.
    groups: crate::FastMap<String, Group>,
    /// Where new member ids come from.
    ids: IdSource,
    /// Replaying the log at start-up: GroupMetadata records rebuild their groups.
    loading: bool,
    /// Classic members of consumer groups told to rejoin, whose rejoin deadline is set (soft
    /// state: set once per rejoin, not pushed out by each heartbeat).
    classic_join_due: std::collections::HashSet<(String, String)>,
}

/// What the membership rules act with besides the group they act on: the settings, and where
/// member ids come from. Split from the shard's groups so that a rule gets its group borrowed
/// in place (`groups.get_mut`), never taken out of the map: no path can lose a group by
/// forgetting to put it back.
struct Rules<'a> {
    config: &'a ShardConfig,
    ids: &'a mut IdSource,
}

impl Rules<'_> {
    /// A new member id: `prefix` (the instance id, else the client id), a dash, and a UUID (or
    /// the next number of a test's counter).
    fn new_member_id(&mut self, prefix: &str) -> String {
        match self.ids {
            IdSource::Random => format!("{prefix}-{}", uuid::Uuid::new_v4()),
            IdSource::Counter(n) => {
                *n += 1;
                format!("{prefix}-{n}")
            }
        }
    }
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

impl Shard {
    /// An empty shard; [`Shard::begin_load`] and [`Shard::finish_load`] around a replay of its
    /// log make it the shard the log describes.
    pub fn new(config: ShardConfig, ids: IdSource) -> Self {
        Shard { config, groups: Default::default(), ids, loading: false, classic_join_due: Default::default() }
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

    /// The group `id`, borrowed in place, and the rules to act on it with.
    fn split(&mut self, id: &str) -> Option<(Rules<'_>, &mut Group)> {
        let Shard { groups, config, ids, .. } = self;
        Some((Rules { config, ids }, groups.get_mut(id)?))
    }

    // ------------------------------------------------------------------ records

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

    /// Applies one record: the only way offsets and persisted group snapshots change. While
    /// loading, a GroupMetadata record also rebuilds its group (Stable with the stored members,
    /// or Empty). Live handlers have already brought the live group to the state their records
    /// describe, as Kafka's classic-group writes do (they are not replayed live either).
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
            Record::PendingOffset { producer_id, group, topic, partition, value } => match value {
                Some(v) => {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, now));
                    g.pending_txn.entry(*producer_id).or_default().insert((topic.clone(), *partition), v.clone());
                }
                None => {
                    if let Some(g) = self.groups.get_mut(group)
                        && let Some(m) = g.pending_txn.get_mut(producer_id)
                    {
                        m.remove(&(topic.clone(), *partition));
                        if m.is_empty() {
                            g.pending_txn.remove(producer_id);
                        }
                    }
                }
            },
            Record::Group { group, value: None } => {
                // the classic group ends; its offsets (already tombstoned when the group is
                // deleted) and a consumer group taking its place stay
                if let Some(g) = self.groups.get_mut(group) {
                    if g.offsets.is_empty() && g.pending_txn.is_empty() && g.consumer.is_none() {
                        self.groups.remove(group);
                    } else {
                        let mut fresh = Group::new(group, now);
                        fresh.offsets = std::mem::take(&mut g.offsets);
                        fresh.pending_txn = std::mem::take(&mut g.pending_txn);
                        fresh.consumer = g.consumer.take();
                        *g = fresh;
                    }
                }
            }
            Record::Consumer(c) => {
                let id = c.group();
                let removes_group = matches!(c, super::record::ConsumerRecord::GroupEpoch { epoch: None, .. });
                if removes_group {
                    if let Some(g) = self.groups.get_mut(id) {
                        g.consumer = None;
                        let nothing_left = g.is_empty_group()
                            && g.members.is_empty()
                            && g.pending_members.is_empty()
                            && g.offsets.is_empty()
                            && g.pending_txn.is_empty()
                            && g.persisted.is_none();
                        if nothing_left {
                            self.groups.remove(id);
                        }
                    }
                    return;
                }
                let g = self.groups.entry(id.to_string()).or_insert_with(|| Group::new(id, now));
                g.consumer.get_or_insert_with(Default::default).apply(c);
            }
            Record::Group { group, value: Some(v) } => {
                if self.loading {
                    let (offsets, pending, consumer) =
                        self.groups.remove(group).map(|g| (g.offsets, g.pending_txn, g.consumer)).unwrap_or_default();
                    let mut g = load_group(group, v, now);
                    g.offsets = offsets;
                    g.pending_txn = pending;
                    g.consumer = consumer;
                    self.groups.insert(group.clone(), g);
                } else {
                    let g = self.groups.entry(group.clone()).or_insert_with(|| Group::new(group, now));
                    g.persisted = Some(v.clone());
                }
            }
            Record::Unknown { key_version: super::record::FENCE_KEY_VERSION } => {}
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
        let Shard { groups, config, ids, .. } = self;
        let mut rules = Rules { config, ids };
        for g in groups.values_mut() {
            for m in g.members.values() {
                cx.set(heartbeat_key(&g.id, &m.id), m.session_timeout_ms as i64);
            }
            if g.members.len() > rules.config.max_size && g.is(GroupState::Stable) {
                rules.prepare_rebalance(&mut cx, g);
            }
            if let Some(c) = &g.consumer {
                for m in c.members.values() {
                    let session = m.meta.classic.as_ref().map_or(rules.config.consumer_session_timeout_ms, |c| c.session_timeout_ms);
                    cx.set(consumer::session_key(&g.id, &m.id), session as i64);
                    if m.state == crate::coordinator::consumer::MemberState::UnrevokedPartitions {
                        cx.set(consumer::revoke_key(&g.id, &m.id, m.epoch), m.meta.rebalance_timeout_ms.max(0) as i64);
                    }
                }
            }
        }
        cx.set(TimerKey::OffsetExpiry, self.config.offsets_retention_check_interval_ms);
        self.done(cx)
    }

    // ------------------------------------------------------------------ timers

    /// A timer fired.
    pub fn on_timer(&mut self, now: i64, key: &TimerKey) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        // A group's timer outliving its group does nothing.
        match key {
            TimerKey::OffsetExpiry => {
                self.expire_offsets(&mut cx);
                cx.set(TimerKey::OffsetExpiry, self.config.offsets_retention_check_interval_ms);
            }
            TimerKey::Heartbeat { group, member } => {
                if let Some((mut rules, g)) = self.split(group) {
                    rules.on_heartbeat_timer(&mut cx, g, member);
                }
            }
            TimerKey::Join { group } => {
                if let Some((mut rules, g)) = self.split(group) {
                    rules.on_join_timer(&mut cx, g);
                }
            }
            TimerKey::Sync { group, generation } => {
                if let Some((mut rules, g)) = self.split(group) {
                    rules.on_sync_timer(&mut cx, g, *generation);
                }
            }
            TimerKey::ConsumerSession { group, member } => self.consumer_session_expired(&mut cx, group, member),
            TimerKey::ConsumerRevoke { group, member, epoch } => self.consumer_revocation_expired(&mut cx, group, member, *epoch),
            TimerKey::ConsumerClassicJoin { group, member } => self.classic_join_expired(&mut cx, group, member),
        }
        self.done(cx)
    }

    // ------------------------------------------------------------------ reads

    /// DescribeGroups of one group; `None` if unknown.
    pub fn describe(&self, group: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group)?;
        if g.consumer.is_some() {
            return Some(GroupDescription {
                state: "Dead",
                protocol_type: String::new(),
                protocol_data: String::new(),
                members: Vec::new(),
                not_classic: true,
            });
        }
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state.name(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| DescribedMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol).cloned().unwrap_or_default() } else { Bytes::new() },
                    assignment: m.assignment.clone(),
                })
                .collect(),
            not_classic: false,
        })
    }

    /// ListGroups.
    pub fn list(&self) -> Vec<GroupListing> {
        self.groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| GroupListing {
                group_id: g.id.clone(),
                protocol_type: if g.consumer.is_some() { "consumer".to_string() } else { g.protocol_type.clone().unwrap_or_default() },
                state: g.state_name(),
                group_type: g.type_name(),
            })
            .collect()
    }

    /// Answers every parked JoinGroup and SyncGroup with `code` (shutdown, unload).
    pub fn fail_parked(&mut self, code: ErrorCode) -> Vec<(RequestId, Reply)> {
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
