//! Members of the classic protocol in a consumer group (`reference/kafka-group-coordinator.md`
//! §4.7): a JoinGroup into a group of the consumer protocol makes the client a member like any
//! other — its subscription (and the partitions it owns) read from its ConsumerProtocol
//! metadata, its assignment computed by the group's assignor and reconciled the same way —
//! while it keeps speaking JoinGroup, SyncGroup, Heartbeat and LeaveGroup. It is a follower
//! that never leads: its JoinGroup is answered at once with its member epoch as the generation,
//! SyncGroup hands it the partitions it may own now, and Heartbeat answers
//! REBALANCE_IN_PROGRESS when it must rejoin (to revoke, to catch up with the group epoch, or to
//! take partitions that were freed).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::{Known, session_key};
use super::types::*;
use super::{Cx, Shard};
use crate::coordinator::consumer::{
    Assignment, ConsumerGroup, ConsumerMember, HeartbeatInput as ConsumerHeartbeat, MemberState, member_id_from,
};
use crate::coordinator::record::ClassicMemberMeta;
use crate::error::ErrorCode;

pub(super) fn classic_join_key(g: &str, m: &str) -> TimerKey {
    TimerKey::ConsumerClassicJoin { group: g.to_string(), member: m.to_string() }
}

/// A ConsumerProtocol subscription as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// (topic, partitions) the member owns (version 1 and up).
    pub owned: Vec<(String, Vec<i32>)>,
}

/// Reads a ConsumerProtocol subscription (versions 0-3) without trusting any length: `None` if
/// it does not parse.
pub(crate) fn parse_subscription(b: &[u8]) -> Option<Subscription> {
    let mut r = b;
    let need = |r: &[u8], n: usize| (r.len() >= n).then_some(());
    let string = |r: &mut &[u8]| -> Option<String> {
        need(r, 2)?;
        let n = r.get_i16();
        if n < 0 {
            return None;
        }
        need(r, n as usize)?;
        let s = String::from_utf8(r[..n as usize].to_vec()).ok()?;
        r.advance(n as usize);
        Some(s)
    };
    let count = |r: &mut &[u8], min_item: usize| -> Option<usize> {
        need(r, 4)?;
        let n = r.get_i32();
        if n < 0 {
            return Some(0);
        }
        (n as usize <= r.len() / min_item).then_some(n as usize)
    };
    need(r, 2)?;
    let version = r.get_i16();
    if version < 0 {
        return None;
    }
    let mut topics = Vec::new();
    for _ in 0..count(&mut r, 2)? {
        topics.push(string(&mut r)?);
    }
    // user data: nullable bytes
    need(r, 4)?;
    let n = r.get_i32();
    if n > 0 {
        need(r, n as usize)?;
        r.advance(n as usize);
    }
    let mut owned = Vec::new();
    if version >= 1 && !r.is_empty() {
        for _ in 0..count(&mut r, 6)? {
            let topic = string(&mut r)?;
            let mut partitions = Vec::new();
            for _ in 0..count(&mut r, 4)? {
                partitions.push(r.get_i32());
            }
            owned.push((topic, partitions));
        }
    }
    Some(Subscription { version, topics, owned })
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
    pub(super) fn classic_join_consumer_group(
        &mut self,
        cx: &mut Cx,
        mut j: JoinInput,
        topics: Option<&dyn super::super::consumer::TopicView>,
    ) -> JoinResult {
        if self
            .live_consumer_group(&j.group_id)
            .is_some_and(|c| !c.members.contains_key(&j.member_id) && c.members.len() >= self.config.consumer_max_size)
        {
            return JoinResult::error(ErrorCode::GROUP_MAX_SIZE_REACHED, &j.member_id);
        }
        if j.protocol_type != "consumer" || j.protocols.is_empty() {
            return JoinResult::error(ErrorCode::INCONSISTENT_GROUP_PROTOCOL, &j.member_id);
        }
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
        let existing = cg.members.get(&j.member_id);
        if existing.is_some_and(|m| m.meta.classic.is_none()) {
            // a member of the consumer protocol cannot JoinGroup under its id
            return JoinResult::error(ErrorCode::UNKNOWN_MEMBER_ID, &j.member_id);
        }
        // a member id the group does not know joins as a new member (as Kafka's does)
        let metadata = cg.subscription_metadata.clone();
        let known = Known(&metadata);
        let view: &dyn super::super::consumer::TopicView = topics.unwrap_or(&known);
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
    pub(super) fn classic_sync_consumer_group(&self, s: &SyncInput) -> SyncResult {
        let cg = self.live_consumer_group(&s.group_id).expect("checked by the caller");
        let m = match Self::classic_member(cg, &s.member_id, s.group_instance_id.as_deref()) {
            Ok(m) => m,
            Err(code) => return SyncResult::error(code),
        };
        if s.generation_id != m.epoch {
            return SyncResult::error(ErrorCode::ILLEGAL_GENERATION);
        }
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
                    self.fence_consumer_member(cx, &l.group_id, &id);
                    ErrorCode::NONE
                }
                Err(code) => code,
            };
            members.push(MemberError { member_id, group_instance_id, error });
        }
        LeaveResult { error: ErrorCode::NONE, members }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_parse_with_owned_partitions_and_lies_do_not() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(-1);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(3);
        let sub = parse_subscription(&b).unwrap();
        assert_eq!(sub, Subscription { version: 1, topics: vec!["t".into()], owned: vec![("t".into(), vec![0, 3])] });
        for cut in 0..b.len() {
            let _ = parse_subscription(&b[..cut]);
        }
        let mut lie = b.to_vec();
        lie[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(parse_subscription(&lie), None);
        // version 0 without owned partitions
        assert_eq!(parse_subscription(&[0, 0, 0, 0, 0, 0, 255, 255, 255, 255]).unwrap().topics, Vec::<String>::new());
    }
}
