//! Consumer groups of the next-generation protocol (KIP-848): the coordinator computes the
//! assignment and members reconcile to it one heartbeat at a time.
//!
//! This module holds what a consumer group *is*: its epochs, members and assignments
//! ([`ConsumerGroup`]), how its records rebuild it ([`ConsumerGroup::apply`], the only way its
//! durable state changes, live as at load), and the two pure rules the heartbeat uses: request
//! validation ([`validate`]) and reconciliation ([`reconcile`]). The heartbeat itself, its
//! timers and its answers are the shard's (`shard/consumer.rs`). `reference/
//! kafka-group-coordinator.md` §4 gives the rules; section numbers cited are its own.

pub mod assignor;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::record::{ConsumerMemberValue, ConsumerRecord, CurrentAssignmentValue, TopicMetadata};
use crate::error::ErrorCode;
pub use assignor::{Assignment, Assignor};

/// Member epoch of a heartbeat that joins (or rejoins).
pub const JOIN_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving for a while (it keeps its assignment until its
/// session expires).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The topics a consumer group can be assigned, as the coordinator sees them when a heartbeat
/// arrives: resolved by name (subscriptions) and by id (owned partitions).
pub trait TopicView {
    /// The id and partition count of the topic named `name`.
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)>;
    /// Every topic name (for subscriptions by regular expression).
    fn names(&self) -> Vec<String>;
}

/// A map of topics for tests: name → (id, partitions).
impl TopicView for BTreeMap<String, (Uuid, i32)> {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.get(name).copied()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Where a member stands in reconciling to the target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    /// At the target epoch with every partition of its target it can have.
    #[default]
    Stable,
    /// Must stop using some partitions (pending revocation) before it moves on.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

impl MemberState {
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }
    fn from_code(c: i8) -> MemberState {
        match c {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// A member of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMember {
    pub id: String,
    /// Its metadata (record type 5).
    pub meta: ConsumerMemberValue,
    /// The epoch it has reconciled to; −2 while a static member is away.
    pub epoch: i32,
    /// The epoch before the last bump, accepted once more in case the answer that carried
    /// the bump was lost (§4.3 step 3).
    pub previous_epoch: i32,
    pub state: MemberState,
    /// The partitions it may use now.
    pub assigned: Assignment,
    /// The partitions it must give up before it moves on.
    pub pending_revocation: Assignment,
}

impl ConsumerMember {
    pub fn new(id: &str) -> Self {
        ConsumerMember { id: id.to_string(), previous_epoch: -1, ..Default::default() }
    }

    /// Its current-assignment record value (type 8).
    pub fn current_value(&self) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: self.epoch,
            previous_member_epoch: self.previous_epoch,
            state: self.state.code(),
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }
}

/// A consumer group's state, derived from its epochs and members (§4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A consumer group: everything its records (types 3 to 8) say, and maps derived from them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsumerGroup {
    /// The group epoch (type 3): bumped by every change of membership, subscription or
    /// subscribed topics.
    pub epoch: i32,
    /// The subscribed topics as they were when the epoch was last bumped (type 4), by name.
    pub subscription_metadata: BTreeMap<String, TopicMetadata>,
    pub members: BTreeMap<String, ConsumerMember>,
    /// The epoch of the target assignment (type 6).
    pub assignment_epoch: i32,
    /// Each member's target assignment (type 7).
    pub target: BTreeMap<String, Assignment>,
    /// Instance id → member id of static members (derived).
    pub static_members: HashMap<String, String>,
    /// Which member holds each partition, assigned or pending revocation (derived): a
    /// partition is handed to a new owner only once it is free.
    pub owners: HashMap<(Uuid, i32), String>,
    /// How many members subscribe to each topic name, and to each regular expression
    /// (derived): a heartbeat's subscription metadata costs the distinct subscriptions, not
    /// the members.
    pub name_counts: BTreeMap<String, usize>,
    pub regex_counts: BTreeMap<String, usize>,
}

impl ConsumerGroup {
    /// The group's state (§4.2).
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// The server assignor the members ask for most (ties to the name first in order), or
    /// `default` if none asks.
    pub fn preferred_assignor(&self, default: Assignor) -> Assignor {
        preferred_assignor(self.members.values(), default)
    }

