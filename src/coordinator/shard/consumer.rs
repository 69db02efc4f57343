//! ConsumerGroupHeartbeat (KIP-848): the heartbeat algorithm of `reference/
//! kafka-group-coordinator.md` §4.3 step by step, leaving (§4.5), the session and revocation
//! timers, and ConsumerGroupDescribe.
//!
//! A handler reads the group in place, works out the member's next state and the records that
//! say it, and emits them; `Shard::done` applies them, so a live change and a replay of its
//! records meet the same state.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::types::*;
use super::{Cx, Shard};
use crate::coordinator::RequestId;
use crate::coordinator::consumer::{
    Assignment, Assignor, ConsumerGroup, ConsumerMember, HeartbeatInput, HeartbeatResult, JOIN_EPOCH, LEAVE_EPOCH, MemberState,
    STATIC_LEAVE_EPOCH, TopicView, check_epoch, compile_regex, member_id_from, reconcile, validate,
};
use crate::coordinator::record::{ClassicMemberMeta, ConsumerRecord, Record, TopicMetadata};
use crate::error::ErrorCode;

pub(super) fn session_key(g: &str, m: &str) -> TimerKey {
    TimerKey::ConsumerSession { group: g.to_string(), member: m.to_string() }
}

pub(super) fn revoke_key(g: &str, m: &str, epoch: i32) -> TimerKey {
    TimerKey::ConsumerRevoke { group: g.to_string(), member: m.to_string(), epoch }
}

/// The topics a group's subscription metadata already knows, as a [`TopicView`]: what a
/// member's removal is computed against (no new topic can enter the group by a removal).
pub(super) struct Known<'a>(pub(super) &'a BTreeMap<String, TopicMetadata>);

impl TopicView for Known<'_> {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).map(|t| (t.id, t.partitions))
    }
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// One consumer-group description (ConsumerGroupDescribe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    pub state: &'static str,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<DescribedConsumerMember>,
    /// Topic id → name, for the assignments.
    pub topic_names: BTreeMap<Uuid, String>,
}

/// One member of a ConsumerGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerMember {
    pub member: ConsumerMember,
    pub target: Assignment,
}

impl Shard {
    /// ConsumerGroupHeartbeat, against the topics as they are now.
    pub fn consumer_heartbeat(&mut self, now: i64, req: RequestId, h: HeartbeatInput, topics: &dyn TopicView) -> Output {
        let mut cx = Cx { now, out: Output::default() };
        let r = match self.heartbeat_steps(&mut cx, h, topics) {
            Ok(r) | Err(r) => r,
        };
        cx.reply(req, Reply::ConsumerHeartbeat(r));
        self.done(cx)
    }

    fn heartbeat_steps(&mut self, cx: &mut Cx, mut h: HeartbeatInput, topics: &dyn TopicView) -> Result<HeartbeatResult, HeartbeatResult> {
        validate(&h, &self.config.consumer_assignors)?;
        if h.member_epoch == LEAVE_EPOCH || h.member_epoch == STATIC_LEAVE_EPOCH {
            return self.consumer_leave(cx, &h);
        }
        if h.member_id.is_empty() {
            // v0 joins without an id: the coordinator makes one
            h.member_id = match &mut self.ids {
                IdSource::Random => member_id_from(Uuid::new_v4()),
                IdSource::Counter(n) => {
                    *n += 1;
                    format!("member-{n}")
                }
            };
        }
        if let Some(r) = self.steady_heartbeat(cx, &h, topics) {
            return Ok(r);
        }
        if h.member_epoch == JOIN_EPOCH {
            self.upgrade_classic_group(cx, &h.group_id, topics)?;
        }
        self.member_steps(cx, h, topics, None)
    }

