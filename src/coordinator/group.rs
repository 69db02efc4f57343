//! A classic consumer group: its members, its state, its offsets, and the rules that depend on
//! nothing but the group itself (protocol vote, member validation, size limits).
//!
//! Fields fall in two kinds, as in Kafka's coordinator. Hard state survives a restart because a
//! record carries it: the offsets, and `persisted`, the last GroupMetadata snapshot applied.
//! Everything else (who is awaiting a JoinGroup or SyncGroup answer, pending member ids, the
//! live member list during a rebalance) is soft state, rebuilt from `persisted` on load.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;

use super::RequestId;
use super::record::{GroupValue, OffsetValue};
use crate::error::ErrorCode;

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name DescribeGroups and ListGroups report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One protocol a member offers: its name and opaque metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A parked JoinGroup or SyncGroup: who to answer, and at which version they asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub request: RequestId,
    pub version: i16,
}

/// A group member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    /// Its JoinGroup, parked until the join phase completes.
    pub awaiting_join: Option<Waiter>,
    /// Its SyncGroup, parked until the leader's assignment arrives.
    pub awaiting_sync: Option<Waiter>,
    /// Added in the current join phase and not yet answered: expires on the new-member timeout.
    pub is_new: bool,
}

impl Member {
    /// The metadata this member offers for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|p| p.name == protocol).map(|p| &p.metadata)
    }

    /// Kafka's `matches`: the same protocols, in the same order, with the same metadata.
    pub fn same_protocols(&self, protocols: &[Protocol]) -> bool {
        self.protocols == protocols
    }
}

/// Where the initial rebalance delay of a group stands (Kafka's `InitialDelayedJoin`): each
/// step waits `delay_ms`; a member joining during a step earns another, until the group's
/// rebalance timeout is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialDelay {
    /// How much longer the delay may still be extended, in ms.
    pub remaining_ms: i64,
    /// The step now scheduled, in ms.
    pub delay_ms: i64,
}

/// A committed offset as the group holds it.
pub type OffsetEntry = OffsetValue;

/// A classic group.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub previous_state: GroupState,
    /// When the group entered its current state (ms), for offset expiry of Empty groups.
    pub state_timestamp: Option<i64>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id → member id of static members.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet rejoined.
    pub pending_members: HashSet<String>,
    /// Members that got their JoinGroup answer but have not sent SyncGroup yet.
    pub pending_sync: HashSet<String>,
    /// A member joined during the initial (delayed) rebalance, so the delay extends.
    pub new_member_added: bool,
    /// The initial (delayed) rebalance of a group that was Empty, while it runs.
    pub initial_delay: Option<InitialDelay>,
    /// When the current rebalance began, for the rebalance-duration metric.
    pub rebalance_started: Option<i64>,
    pub offsets: crate::FastMap<(String, i32), OffsetEntry>,
    /// Transactional offsets waiting for their producer's transaction to end, by producer id.
    pub pending_txn: BTreeMap<i64, BTreeMap<(String, i32), OffsetEntry>>,
    /// The last GroupMetadata value applied: what a restart would load.
    pub persisted: Option<GroupValue>,
    /// Set when the group is a consumer group of the next-generation protocol (KIP-848): its
    /// members are there, and the classic part above stays Empty.
    pub consumer: Option<super::consumer::ConsumerGroup>,
}