    /// Topic names some member subscribes to, by name or (resolved) by regular expression.
    pub fn subscribed_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.name_counts.keys().cloned().collect();
        names.extend(self.subscription_metadata.keys().cloned());
        names
    }

    /// Whether `member` holds a partition another member still has to release.
    pub fn is_free_for(&self, member: &str, topic: &Uuid, partition: i32) -> bool {
        self.owners.get(&(*topic, partition)).is_none_or(|owner| owner == member)
    }

    fn count_subscription(&mut self, meta: &ConsumerMemberValue, add: bool) {
        fn count(counts: &mut BTreeMap<String, usize>, key: &str, add: bool) {
            if add {
                *counts.entry(key.to_string()).or_default() += 1;
            } else if let Some(n) = counts.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(key);
                }
            }
        }
        for n in &meta.subscribed_topic_names {
            count(&mut self.name_counts, n, add);
        }
        if let Some(r) = &meta.subscribed_topic_regex {
            count(&mut self.regex_counts, r, add);
        }
    }

    fn set_owned(&mut self, member: &ConsumerMember, owned: bool) {
        for a in [&member.assigned, &member.pending_revocation] {
            for (t, ps) in a {
                for p in ps {
                    if owned {
                        self.owners.insert((*t, *p), member.id.clone());
                    } else if self.owners.get(&(*t, *p)) == Some(&member.id) {
                        self.owners.remove(&(*t, *p));
                    }
                }
            }
        }
    }

    /// Applies one of its records: the only way the group's durable state changes.
    pub fn apply(&mut self, record: &ConsumerRecord) {
        match record {
            ConsumerRecord::GroupEpoch { epoch, .. } => self.epoch = epoch.unwrap_or(0),
            ConsumerRecord::SubscriptionMetadata { topics, .. } => {
                self.subscription_metadata = topics.iter().flatten().map(|t| (t.name.clone(), t.clone())).collect();
            }
            ConsumerRecord::TargetEpoch { epoch, .. } => self.assignment_epoch = epoch.unwrap_or(0),
            ConsumerRecord::TargetMember { member, value, .. } => match value {
                Some(a) => {
                    self.target.insert(member.clone(), a.clone());
                }
                None => {
                    self.target.remove(member);
                }
            },
            ConsumerRecord::Member { member, value: Some(v), .. } => {
                let mut m = self.members.remove(member).unwrap_or_else(|| ConsumerMember::new(member));
                self.count_subscription(&m.meta, false);
                self.count_subscription(v, true);
                if let Some(old) = m.meta.instance_id.take()
                    && self.static_members.get(&old) == Some(member)
                {
                    self.static_members.remove(&old);
                }
                m.meta = v.clone();
                self.members.insert(member.clone(), m);
                if let Some(i) = &v.instance_id {
                    self.static_members.insert(i.clone(), member.clone());
                }
            }
            ConsumerRecord::Member { member, value: None, .. } => {
                if let Some(m) = self.members.remove(member) {
                    self.set_owned(&m, false);
                    self.count_subscription(&m.meta, false);
                    if let Some(i) = &m.meta.instance_id
                        && self.static_members.get(i) == Some(member)
                    {
                        self.static_members.remove(i);
                    }
                }
            }
            ConsumerRecord::CurrentAssignment { member, value, .. } => {
                let Some(mut m) = self.members.remove(member) else {
                    // a current assignment without its member's metadata (not written so)
                    if let Some(v) = value {
                        let mut m = ConsumerMember::new(member);
                        set_current(&mut m, v);
                        self.set_owned(&m, true);
                        self.members.insert(member.clone(), m);
                    }
                    return;
                };
                self.set_owned(&m, false);
                match value {
                    Some(v) => set_current(&mut m, v),
                    None => {
                        m.assigned.clear();
                        m.pending_revocation.clear();
                        m.epoch = LEAVE_EPOCH;
                        m.previous_epoch = LEAVE_EPOCH;
                    }
                }
                self.set_owned(&m, true);
                self.members.insert(member.clone(), m);
            }
        }
    }

    /// The records that remove `member` from the group: its current assignment, target
    /// assignment and metadata, in that order (§4.5).
    pub fn removal_records(group: &str, member: &str) -> [ConsumerRecord; 3] {
        [
            ConsumerRecord::CurrentAssignment { group: group.to_string(), member: member.to_string(), value: None },
            ConsumerRecord::TargetMember { group: group.to_string(), member: member.to_string(), value: None },
            ConsumerRecord::Member { group: group.to_string(), member: member.to_string(), value: None },
        ]
    }

    /// The tombstones that delete the (memberless) group itself.
    pub fn deletion_records(group: &str) -> [ConsumerRecord; 3] {
        [
            ConsumerRecord::TargetEpoch { group: group.to_string(), epoch: None },
            ConsumerRecord::SubscriptionMetadata { group: group.to_string(), topics: None },
            ConsumerRecord::GroupEpoch { group: group.to_string(), epoch: None },
        ]
    }

    /// The subscription metadata the members' subscriptions give against `topics`, without
    /// the members `removed` and with a member subscribed as `added`.
    pub fn compute_subscription_metadata(
        &self,
        removed: &[&str],
        added: Option<&ConsumerMemberValue>,
        topics: &dyn TopicView,
    ) -> BTreeMap<String, TopicMetadata> {
        // the group's subscriptions with the changed member's old one taken out, its new one in
        let mut names: BTreeMap<&str, isize> = self.name_counts.iter().map(|(k, n)| (k.as_str(), *n as isize)).collect();
        let mut regex_counts: BTreeMap<&str, isize> = self.regex_counts.iter().map(|(k, n)| (k.as_str(), *n as isize)).collect();
        let gone = removed.iter().filter_map(|id| self.members.get(*id)).map(|m| (&m.meta, -1));
        for (meta, delta) in gone.chain(added.map(|m| (m, 1))) {
            for n in &meta.subscribed_topic_names {
                *names.entry(n).or_default() += delta;
            }
            if let Some(r) = meta.subscribed_topic_regex.as_deref() {
                *regex_counts.entry(r).or_default() += delta;
            }
        }
        let regexes: BTreeSet<&str> = regex_counts.into_iter().filter(|(_, n)| *n > 0).map(|(r, _)| r).collect();
        let mut resolved: BTreeSet<String> = names.into_iter().filter(|(_, n)| *n > 0).map(|(name, _)| name.to_string()).collect();
        if !regexes.is_empty() {
            let compiled: Vec<regex::Regex> = regexes.iter().filter_map(|r| compile_regex(r).ok()).collect();
            for name in topics.names() {
                if compiled.iter().any(|re| re.is_match(&name)) {
                    resolved.insert(name);
                }
            }
        }
        resolved
            .into_iter()
            .filter_map(|name| topics.by_name(&name).map(|(id, partitions)| (name.clone(), TopicMetadata { id, name, partitions })))
            .collect()
    }
}