    /// Steps 1 to 8 of the heartbeat (§4.3) for a member joining or heartbeating; `classic` is
    /// set for a member of the classic protocol (a JoinGroup into the consumer group, §4.7):
    /// no epoch check (its JoinGroup carries none), its session is the classic one.
    pub(super) fn member_steps(
        &mut self,
        cx: &mut Cx,
        h: HeartbeatInput,
        topics: &dyn TopicView,
        classic: Option<ClassicMemberMeta>,
    ) -> Result<HeartbeatResult, HeartbeatResult> {
        let config = &self.config;
        let gid = h.group_id.as_str();
        let mid = h.member_id.clone();
        let not_found = |m: String| Err(HeartbeatResult::error(ErrorCode::GROUP_ID_NOT_FOUND, m));

        // 1. The group: a new one on a join; an empty classic group gives way (§4.7).
        let group = self.groups.get(gid);
        let empty = ConsumerGroup::default();
        let mut records: Vec<Record> = Vec::new();
        let cg = match group {
            None if h.member_epoch != JOIN_EPOCH => return not_found(format!("Group {gid} not found.")),
            None => &empty,
            Some(g) => match &g.consumer {
                Some(c) => c,
                None if h.member_epoch != JOIN_EPOCH => return not_found(format!("Group {gid} is not a consumer group.")),
                None if !g.is_empty_group() => {
                    // a JoinGroup into the consumer group found it classic still (not reached:
                    // a heartbeat's join upgrades the group first)
                    return not_found(format!("Group {gid} is not a consumer group."));
                }
                None => {
                    if g.persisted.is_some() {
                        records.push(Record::Group { group: gid.to_string(), value: None });
                    }
                    &empty
                }
            },
        };

        // 2. The size limit, for anyone not a member yet.
        if !cg.members.contains_key(&mid) && cg.members.len() >= config.consumer_max_size {
            return Err(HeartbeatResult::error(
                ErrorCode::GROUP_MAX_SIZE_REACHED,
                format!("The consumer group has reached its maximum capacity of {} members.", config.consumer_max_size),
            ));
        }

        // 3. The member.
        let mut replaced: Option<&ConsumerMember> = None;
        let existing: Option<&ConsumerMember> = match h.instance_id.as_deref() {
            Some(instance) => match cg.static_members.get(instance) {
                None if h.member_epoch != JOIN_EPOCH => {
                    return Err(HeartbeatResult::error(ErrorCode::UNKNOWN_MEMBER_ID, format!("Instance id {instance} is unknown.")));
                }
                None => cg.members.get(&mid),
                Some(owner) if *owner == mid => cg.members.get(owner),
                Some(owner) => {
                    if h.member_epoch != JOIN_EPOCH {
                        return Err(HeartbeatResult::error(
                            ErrorCode::FENCED_INSTANCE_ID,
                            format!("Static member {mid} with instance id {instance} was fenced by another member."),
                        ));
                    }
                    let previous = cg.members.get(owner);
                    // a member of the classic protocol, joining or holding the instance, is
                    // replaced at once (its JoinGroup cannot say it left)
                    let either_classic = classic.is_some() || previous.is_some_and(|p| p.meta.classic.is_some());
                    if previous.is_some_and(|p| p.epoch != STATIC_LEAVE_EPOCH) && !either_classic {
                        return Err(HeartbeatResult::error(
                            ErrorCode::UNRELEASED_INSTANCE_ID,
                            format!("Static member with instance id {instance} is not released yet."),
                        ));
                    }
                    replaced = previous;
                    None
                }
            },
            None => match cg.members.get(&mid) {
                None if h.member_epoch != JOIN_EPOCH => {
                    return Err(HeartbeatResult::error(
                        ErrorCode::UNKNOWN_MEMBER_ID,
                        format!("Member {mid} is not a member of group {gid}."),
                    ));
                }
                found => found,
            },
        };
        if let Some(m) = existing
            && h.member_epoch != JOIN_EPOCH
            && classic.is_none()
        {
            check_epoch(m, h.member_epoch, h.owned.as_ref())?;
        }

        // 4. The member's changed fields; a new subscription bumps the group epoch.
        let before: ConsumerMember = match (existing, replaced) {
            (Some(m), _) => m.clone(),
            // a static member back under a new id takes over the one it replaces, at epoch 0
            (None, Some(p)) => ConsumerMember { id: mid.clone(), epoch: JOIN_EPOCH, previous_epoch: JOIN_EPOCH, ..p.clone() },
            (None, None) => ConsumerMember::new(&mid),
        };
        let is_new = existing.is_none() && replaced.is_none();
        let mut meta = before.meta.clone();
        if let Some(i) = &h.instance_id {
            meta.instance_id = Some(i.clone());
        }
        if let Some(r) = &h.rack_id {
            meta.rack_id = Some(r.clone());
        }
        if h.rebalance_timeout_ms != -1 {
            meta.rebalance_timeout_ms = h.rebalance_timeout_ms;
        }
        if let Some(a) = &h.server_assignor {
            meta.server_assignor = Some(a.clone());
        }
        if let Some(names) = &h.subscribed_topic_names {
            let sorted: BTreeSet<&String> = names.iter().collect();
            meta.subscribed_topic_names = sorted.into_iter().cloned().collect();
        }
        if let Some(r) = &h.subscribed_topic_regex {
            meta.subscribed_topic_regex = (!r.is_empty()).then(|| r.clone());
        }
        meta.client_id = h.client_id.clone();
        meta.client_host = h.client_host.clone();
        let session_ms = classic.as_ref().map_or(config.consumer_session_timeout_ms, |c| c.session_timeout_ms);
        let is_classic = classic.is_some();
        meta.classic = classic;
        let subscription_changed = is_new
            || meta.subscribed_topic_names != before.meta.subscribed_topic_names
            || meta.subscribed_topic_regex != before.meta.subscribed_topic_regex;
        let meta_changed = is_new || replaced.is_some() || meta != before.meta;
        let mut member = before.clone();
        member.meta = meta;
        if let Some(p) = replaced {
            records.extend(ConsumerGroup::removal_records(gid, &p.id).map(Record::Consumer));
        }
        if meta_changed {
            records.push(Record::Consumer(ConsumerRecord::Member {
                group: gid.to_string(),
                member: mid.clone(),
                value: Some(member.meta.clone()),
            }));
        }
        let removed: Vec<&str> = std::iter::once(mid.as_str()).chain(replaced.map(|p| p.id.as_str())).collect();
        let metadata = cg.compute_subscription_metadata(&removed, Some(&member.meta), topics);
        let mut bump = subscription_changed;
        if metadata != cg.subscription_metadata {
            records.push(Record::Consumer(ConsumerRecord::SubscriptionMetadata {
                group: gid.to_string(),
                topics: Some(metadata.values().cloned().collect()),
            }));
            bump = true;
        }
        let group_epoch = if bump || cg.epoch == 0 { cg.epoch + 1 } else { cg.epoch };
        if group_epoch != cg.epoch {
            records.push(Record::Consumer(ConsumerRecord::GroupEpoch { group: gid.to_string(), epoch: Some(group_epoch) }));
        }

        // 5. A new target assignment when the group epoch moved past it.
        let replaced_id = replaced.map(|p| p.id.as_str());
        let target_epoch;
        let target: Assignment;
        if group_epoch > cg.assignment_epoch {
            let default = config.consumer_assignors.first().copied().unwrap_or(Assignor::Uniform);
            let targets = compute_target(cg, &member, replaced_id, &metadata, default);
            for (id, a) in &targets {
                let previous = if *id == mid { replaced_id.map_or(cg.target.get(id), |r| cg.target.get(r)) } else { cg.target.get(id) };
                if previous != Some(a) || (*id == mid && replaced.is_some()) {
                    records.push(Record::Consumer(ConsumerRecord::TargetMember {
                        group: gid.to_string(),
                        member: id.clone(),
                        value: Some(a.clone()),
                    }));
                }
            }
            records.push(Record::Consumer(ConsumerRecord::TargetEpoch { group: gid.to_string(), epoch: Some(group_epoch) }));
            target_epoch = group_epoch;
            target = targets.get(&mid).cloned().unwrap_or_default();
        } else {
            target_epoch = cg.assignment_epoch;
            let own = replaced_id.map_or(cg.target.get(&mid), |r| cg.target.get(r));
            target = own.cloned().unwrap_or_default();
            if replaced.is_some() {
                records.push(Record::Consumer(ConsumerRecord::TargetMember {
                    group: gid.to_string(),
                    member: mid.clone(),
                    value: Some(target.clone()),
                }));
            }
        }

        // 6. Reconcile the member towards its target.
        let free = |t: &Uuid, p: i32| match cg.owners.get(&(*t, p)) {
            None => true,
            Some(owner) => *owner == mid || Some(owner.as_str()) == replaced_id,
        };
        let next = reconcile(&member, target_epoch, &target, h.owned.as_ref(), &free);
        let state_changed = next.epoch != before.epoch
            || next.previous_epoch != before.previous_epoch
            || next.state != before.state
            || next.assigned != before.assigned
            || next.pending_revocation != before.pending_revocation;
        if state_changed || is_new || replaced.is_some() {
            records.push(Record::Consumer(ConsumerRecord::CurrentAssignment {
                group: gid.to_string(),
                member: mid.clone(),
                value: Some(next.current_value()),
            }));
        }
        // the revocation deadline: armed on entering UNREVOKED_PARTITIONS at an epoch
        let revoking = |m: &ConsumerMember| m.state == MemberState::UnrevokedPartitions;
        if revoking(&before) && !(revoking(&next) && next.epoch == before.epoch) {
            cx.cancel(revoke_key(gid, &mid, before.epoch));
        }
        if revoking(&next) && !(revoking(&before) && next.epoch == before.epoch) && !is_classic {
            cx.set(revoke_key(gid, &mid, next.epoch), next.meta.rebalance_timeout_ms.max(0) as i64);
        }
        // 7. The session.
        cx.set(session_key(gid, &mid), session_ms as i64);
        if let Some(p) = replaced {
            cx.cancel(session_key(gid, &p.id));
            cx.cancel(revoke_key(gid, &p.id, p.epoch));
        }
        // 8. The answer: the assignment when it changed, or when the request was full.
        let send_assignment = h.is_full() || is_new || replaced.is_some() || next.assigned != before.assigned;
        let answer = HeartbeatResult {
            error: ErrorCode::NONE,
            message: None,
            member_id: Some(mid.clone()),
            member_epoch: next.epoch,
            heartbeat_interval_ms: config.consumer_heartbeat_interval_ms,
            assignment: send_assignment.then(|| next.assigned.clone()),
        };
        for r in records {
            cx.emit(r);
        }
        Ok(answer)
    }