impl Group {
    /// A new Empty group.
    pub fn new(id: &str, now_ms: i64) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp: Some(now_ms),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            initial_delay: None,
            rebalance_started: None,
            offsets: Default::default(),
            pending_txn: BTreeMap::new(),
            persisted: None,
            consumer: None,
        }
    }

    /// Whether the group has no members of either protocol (the classic part Empty).
    pub fn is_empty_group(&self) -> bool {
        self.is(GroupState::Empty) && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    /// Its type as ListGroups names it.
    pub fn type_name(&self) -> &'static str {
        if self.consumer.is_some() { "consumer" } else { "classic" }
    }

    /// Its state as ListGroups and DescribeGroups name it.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(c) => c.state().name(),
            None => self.state.name(),
        }
    }

    /// Whether a transaction has a pending offset for `(topic, partition)` here.
    pub fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        self.pending_txn.values().any(|m| m.keys().any(|(t, p)| t == topic && *p == partition))
    }

    pub fn is(&self, s: GroupState) -> bool {
        self.state == s
    }

    /// Moves to `to`, remembering where it came from. Kafka's legal transitions only.
    pub fn transition(&mut self, to: GroupState, now_ms: i64) {
        use GroupState::*;
        let legal = match to {
            Empty => matches!(self.state, PreparingRebalance),
            PreparingRebalance => matches!(self.state, Stable | CompletingRebalance | Empty),
            CompletingRebalance => matches!(self.state, PreparingRebalance),
            Stable => matches!(self.state, CompletingRebalance),
            Dead => true,
        };
        assert!(legal, "group {}: illegal transition {:?} -> {:?}", self.id, self.state, to);
        self.previous_state = self.state;
        self.state = to;
        self.state_timestamp = Some(now_ms);
    }

    /// Kafka's `canRebalance`.
    pub fn can_rebalance(&self) -> bool {
        matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty)
    }

    pub fn num_awaiting_join(&self) -> usize {
        self.members.values().filter(|m| m.awaiting_join.is_some()).count()
    }

    /// Every member has rejoined and no pending member is outstanding.
    pub fn all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    /// The largest rebalance timeout of the members.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members.values().map(|m| m.rebalance_timeout_ms as i64).max().unwrap_or(0)
    }

    /// Kafka's `supportsProtocols`: an Empty group takes any non-empty type and protocol list;
    /// otherwise the type must match and some offered protocol must be supported by every member.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.is(GroupState::Empty) || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| self.members.values().all(|m| m.metadata(&p.name).is_some()))
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each member votes for
    /// its most preferred; the most votes wins (ties go to the alphabetically first name).
    pub fn select_protocol(&self) -> Option<String> {
        let mut candidates: Option<BTreeSet<&str>> = None;
        for m in self.members.values() {
            let mine: BTreeSet<&str> = m.protocols.iter().map(|p| p.name.as_str()).collect();
            candidates = Some(match candidates {
                None => mine,
                Some(c) => c.intersection(&mine).copied().collect(),
            });
        }
        let candidates = candidates?;
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(p) = m.protocols.iter().find(|p| candidates.contains(p.name.as_str())) {
                *votes.entry(p.name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(name, _)| name.to_string())
    }

    /// Kafka's `validateMember`: an instance id must map to this member id, else FENCED or
    /// UNKNOWN; then the member id must exist.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), ErrorCode> {
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(ErrorCode::UNKNOWN_MEMBER_ID),
                Some(m) if m != member_id => return Err(ErrorCode::FENCED_INSTANCE_ID),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        Ok(())
    }

    /// Kafka's `acceptJoiningMember` for group.max.size.
    pub fn accepts_joining_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members.get(member_id).is_some_and(|m| m.awaiting_join.is_some()) || self.num_awaiting_join() < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.members.contains_key(member_id) || self.members.len() < max_size,
        }
    }

    /// Topics the group subscribes to, for offset expiry and OffsetDelete: `None` means "all"
    /// (a consumer group whose subscriptions cannot be parsed). A group that is not a consumer
    /// group, or has no members, subscribes to nothing.
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if let Some(c) = &self.consumer {
            return Some(c.subscribed_names().into_iter().collect());
        }
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = HashSet::new();
        for m in self.members.values() {
            let meta = m.metadata(protocol)?;
            all.extend(parse_subscription_topics(meta)?);
        }
        Some(all)
    }

    /// The snapshot a GroupMetadata record of the group's current state holds.
    pub fn snapshot(&self, now_ms: i64, assignments: Option<&HashMap<String, Bytes>>) -> GroupValue {
        let protocol = self.protocol_name.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp.unwrap_or(now_ms),
            members: self
                .members
                .values()
                .map(|m| super::record::MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol.as_deref().and_then(|p| m.metadata(p)).cloned().unwrap_or_default(),
                    assignment: assignments.and_then(|a| a.get(&m.id).cloned()).unwrap_or_else(|| m.assignment.clone()),
                })
                .collect(),
        }
    }
}

