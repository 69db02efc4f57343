//! Members of the classic protocol in a consumer group (`reference/kafka-group-coordinator.md`
//! §4.7): a JoinGroup into a group of the consumer protocol makes the client a member like any
//! other — its subscription (and the partitions it owns) read from its ConsumerProtocol
//! metadata, its assignment computed by the group's assignor and reconciled the same way —
//! while it keeps speaking JoinGroup, SyncGroup, Heartbeat and LeaveGroup. It is a follower
//! that never leads: its JoinGroup is answered at once with its member epoch as the generation,
//! SyncGroup hands it the partitions it may own now, and Heartbeat answers
//! REBALANCE_IN_PROGRESS when it must rejoin (to revoke, to catch up with the group epoch, or to
//! take partitions that were freed).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::{Known, session_key};
use super::types::*;
use super::{Cx, Shard};
use crate::coordinator::consumer::{
    Assignment, ConsumerGroup, ConsumerMember, HeartbeatInput as ConsumerHeartbeat, HeartbeatResult, MemberState, TopicView, member_id_from,
};
use crate::coordinator::group::{GroupState, parse_assignment, parse_subscription};
use crate::coordinator::record::{ClassicMemberMeta, ConsumerMemberValue, ConsumerRecord, CurrentAssignmentValue, Record};
use crate::error::ErrorCode;

pub(super) fn classic_join_key(g: &str, m: &str) -> TimerKey {
    TimerKey::ConsumerClassicJoin { group: g.to_string(), member: m.to_string() }
}

/// A ConsumerProtocol assignment of `assigned` (topic ids named through `metadata`), in the
/// version the member's subscription used (at most 3), with no user data.
fn encode_assignment(version: i16, assigned: &Assignment, names: &dyn Fn(&Uuid) -> Option<String>) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(version.clamp(0, 3));
    let topics: Vec<(String, &std::collections::BTreeSet<i32>)> = assigned.iter().filter_map(|(id, ps)| Some((names(id)?, ps))).collect();
    b.put_i32(topics.len() as i32);
    for (name, ps) in topics {
        b.put_i16(name.len() as i16);
        b.put_slice(name.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1);
    b.freeze()
}