    /// The common heartbeat, answered without working anything out: a stable member at the
    /// group's epoch, sending nothing new (every field null or as before), in a group whose
    /// subscribed topics are as they were (no regular expression to look for new ones). It
    /// re-arms the session; the answer is what the full algorithm would give — no records, no
    /// assignment.
    fn steady_heartbeat(&self, cx: &mut Cx, h: &HeartbeatInput, topics: &dyn TopicView) -> Option<HeartbeatResult> {
        let cg = self.groups.get(&h.group_id)?.consumer.as_ref()?;
        let m = cg.members.get(&h.member_id)?;
        let meta = &m.meta;
        let same = |new: &Option<String>, old: &Option<String>| new.is_none() || new == old;
        let steady = h.member_epoch > 0
            && h.member_epoch == m.epoch
            && m.state == MemberState::Stable
            && m.epoch == cg.assignment_epoch
            && cg.epoch == cg.assignment_epoch
            && same(&h.instance_id, &meta.instance_id)
            && same(&h.rack_id, &meta.rack_id)
            && (h.rebalance_timeout_ms == -1 || h.rebalance_timeout_ms == meta.rebalance_timeout_ms)
            && h.subscribed_topic_names.is_none()
            && h.subscribed_topic_regex.is_none()
            && same(&h.server_assignor, &meta.server_assignor)
            && h.owned.as_ref().is_none_or(|o| *o == m.assigned)
            && h.client_id == meta.client_id
            && h.client_host == meta.client_host
            && cg.regex_counts.is_empty()
            && cg.subscription_metadata.values().all(|t| topics.by_name(&t.name) == Some((t.id, t.partitions)));
        if !steady {
            return None;
        }
        cx.set(session_key(&h.group_id, &m.id), self.config.consumer_session_timeout_ms as i64);
        Some(HeartbeatResult {
            error: ErrorCode::NONE,
            message: None,
            member_id: Some(m.id.clone()),
            member_epoch: m.epoch,
            heartbeat_interval_ms: self.config.consumer_heartbeat_interval_ms,
            assignment: h.is_full().then(|| m.assigned.clone()),
        })
    }