/// A cursor over ConsumerProtocol bytes (subscriptions and assignments) that trusts no length.
struct ProtocolReader<'a>(&'a [u8]);

impl ProtocolReader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let head = self.0.get(..n)?;
        self.0 = &self.0[n..];
        Some(head)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    /// An array's length: `None` if negative (the arrays read here are not nullable) or more
    /// items than the rest could hold at `min_item` bytes each.
    fn count(&mut self, min_item: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n <= self.0.len() / min_item).then_some(n)
    }
    /// A message's version, which must not be negative.
    fn version(&mut self) -> Option<i16> {
        self.i16().filter(|v| *v >= 0)
    }
    fn topics(&mut self) -> Option<Vec<String>> {
        (0..self.count(2)?).map(|_| self.string()).collect()
    }
    fn topic_partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        (0..self.count(6)?)
            .map(|_| {
                let topic = self.string()?;
                let partitions = (0..self.count(4)?).map(|_| self.i32()).collect::<Option<Vec<i32>>>()?;
                Some((topic, partitions))
            })
            .collect()
    }
}

/// The topics of a ConsumerProtocol subscription (int16 version, then an array of topic
/// strings), parsed without trusting any length. `None` if it does not parse.
pub fn parse_subscription_topics(meta: &[u8]) -> Option<Vec<String>> {
    let mut r = ProtocolReader(meta);
    r.version()?;
    r.topics()
}

/// A ConsumerProtocol subscription as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// (topic, partitions) the member owns (version 1 and up).
    pub owned: Vec<(String, Vec<i32>)>,
}

/// Reads a ConsumerProtocol subscription (versions 0-3) without trusting any length: `None` if
/// it does not parse.
pub fn parse_subscription(meta: &[u8]) -> Option<Subscription> {
    let mut r = ProtocolReader(meta);
    let version = r.version()?;
    let topics = r.topics()?;
    // user data: nullable bytes
    let n = r.i32()?;
    if n > 0 {
        r.take(n as usize)?;
    }
    let owned = if version >= 1 && !r.0.is_empty() { r.topic_partitions()? } else { Vec::new() };
    Some(Subscription { version, topics, owned })
}

/// Reads a ConsumerProtocol assignment (versions 0-3): its `(topic, partitions)` lists; `None`
/// if it does not parse.
pub fn parse_assignment(b: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    let mut r = ProtocolReader(b);
    r.i16()?;
    r.topic_partitions()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10000,
            rebalance_timeout_ms: 10000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| Protocol { name: p.to_string(), metadata: Bytes::new() }).collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
        }
    }

    /// Checklist 42: members preferring [range,rr],[rr,range],[rr,range] select roundrobin.
    #[test]
    fn protocol_vote() {
        let mut g = Group::new("g", 0);
        g.members.insert("a".into(), member("a", &["range", "roundrobin"]));
        g.members.insert("b".into(), member("b", &["roundrobin", "range"]));
        g.members.insert("c".into(), member("c", &["roundrobin", "range"]));
        assert_eq!(g.select_protocol().as_deref(), Some("roundrobin"));
        // a protocol not everyone supports cannot win
        g.members.insert("d".into(), member("d", &["range"]));
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn subscriptions_parse_and_lies_do_not() {
        let mut m = vec![0u8, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        m.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // null user data
        assert_eq!(parse_subscription_topics(&m), Some(vec!["a".to_string(), "bc".to_string()]));
        assert_eq!(parse_subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(parse_subscription_topics(&[1, 2]), None);
    }

    #[test]
    #[should_panic(expected = "illegal transition")]
    fn illegal_transitions_panic_loudly() {
        let mut g = Group::new("g", 0);
        g.transition(GroupState::Stable, 1);
    }

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