impl Shard {
    /// The consumer group `group`, if the group is one with members.
    fn live_consumer_group(&self, group: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group).and_then(|g| g.consumer.as_ref()).filter(|c| !c.members.is_empty())
    }

    /// Whether requests of the classic protocol for `group` go to its consumer group.
    pub(super) fn classic_goes_to_consumer_group(&self, group: &str) -> bool {
        self.live_consumer_group(group).is_some()
    }

    /// The classic member `member_id` (or the static one `instance`) of a consumer group.
    fn classic_member<'a>(cg: &'a ConsumerGroup, member_id: &str, instance: Option<&str>) -> Result<&'a ConsumerMember, ErrorCode> {
        if let Some(i) = instance {
            match cg.static_members.get(i) {
                None => return Err(ErrorCode::UNKNOWN_MEMBER_ID),
                Some(owner) if owner != member_id => return Err(ErrorCode::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        match cg.members.get(member_id) {
            Some(m) if m.meta.classic.is_some() => Ok(m),
            _ => Err(ErrorCode::UNKNOWN_MEMBER_ID),
        }
    }

    /// JoinGroup into a consumer group with members (checklist 131).
    pub(super) fn classic_join_consumer_group(&mut self, cx: &mut Cx, mut j: JoinInput, topics: Option<&dyn TopicView>) -> JoinResult {
        if self
            .live_consumer_group(&j.group_id)
            .is_some_and(|c| !c.members.contains_key(&j.member_id) && c.members.len() >= self.config.consumer_max_size)
        {
            return JoinResult::error(ErrorCode::GROUP_MAX_SIZE_REACHED, &j.member_id);
        }
        if j.protocol_type != "consumer" || j.protocols.is_empty() {
            return JoinResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &j.member_id);
        }
        let provided = !j.member_id.is_empty();
        if j.member_id.is_empty() {
            let id = match &mut self.ids {
                IdSource::Random => member_id_from(Uuid::new_v4()),
                IdSource::Counter(n) => {
                    *n += 1;
                    format!("member-{n}")
                }
            };
            if j.version >= 4 && j.group_instance_id.is_none() {
                return JoinResult::error(ErrorCode::MEMBER_ID_REQUIRED, &id);
            }
            j.member_id = id;
        }
        let Some(sub) = parse_subscription(&j.protocols[0].metadata) else {
            return JoinResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &j.member_id);
        };
        let cg = self.live_consumer_group(&j.group_id).expect("checked by the caller");
        // a static member naming a member id that is no longer the instance's was replaced
        if provided
            && let Some(owner) = j.group_instance_id.as_deref().and_then(|i| cg.static_members.get(i))
            && *owner != j.member_id
        {
            return JoinResult::error(ErrorCode::FENCED_INSTANCE_ID, &j.member_id);
        }
        let existing = cg.members.get(&j.member_id);
        if existing.is_some_and(|m| m.meta.classic.is_none()) {
            // a member of the consumer protocol cannot JoinGroup under its id
            return JoinResult::error(ErrorCode::UNKNOWN_MEMBER_ID, &j.member_id);
        }
        // a member id the group does not know joins as a new member (as Kafka's does)
        let metadata = cg.subscription_metadata.clone();
        let known = Known(&metadata);
        let view: &dyn TopicView = topics.unwrap_or(&known);
        let mut owned = Assignment::new();
        for (topic, ps) in &sub.owned {
            if let Some((id, _)) = view.by_name(topic) {
                owned.entry(id).or_default().extend(ps.iter().copied());
            }
        }
        let h = ConsumerHeartbeat {
            version: 1,
            group_id: j.group_id.clone(),
            member_id: j.member_id.clone(),
            member_epoch: existing.map_or(0, |m| m.epoch),
            instance_id: j.group_instance_id.clone(),
            rack_id: None,
            rebalance_timeout_ms: j.rebalance_timeout_ms,
            subscribed_topic_names: Some(sub.topics.clone()),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(owned),
            client_id: j.client_id.clone(),
            client_host: j.client_host.clone(),
        };
        let classic = ClassicMemberMeta {
            session_timeout_ms: j.session_timeout_ms,
            protocols: j.protocols.iter().map(|p| (p.name.clone(), p.metadata.clone())).collect(),
        };
        cx.cancel(classic_join_key(&j.group_id, &j.member_id));
        self.classic_join_due.remove(&(j.group_id.clone(), j.member_id.clone()));
        match self.member_steps(cx, h, view, Some(classic)) {
            Ok(r) => JoinResult {
                error: ErrorCode::NONE,
                generation_id: r.member_epoch,
                protocol_type: Some("consumer".to_string()),
                protocol_name: Some(j.protocols[0].name.clone()),
                leader: String::new(),
                skip_assignment: false,
                member_id: j.member_id,
                members: Vec::new(),
            },
            Err(r) => JoinResult::error(r.error, &j.member_id),
        }
    }

    /// SyncGroup of a classic member of a consumer group: the partitions it may own now, in
    /// its ConsumerProtocol version (the leader's assignments of a classic group do not apply).
    pub(super) fn classic_sync_consumer_group(&mut self, cx: &mut Cx, s: &SyncInput) -> SyncResult {
        let cg = self.live_consumer_group(&s.group_id).expect("checked by the caller");
        let m = match Self::classic_member(cg, &s.member_id, s.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(code) => return SyncResult::error(code),
        };
        if s.generation_id != m.epoch {
            return SyncResult::error(ErrorCode::ILLEGAL_GENERATION);
        }
        let session = m.meta.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        cx.set(session_key(&s.group_id, &m.id), session as i64);
        // the group moved on since its JoinGroup: it must rejoin (not while it revokes)
        if m.epoch < cg.epoch && m.state != MemberState::UnrevokedPartitions {
            let (id, rebalance_ms) = (m.id.clone(), m.meta.rebalance_timeout_ms.max(0) as i64);
            if self.classic_join_due.insert((s.group_id.clone(), id.clone())) {
                cx.set(classic_join_key(&s.group_id, &id), rebalance_ms);
            }
            return SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS);
        }
        let cg = self.live_consumer_group(&s.group_id).expect("checked by the caller");
        let m = &cg.members[&s.member_id];
        let protocols = &m.meta.classic.as_ref().expect("a classic member").protocols;
        let name = protocols.first().map(|(n, _)| n.clone()).unwrap_or_default();
        if s.protocol_type.as_deref().is_some_and(|t| t != "consumer") || s.protocol_name.as_deref().is_some_and(|n| n != name) {
            return SyncResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        let version = protocols.first().and_then(|(_, meta)| parse_subscription(meta)).map_or(0, |sub| sub.version);
        let names = |id: &Uuid| cg.subscription_metadata.values().find(|t| t.id == *id).map(|t| t.name.clone());
        SyncResult {
            error: ErrorCode::NONE,
            protocol_type: Some("consumer".to_string()),
            protocol_name: Some(name),
            assignment: encode_assignment(version, &m.assigned, &names),
        }
    }

    /// Heartbeat of a classic member of a consumer group (checklist 132): REBALANCE_IN_PROGRESS
    /// when it must rejoin — the group epoch moved past it, it has partitions to revoke, or
    /// partitions it waited for are free — and then it has its rebalance timeout to do so.
    pub(super) fn classic_heartbeat_consumer_group(&mut self, cx: &mut Cx, h: &HeartbeatInput) -> ErrorCode {
        let cg = self.live_consumer_group(&h.group_id).expect("checked by the caller");
        let m = match Self::classic_member(cg, &h.member_id, h.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(code) => return code,
        };
        if h.generation_id != m.epoch {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        let session = m.meta.classic.as_ref().map_or(0, |c| c.session_timeout_ms);
        cx.set(session_key(&h.group_id, &m.id), session as i64);
        let waiting = |m: &ConsumerMember| {
            let target = cg.target.get(&m.id);
            target.is_some_and(|t| {
                t.iter().any(|(topic, ps)| {
                    ps.iter().any(|p| !m.assigned.get(topic).is_some_and(|a| a.contains(p)) && !cg.is_free_for(&m.id, topic, *p))
                })
            })
        };
        let rejoin = m.epoch < cg.epoch
            || m.state == MemberState::UnrevokedPartitions
            || (m.state == MemberState::UnreleasedPartitions && !waiting(m));
        if !rejoin {
            return ErrorCode::NONE;
        }
        let (id, rebalance_ms) = (m.id.clone(), m.meta.rebalance_timeout_ms.max(0) as i64);
        if self.classic_join_due.insert((h.group_id.clone(), id.clone())) {
            cx.set(classic_join_key(&h.group_id, &id), rebalance_ms);
        }
        ErrorCode::REBALANCE_IN_PROGRESS
    }

    /// A classic member told to rejoin did not within its rebalance timeout: it is removed.
    pub(super) fn classic_join_expired(&mut self, cx: &mut Cx, group: &str, member: &str) {
        self.classic_join_due.remove(&(group.to_string(), member.to_string()));
        if self.live_consumer_group(group).is_some_and(|c| c.members.contains_key(member)) {
            tracing::debug!(group, member, "classic member of a consumer group did not rejoin in time");
            self.fence_consumer_member(cx, group, member);
        }
    }

    /// LeaveGroup of classic members of a consumer group: each one named is removed.
    pub(super) fn classic_leave_consumer_group(&mut self, cx: &mut Cx, l: LeaveInput) -> LeaveResult {
        let mut members = Vec::with_capacity(l.members.len());
        for (member_id, group_instance_id) in l.members {
            let found = self.live_consumer_group(&l.group_id).map_or(Err(ErrorCode::UNKNOWN_MEMBER_ID), |cg| {
                let id = match group_instance_id.as_deref() {
                    Some(i) if member_id.is_empty() => cg.static_members.get(i).cloned().unwrap_or_default(),
                    _ => member_id.clone(),
                };
                Self::classic_member(cg, &id, group_instance_id.as_deref()).map(|m| m.id.clone())
            });
            let error = match found {
                Ok(id) => {
                    // applied at once (and again, to the same effect, when the step ends), so
                    // that the next member's removal is computed without this one
                    let from = cx.out.records.len();
                    self.fence_consumer_member(cx, &l.group_id, &id);
                    for r in &cx.out.records[from..] {
                        self.apply(cx.now, r);
                    }
                    ErrorCode::NONE
                }
                Err(code) => code,
            };
            members.push(MemberError { member_id, group_instance_id, error });
        }
        LeaveResult { error: ErrorCode::NONE, members }
    }
}