    /// A heartbeat with epoch −1 (leave) or −2 (a static member away for a while, §4.5).
    fn consumer_leave(&mut self, cx: &mut Cx, h: &HeartbeatInput) -> Result<HeartbeatResult, HeartbeatResult> {
        let gid = h.group_id.as_str();
        let Some(cg) = self.groups.get(gid).and_then(|g| g.consumer.as_ref()) else {
            return Err(HeartbeatResult::error(ErrorCode::GROUP_ID_NOT_FOUND, format!("Group {gid} not found.")));
        };
        let member = match h.instance_id.as_deref() {
            Some(instance) => match cg.static_members.get(instance) {
                None => return Err(HeartbeatResult::error(ErrorCode::UNKNOWN_MEMBER_ID, format!("Instance id {instance} is unknown."))),
                Some(owner) if *owner != h.member_id => {
                    return Err(HeartbeatResult::error(
                        ErrorCode::FENCED_INSTANCE_ID,
                        format!("Static member {} with instance id {instance} was fenced by another member.", h.member_id),
                    ));
                }
                Some(owner) => cg.members.get(owner),
            },
            None => cg.members.get(&h.member_id),
        };
        let Some(m) = member else {
            return Err(HeartbeatResult::error(
                ErrorCode::UNKNOWN_MEMBER_ID,
                format!("Member {} is not a member of group {gid}.", h.member_id),
            ));
        };
        let interval = self.config.consumer_heartbeat_interval_ms;
        let answer = |epoch| HeartbeatResult {
            member_id: Some(h.member_id.clone()),
            member_epoch: epoch,
            heartbeat_interval_ms: interval,
            ..Default::default()
        };
        if h.member_epoch == STATIC_LEAVE_EPOCH {
            // it keeps its assignment until it is back or its session ends; no epoch bump
            let mut away = m.clone();
            away.epoch = STATIC_LEAVE_EPOCH;
            away.pending_revocation = Assignment::new();
            if m.state == MemberState::UnrevokedPartitions {
                cx.cancel(revoke_key(gid, &m.id, m.epoch));
            }
            cx.emit(Record::Consumer(ConsumerRecord::CurrentAssignment {
                group: gid.to_string(),
                member: m.id.clone(),
                value: Some(away.current_value()),
            }));
            return Ok(answer(STATIC_LEAVE_EPOCH));
        }
        let id = m.id.clone();
        self.fence_consumer_member(cx, gid, &id);
        Ok(answer(LEAVE_EPOCH))
    }