/// The server assignor `members` ask for most (ties to the name first in order), or `default`
/// if none asks.
pub fn preferred_assignor<'a>(members: impl Iterator<Item = &'a ConsumerMember>, default: Assignor) -> Assignor {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in members {
        if let Some(a) = m.meta.server_assignor.as_deref() {
            *votes.entry(a).or_default() += 1;
        }
    }
    let best = votes.values().copied().max().unwrap_or(0);
    votes.into_iter().find(|(_, n)| *n == best && best > 0).and_then(|(name, _)| Assignor::by_name(name)).unwrap_or(default)
}

fn set_current(m: &mut ConsumerMember, v: &CurrentAssignmentValue) {
    m.epoch = v.member_epoch;
    m.previous_epoch = v.previous_member_epoch;
    m.state = MemberState::from_code(v.state);
    m.assigned = v.assigned.clone();
    m.pending_revocation = v.pending_revocation.clone();
}

/// A subscription's regular expression, matched against whole topic names (as Kafka's RE2/J
/// `matches`). Compiled with a size limit: a client cannot make the coordinator build a huge
/// automaton.
pub fn compile_regex(r: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{r})$")).size_limit(1 << 20).build()
}

/// A ConsumerGroupHeartbeat as the shard sees it.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    pub version: i16,
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// −1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// `None`: unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `None`: unchanged; `Some("")` clears it.
    pub subscribed_topic_regex: Option<String>,
    /// `None`: unchanged.
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None`: unchanged since its last heartbeat.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

impl HeartbeatInput {
    /// A "full" request: the member sent everything (it joined, or re-sent all after an error)
    /// and gets its assignment in the answer whether or not it changed (§4.3 step 8).
    pub fn is_full(&self) -> bool {
        self.member_epoch == JOIN_EPOCH
            || (self.rebalance_timeout_ms != -1
                && (self.subscribed_topic_names.is_some() || self.subscribed_topic_regex.is_some())
                && self.owned.is_some())
    }
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatResult {
    pub error: ErrorCode,
    pub message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The partitions the member may use now; `None`: unchanged.
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    pub fn error(error: ErrorCode, message: impl Into<String>) -> Self {
        HeartbeatResult { error, message: Some(message.into()), ..Default::default() }
    }
}

/// The request checks Kafka makes before anything else (§4.1; checklist 116, 117).
pub fn validate(h: &HeartbeatInput, assignors: &[Assignor]) -> Result<(), HeartbeatResult> {
    let invalid = |m: &str| Err(HeartbeatResult::error(ErrorCode::INVALID_REQUEST, m));
    // blank means empty, as Kafka trims before it checks
    let blank = |s: &str| s.trim().is_empty();
    if blank(&h.group_id) {
        return invalid("GroupId can't be empty.");
    }
    if h.instance_id.as_deref().is_some_and(blank) {
        return invalid("InstanceId can't be empty.");
    }
    if h.rack_id.as_deref().is_some_and(blank) {
        return invalid("RackId can't be empty.");
    }
    if h.version >= 1 && blank(&h.member_id) {
        return invalid("MemberId can't be empty.");
    }
    match h.member_epoch {
        JOIN_EPOCH => {
            if h.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if h.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if h.subscribed_topic_names.is_none() && h.subscribed_topic_regex.is_none() {
                return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
            }
        }
        STATIC_LEAVE_EPOCH => {
            if blank(&h.member_id) {
                return invalid("MemberId can't be empty.");
            }
            if h.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        }
        e if e > 0 || e == LEAVE_EPOCH => {
            if blank(&h.member_id) {
                return invalid("MemberId can't be empty.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    if let Some(a) = h.server_assignor.as_deref()
        && !assignors.iter().any(|x| x.name() == a)
    {
        let names: Vec<&str> = assignors.iter().map(|x| x.name()).collect();
        return Err(HeartbeatResult::error(
            ErrorCode::UNSUPPORTED_ASSIGNOR,
            format!("ServerAssignor {a} is not supported. Supported assignors: {}.", names.join(", ")),
        ));
    }
    if let Some(r) = h.subscribed_topic_regex.as_deref()
        && !r.is_empty()
        && let Err(e) = compile_regex(r)
    {
        return Err(HeartbeatResult::error(
            ErrorCode::INVALID_REGULAR_EXPRESSION,
            format!("SubscribedTopicRegex `{r}` is not a valid regular expression: {e}."),
        ));
    }
    Ok(())
}

/// Kafka's epoch check of a known member (§4.3 step 3; checklist 120): a newer epoch than the
/// coordinator's, or an older one that is not the previous epoch with owned partitions it was
/// assigned, is fenced.
pub fn check_epoch(m: &ConsumerMember, received: i32, owned: Option<&Assignment>) -> Result<(), HeartbeatResult> {
    if received > m.epoch {
        return Err(HeartbeatResult::error(
            ErrorCode::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                m.epoch
            ),
        ));
    }
    if received < m.epoch && (received != m.previous_epoch || !owned.is_some_and(|o| is_subset(o, &m.assigned))) {
        return Err(HeartbeatResult::error(
            ErrorCode::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                m.epoch
            ),
        ));
    }
    Ok(())
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|bs| ps.is_subset(bs)))
}

fn any_owned(revoking: &Assignment, owned: Option<&Assignment>) -> bool {
    let Some(owned) = owned else { return true };
    revoking.iter().any(|(t, ps)| owned.get(t).is_some_and(|os| !ps.is_disjoint(os)))
}

/// Reconciliation (§4.4; checklist 122): the member's next state towards `target` at
/// `target_epoch`, given what it says it owns (`None`: unchanged) and which partitions are
/// still held by others. Partitions to revoke are asked back before anything is added; a
/// partition is added only once its previous owner has let it go.
pub fn reconcile(
    m: &ConsumerMember,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    free: &dyn Fn(&Uuid, i32) -> bool,
) -> ConsumerMember {
    match m.state {
        MemberState::Stable if m.epoch == target_epoch => m.clone(),
        MemberState::UnrevokedPartitions => {
            if owned.is_none() || any_owned(&m.pending_revocation, owned) {
                return m.clone();
            }
            // revoked: one epoch on if more must go, else to the target's
            next_assignment(m, m.epoch + 1, target_epoch, target, owned, free)
        }
        _ => next_assignment(m, m.epoch, target_epoch, target, owned, free),
    }
}

/// The member's next state: at `revoking_epoch` if it must revoke partitions first, else at
/// `target_epoch` with what it can have now.
fn next_assignment(
    m: &ConsumerMember,
    revoking_epoch: i32,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    free: &dyn Fn(&Uuid, i32) -> bool,
) -> ConsumerMember {
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut add = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<&Uuid> = m.assigned.keys().chain(target.keys()).collect();
    let none = BTreeSet::new();
    for t in topics {
        let current = m.assigned.get(t).unwrap_or(&none);
        let wanted = target.get(t).unwrap_or(&none);
        let kept: BTreeSet<i32> = current.intersection(wanted).copied().collect();
        let gone: BTreeSet<i32> = current.difference(wanted).copied().collect();
        let mut new = BTreeSet::new();
        for p in wanted.difference(current) {
            if free(t, *p) {
                new.insert(*p);
            } else {
                unreleased = true;
            }
        }
        if !kept.is_empty() {
            keep.insert(*t, kept);
        }
        if !gone.is_empty() {
            revoke.insert(*t, gone);
        }
        if !new.is_empty() {
            add.insert(*t, new);
        }
    }
    let mut next = m.clone();
    next.pending_revocation = Assignment::new();
    if !revoke.is_empty() && any_owned(&revoke, owned) {
        // revoke first: the member stays at its epoch until it stops reporting them
        next.state = MemberState::UnrevokedPartitions;
        next.assigned = keep;
        next.pending_revocation = revoke;
        next.previous_epoch = m.epoch;
        next.epoch = revoking_epoch;
        return next;
    }
    for (t, ps) in add {
        keep.entry(t).or_default().extend(ps);
    }
    next.assigned = keep;
    next.state = if unreleased { MemberState::UnreleasedPartitions } else { MemberState::Stable };
    next.previous_epoch = m.epoch;
    next.epoch = target_epoch;
    next
}

/// A Kafka `Uuid` as a member id: 22 characters of URL-safe base64 without padding.
pub fn member_id_from(u: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = u.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn a(parts: &[(u128, &[i32])]) -> Assignment {
        parts.iter().map(|(id, ps)| (t(*id), ps.iter().copied().collect())).collect()
    }

    #[test]
    fn member_ids_are_22_url_safe_characters() {
        let id = member_id_from(Uuid::from_u128(u128::MAX));
        assert_eq!(id, "_____________________w");
        assert_eq!(member_id_from(Uuid::nil()).len(), 22);
    }

    /// §4.4: revoke before assign; a partition still held elsewhere is not handed out.
    #[test]
    fn reconciliation_revokes_first_then_assigns_what_is_free() {
        let mut m = ConsumerMember::new("a");
        m.epoch = 1;
        m.assigned = a(&[(1, &[0, 1, 2])]);
        let target = a(&[(1, &[0, 1, 3])]);
        let all_free = |_: &Uuid, _: i32| true;
        // still owns 2: stays at epoch 1, revoking 2
        let next = reconcile(&m, 2, &target, Some(&a(&[(1, &[0, 1, 2])])), &all_free);
        assert_eq!(
            (next.state, next.epoch, next.assigned.clone(), next.pending_revocation.clone()),
            (MemberState::UnrevokedPartitions, 1, a(&[(1, &[0, 1])]), a(&[(1, &[2])]))
        );
        // still reporting 2: no change
        assert_eq!(reconcile(&next, 2, &target, Some(&a(&[(1, &[0, 1, 2])])), &all_free), next);
        // lets 2 go; 3 is still held by another member: epoch 2, unreleased
        let held = |_: &Uuid, p: i32| p != 3;
        let after = reconcile(&next, 2, &target, Some(&a(&[(1, &[0, 1])])), &held);
        assert_eq!(
            (after.state, after.epoch, after.previous_epoch, after.assigned.clone()),
            (MemberState::UnreleasedPartitions, 2, 1, a(&[(1, &[0, 1])]))
        );
        // 3 freed: stable with it
        let done = reconcile(&after, 2, &target, Some(&a(&[(1, &[0, 1])])), &all_free);
        assert_eq!((done.state, done.epoch, done.assigned), (MemberState::Stable, 2, target.clone()));
        // a revocation finished while the target moved two epochs on: straight to the target's
        // epoch, not one past the member's
        let late = reconcile(&next, 3, &target, Some(&a(&[(1, &[0, 1])])), &all_free);
        assert_eq!((late.state, late.epoch, late.previous_epoch), (MemberState::Stable, 3, 1));
        // more to revoke against the newer target: one epoch on, revoking again
        let again = reconcile(&next, 3, &a(&[(1, &[0])]), Some(&a(&[(1, &[0, 1])])), &all_free);
        assert_eq!((again.state, again.epoch, again.pending_revocation), (MemberState::UnrevokedPartitions, 2, a(&[(1, &[1])])));
    }

    /// Checklist 120: greater epoch fenced; previous epoch accepted only with owned ⊆ assigned.
    #[test]
    fn item_120_member_epoch_validation() {
        let mut m = ConsumerMember::new("a");
        m.epoch = 10;
        m.previous_epoch = 9;
        m.assigned = a(&[(1, &[0, 1])]);
        assert_eq!(check_epoch(&m, 11, None).unwrap_err().error, ErrorCode::FENCED_MEMBER_EPOCH);
        assert_eq!(check_epoch(&m, 9, Some(&a(&[(1, &[0, 2])]))).unwrap_err().error, ErrorCode::FENCED_MEMBER_EPOCH);
        assert_eq!(check_epoch(&m, 9, None).unwrap_err().error, ErrorCode::FENCED_MEMBER_EPOCH);
        assert_eq!(check_epoch(&m, 8, Some(&a(&[(1, &[0])]))).unwrap_err().error, ErrorCode::FENCED_MEMBER_EPOCH);
        assert!(check_epoch(&m, 9, Some(&a(&[(1, &[0])]))).is_ok());
        assert!(check_epoch(&m, 10, None).is_ok());
    }

    /// Checklist 116 and 117: the request checks and their messages.
    #[test]
    fn item_116_117_request_validation() {
        let ok = HeartbeatInput {
            version: 1,
            group_id: "g".into(),
            member_id: "m".into(),
            member_epoch: 0,
            rebalance_timeout_ms: 300_000,
            subscribed_topic_names: Some(vec!["t".into()]),
            owned: Some(Assignment::new()),
            ..Default::default()
        };
        let all = [Assignor::Uniform, Assignor::Range];
        assert!(validate(&ok, &all).is_ok());
        let msg = |h: HeartbeatInput| {
            let r = validate(&h, &all).unwrap_err();
            (r.error, r.message.unwrap())
        };
        let invalid = |m: &str| (ErrorCode::INVALID_REQUEST, m.to_string());
        assert_eq!(
            msg(HeartbeatInput { rebalance_timeout_ms: -1, ..ok.clone() }),
            invalid("RebalanceTimeoutMs must be provided in first request.")
        );
        assert_eq!(msg(HeartbeatInput { owned: None, ..ok.clone() }), invalid("TopicPartitions must be empty when (re-)joining."));
        assert_eq!(
            msg(HeartbeatInput { owned: Some(a(&[(1, &[0])])), ..ok.clone() }),
            invalid("TopicPartitions must be empty when (re-)joining.")
        );
        assert_eq!(
            msg(HeartbeatInput { subscribed_topic_names: None, ..ok.clone() }),
            invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        );
        assert_eq!(msg(HeartbeatInput { member_epoch: -3, ..ok.clone() }), invalid("MemberEpoch is invalid."));
        assert_eq!(msg(HeartbeatInput { member_id: String::new(), ..ok.clone() }), invalid("MemberId can't be empty."));
        // v0 may join without a member id (the coordinator makes one)
        assert!(validate(&HeartbeatInput { member_id: String::new(), version: 0, ..ok.clone() }, &all).is_ok());
        assert_eq!(msg(HeartbeatInput { group_id: String::new(), ..ok.clone() }), invalid("GroupId can't be empty."));
        assert_eq!(msg(HeartbeatInput { group_id: "  ".into(), ..ok.clone() }), invalid("GroupId can't be empty."));
        assert_eq!(msg(HeartbeatInput { instance_id: Some(String::new()), ..ok.clone() }), invalid("InstanceId can't be empty."));
        assert_eq!(msg(HeartbeatInput { member_epoch: -2, ..ok.clone() }), invalid("InstanceId can't be null."));
        assert_eq!(
            msg(HeartbeatInput { server_assignor: Some("foo".into()), ..ok.clone() }),
            (ErrorCode::UNSUPPORTED_ASSIGNOR, "ServerAssignor foo is not supported. Supported assignors: uniform, range.".to_string())
        );
        assert_eq!(
            msg(HeartbeatInput { subscribed_topic_regex: Some("a(".into()), ..ok.clone() }).0,
            ErrorCode::INVALID_REGULAR_EXPRESSION
        );
    }
}