impl Shard {
    /// The online upgrade (§4.7; checklist 129): a consumer-protocol member joins a classic
    /// group with members. A group of the consumer embedded protocol within
    /// `group.consumer.max.size` becomes a consumer group whose members are its classic ones, at
    /// the classic generation as their epoch and with the assignments they hold; their parked
    /// JoinGroup and SyncGroup are answered REBALANCE_IN_PROGRESS. The records are applied at
    /// once (and again, to the same effect, when the step ends), so the join that follows sees
    /// the consumer group.
    pub(super) fn upgrade_classic_group(&mut self, cx: &mut Cx, gid: &str, topics: &dyn TopicView) -> Result<(), HeartbeatResult> {
        let Some(g) = self.groups.get_mut(gid) else { return Ok(()) };
        if g.consumer.is_some() || g.is_empty_group() {
            return Ok(());
        }
        let refuse = |why: &str| {
            Err(HeartbeatResult::error(
                ErrorCode::GROUP_ID_NOT_FOUND,
                format!("Cannot upgrade classic group {gid} to consumer group because {why}."),
            ))
        };
        if g.protocol_type.as_deref() != Some("consumer") {
            return refuse("the group does not use the consumer embedded protocol");
        }
        if g.members.len() > self.config.consumer_max_size {
            return refuse("the group size exceeds the consumer group maximum size");
        }
        // the join that follows would be refused: leave the classic group as it is
        if g.members.len() >= self.config.consumer_max_size {
            return Err(HeartbeatResult::error(
                ErrorCode::GROUP_MAX_SIZE_REACHED,
                format!("The consumer group has reached its maximum capacity of {} members.", self.config.consumer_max_size),
            ));
        }
        let generation = g.generation;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        cx.cancel(super::join_key(gid));
        cx.cancel(TimerKey::Sync { group: gid.to_string(), generation });
        let mut records = vec![Record::Group { group: gid.to_string(), value: None }];
        let mut fresh = ConsumerGroup::default();
        for m in g.members.values_mut() {
            if let Some(w) = m.awaiting_join.take() {
                cx.reply(w.request, Reply::Join(JoinResult::error(ErrorCode::REBALANCE_IN_PROGRESS, &m.id)));
            }
            if let Some(w) = m.awaiting_sync.take() {
                cx.reply(w.request, Reply::Sync(SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS)));
            }
            cx.cancel(super::heartbeat_key(gid, &m.id));
            cx.set(session_key(gid, &m.id), m.session_timeout_ms as i64);
            let mut names: Vec<String> =
                m.metadata(&protocol).and_then(|meta| parse_subscription(meta)).map(|s| s.topics).unwrap_or_default();
            names.sort();
            names.dedup();
            let mut assigned = Assignment::new();
            for (topic, ps) in parse_assignment(&m.assignment).unwrap_or_default() {
                if let Some((id, count)) = topics.by_name(&topic) {
                    assigned.entry(id).or_default().extend(ps.into_iter().filter(|p| *p >= 0 && *p < count));
                }
            }
            let value = ConsumerMemberValue {
                instance_id: m.instance_id.clone(),
                rack_id: None,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: names,
                subscribed_topic_regex: None,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: None,
                classic: Some(ClassicMemberMeta {
                    session_timeout_ms: m.session_timeout_ms,
                    protocols: m.protocols.iter().map(|p| (p.name.clone(), p.metadata.clone())).collect(),
                }),
            };
            let current = CurrentAssignmentValue {
                member_epoch: generation,
                previous_member_epoch: generation - 1,
                state: MemberState::Stable.code(),
                assigned: assigned.clone(),
                pending_revocation: Assignment::new(),
            };
            for r in [
                ConsumerRecord::Member { group: gid.to_string(), member: m.id.clone(), value: Some(value) },
                ConsumerRecord::TargetMember { group: gid.to_string(), member: m.id.clone(), value: Some(assigned) },
                ConsumerRecord::CurrentAssignment { group: gid.to_string(), member: m.id.clone(), value: Some(current) },
            ] {
                fresh.apply(&r);
                records.push(Record::Consumer(r));
            }
        }
        let metadata = fresh.compute_subscription_metadata(&[], None, topics);
        records.push(Record::Consumer(ConsumerRecord::SubscriptionMetadata {
            group: gid.to_string(),
            topics: Some(metadata.into_values().collect()),
        }));
        records.push(Record::Consumer(ConsumerRecord::TargetEpoch { group: gid.to_string(), epoch: Some(generation) }));
        records.push(Record::Consumer(ConsumerRecord::GroupEpoch { group: gid.to_string(), epoch: Some(generation) }));
        tracing::info!(group = gid, generation, "classic group upgraded to a consumer group");
        for r in records {
            self.apply(cx.now, &r);
            cx.emit(r);
        }
        Ok(())
    }

    /// The online downgrade (§4.7; checklist 130): the last consumer-protocol member of a group
    /// whose other members are all classic is leaving. The group becomes a classic group of
    /// those members (generation: the bumped group epoch; assignments: their target
    /// assignments), and rebalances. `false` if the group does not qualify.
    pub(super) fn downgrade_consumer_group(&mut self, cx: &mut Cx, gid: &str, leaving: &str) -> bool {
        let max_size = self.config.max_size;
        let Some(cg) = self.groups.get(gid).and_then(|g| g.consumer.as_ref()) else { return false };
        // the member leaving must be the last of the consumer protocol
        if cg.members.get(leaving).is_none_or(|m| m.meta.classic.is_some()) {
            return false;
        }
        let rest: Vec<&ConsumerMember> = cg.members.values().filter(|m| m.id != leaving).collect();
        if rest.is_empty() || rest.iter().any(|m| m.meta.classic.is_none()) || rest.len() > max_size {
            return false;
        }
        // the classic generation is the group epoch: what its members hold as their generation
        let generation = cg.epoch;
        let names = |id: &Uuid| cg.subscription_metadata.values().find(|t| t.id == *id).map(|t| t.name.clone());
        let mut members = std::collections::BTreeMap::new();
        let mut records = Vec::new();
        for m in cg.members.values() {
            records.extend(ConsumerGroup::removal_records(gid, &m.id).map(Record::Consumer));
            cx.cancel(session_key(gid, &m.id));
            cx.cancel(classic_join_key(gid, &m.id));
            if m.state == MemberState::UnrevokedPartitions {
                cx.cancel(super::consumer::revoke_key(gid, &m.id, m.epoch));
            }
        }
        for m in &rest {
            let classic = m.meta.classic.as_ref().expect("checked: every one is classic");
            let version = classic.protocols.first().and_then(|(_, meta)| parse_subscription(meta)).map_or(0, |s| s.version);
            let target = cg.target.get(&m.id).cloned().unwrap_or_default();
            members.insert(
                m.id.clone(),
                crate::coordinator::group::Member {
                    id: m.id.clone(),
                    instance_id: m.meta.instance_id.clone(),
                    client_id: m.meta.client_id.clone(),
                    client_host: m.meta.client_host.clone(),
                    session_timeout_ms: classic.session_timeout_ms,
                    rebalance_timeout_ms: m.meta.rebalance_timeout_ms,
                    protocol_type: "consumer".to_string(),
                    protocols: classic
                        .protocols
                        .iter()
                        .map(|(n, meta)| crate::coordinator::group::Protocol { name: n.clone(), metadata: meta.clone() })
                        .collect(),
                    assignment: encode_assignment(version, &target, &names),
                    awaiting_join: None,
                    awaiting_sync: None,
                    is_new: false,
                },
            );
        }
        records.extend(ConsumerGroup::deletion_records(gid).map(Record::Consumer));
        let now = cx.now;
        let Some((mut rules, g)) = self.split(gid) else { return false };
        g.generation = generation;
        g.protocol_type = Some("consumer".to_string());
        g.members = members;
        g.static_members = g.members.values().filter_map(|m| Some((m.instance_id.clone()?, m.id.clone()))).collect();
        g.protocol_name = g.select_protocol();
        g.leader = g.members.keys().next().cloned();
        g.pending_members.clear();
        g.pending_sync.clear();
        g.previous_state = GroupState::Empty;
        g.state = GroupState::Stable;
        g.state_timestamp = Some(now);
        records.push(Record::Group { group: gid.to_string(), value: Some(g.snapshot(now, None)) });
        for r in records {
            cx.emit(r);
        }
        for m in g.members.values() {
            cx.set(super::heartbeat_key(gid, &m.id), m.session_timeout_ms as i64);
        }
        tracing::info!(group = gid, generation, "consumer group downgraded to a classic group");
        // the member that left makes the classic group rebalance at once
        rules.prepare_rebalance(cx, g);
        true
    }
}