    /// Removes a member (it left, or its session or revocation deadline passed): its records
    /// are tombstoned, the subscription metadata follows and the group epoch is bumped (§4.5).
    pub(super) fn fence_consumer_member(&mut self, cx: &mut Cx, gid: &str, member: &str) {
        self.classic_join_due.remove(&(gid.to_string(), member.to_string()));
        if !self.groups.get(gid).and_then(|g| g.consumer.as_ref()).is_some_and(|c| c.members.contains_key(member)) {
            return;
        }
        if self.downgrade_consumer_group(cx, gid, member) {
            return;
        }
        let Some(cg) = self.groups.get(gid).and_then(|g| g.consumer.as_ref()) else { return };
        let Some(m) = cg.members.get(member) else { return };
        cx.cancel(session_key(gid, member));
        cx.cancel(super::mixed::classic_join_key(gid, member));
        if m.state == MemberState::UnrevokedPartitions {
            cx.cancel(revoke_key(gid, member, m.epoch));
        }
        for r in ConsumerGroup::removal_records(gid, member) {
            cx.emit(Record::Consumer(r));
        }
        let metadata = cg.compute_subscription_metadata(&[member], None, &Known(&cg.subscription_metadata));
        if metadata != cg.subscription_metadata {
            cx.emit(Record::Consumer(ConsumerRecord::SubscriptionMetadata {
                group: gid.to_string(),
                topics: Some(metadata.into_values().collect()),
            }));
        }
        cx.emit(Record::Consumer(ConsumerRecord::GroupEpoch { group: gid.to_string(), epoch: Some(cg.epoch + 1) }));
    }

    /// A member's session ended (checklist 124).
    pub(super) fn consumer_session_expired(&mut self, cx: &mut Cx, gid: &str, member: &str) {
        if self.groups.get(gid).and_then(|g| g.consumer.as_ref()).is_some_and(|c| c.members.contains_key(member)) {
            tracing::debug!(group = gid, member, "consumer-group member's session expired");
            self.fence_consumer_member(cx, gid, member);
        }
    }

    /// A member did not revoke its partitions within its rebalance timeout (checklist 123).
    pub(super) fn consumer_revocation_expired(&mut self, cx: &mut Cx, gid: &str, member: &str, epoch: i32) {
        let late = self
            .groups
            .get(gid)
            .and_then(|g| g.consumer.as_ref())
            .and_then(|c| c.members.get(member))
            .is_some_and(|m| m.state == MemberState::UnrevokedPartitions && m.epoch == epoch);
        if late {
            tracing::debug!(group = gid, member, "consumer-group member did not revoke its partitions in time");
            self.fence_consumer_member(cx, gid, member);
        }
    }

    /// ConsumerGroupDescribe of one group: `Err` GROUP_ID_NOT_FOUND (with its message) for an
    /// unknown group or a classic one (checklist 135).
    pub fn describe_consumer_group(&self, gid: &str) -> Result<ConsumerGroupDescription, (ErrorCode, String)> {
        let g = self.groups.get(gid).ok_or_else(|| (ErrorCode::GROUP_ID_NOT_FOUND, format!("Group {gid} not found.")))?;
        let cg = g.consumer.as_ref().ok_or_else(|| (ErrorCode::GROUP_ID_NOT_FOUND, format!("Group {gid} is not a consumer group.")))?;
        let default = self.config.consumer_assignors.first().copied().unwrap_or(Assignor::Uniform);
        Ok(ConsumerGroupDescription {
            state: cg.state().name(),
            epoch: cg.epoch,
            assignment_epoch: cg.assignment_epoch,
            assignor: cg.preferred_assignor(default).name(),
            members: cg
                .members
                .values()
                .map(|m| DescribedConsumerMember { member: m.clone(), target: cg.target.get(&m.id).cloned().unwrap_or_default() })
                .collect(),
            topic_names: cg.subscription_metadata.values().map(|t| (t.id, t.name.clone())).collect(),
        })
    }
}

/// The target assignment of every member, with `member` standing in for its id (and for the
/// static member it replaces), against the subscription metadata `metadata` (§4.3 step 5).
fn compute_target(
    cg: &ConsumerGroup,
    member: &ConsumerMember,
    replaced: Option<&str>,
    metadata: &BTreeMap<String, TopicMetadata>,
    default: Assignor,
) -> BTreeMap<String, Assignment> {
    let members: Vec<&ConsumerMember> =
        cg.members.values().filter(|m| m.id != member.id && Some(m.id.as_str()) != replaced).chain(std::iter::once(member)).collect();
    let assignor = crate::coordinator::consumer::preferred_assignor(members.iter().copied(), default);
    // each member's subscribed topic ids, regular expressions resolved against the metadata
    let subscribed: Vec<BTreeSet<Uuid>> = members
        .iter()
        .map(|m| {
            let mut ids: BTreeSet<Uuid> = m.meta.subscribed_topic_names.iter().filter_map(|n| metadata.get(n)).map(|t| t.id).collect();
            if let Some(re) = m.meta.subscribed_topic_regex.as_deref().and_then(|r| compile_regex(r).ok()) {
                ids.extend(metadata.values().filter(|t| re.is_match(&t.name)).map(|t| t.id));
            }
            ids
        })
        .collect();
    let none = Assignment::new();
    let currents: Vec<&Assignment> = members
        .iter()
        .map(|m| {
            let key = if m.id == member.id { replaced.unwrap_or(&m.id) } else { &m.id };
            cg.target.get(key).or_else(|| cg.target.get(&m.id)).unwrap_or(&none)
        })
        .collect();
    let specs: Vec<crate::coordinator::consumer::assignor::MemberSpec<'_>> = members
        .iter()
        .zip(&subscribed)
        .zip(&currents)
        .map(|((m, s), c)| crate::coordinator::consumer::assignor::MemberSpec {
            member_id: &m.id,
            instance_id: m.meta.instance_id.as_deref(),
            subscribed: s,
            current: c,
        })
        .collect();
    let topics: BTreeMap<Uuid, i32> = metadata.values().map(|t| (t.id, t.partitions)).collect();
    assignor.assign(&specs, &topics)
}
