//! Checklist items 116-135 of `reference/kafka-group-coordinator.md` §5 (KIP-848 consumer
//! groups), each as a pure test with literal time. 116, 117 and 120 are the request and epoch
//! checks in `consumer/mod.rs`; the rest drive the shard through [`Kit`].

use uuid::Uuid;

use super::consumer::{Assignment, ConsumerGroupState, HeartbeatInput, MemberState};
use super::record::{ConsumerRecord, Record};
use super::shard::{CommitInput, ShardConfig, TimerKey};
use super::testkit::{Kit, cbeat, cjoin, commit, config};
use crate::error::ErrorCode;

fn t() -> Uuid {
    Uuid::from_u128(1)
}

fn parts(a: &Option<Assignment>) -> Vec<i32> {
    a.as_ref().and_then(|a| a.get(&t())).map(|s| s.iter().copied().collect()).unwrap_or_default()
}

fn owned(ps: &[i32]) -> Option<Assignment> {
    Some(
        [(t(), ps.iter().copied().collect())]
            .into_iter()
            .filter(|(_, s): &(Uuid, std::collections::BTreeSet<i32>)| !s.is_empty())
            .collect(),
    )
}

fn consumer_types(records: &[Record]) -> Vec<u8> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Consumer(c) => Some(match c {
                ConsumerRecord::GroupEpoch { .. } => 3,
                ConsumerRecord::SubscriptionMetadata { .. } => 4,
                ConsumerRecord::Member { .. } => 5,
                ConsumerRecord::TargetEpoch { .. } => 6,
                ConsumerRecord::TargetMember { .. } => 7,
                ConsumerRecord::CurrentAssignment { .. } => 8,
            }),
            _ => None,
        })
        .collect()
}

/// Checklist 118: the first member of a new group gets epoch 1, the heartbeat interval and
/// its assignment (every partition of "t"); the records are member, subscription metadata,
/// group epoch, target member, target epoch, current assignment.
#[test]
fn item_118_first_member_creates_the_group() {
    let mut kit = Kit::new();
    let r = kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!((r.error, r.member_id.as_deref(), r.member_epoch, r.heartbeat_interval_ms), (ErrorCode::NONE, Some("a"), 1, 5_000));
    assert_eq!(parts(&r.assignment), vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(consumer_types(&kit.records), vec![5, 4, 3, 7, 6, 8]);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!((c.epoch, c.assignment_epoch, c.state()), (1, 1, ConsumerGroupState::Stable));
    // v0 without a member id: the coordinator makes one
    let r = kit.cgh(HeartbeatInput { version: 0, member_id: String::new(), ..cjoin("g2", "", &["t"]) });
    assert_eq!((r.error, r.member_id.as_deref()), (ErrorCode::NONE, Some("member-1")));
}

/// Checklist 119: epoch > 0 on an unknown group; an unknown member id with epoch 1.
#[test]
fn item_119_unknown_group_and_member() {
    let mut kit = Kit::new();
    assert_eq!(kit.cgh(cbeat("nope", "a", 100, None)).error, ErrorCode::GROUP_ID_NOT_FOUND);
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.cgh(cbeat("g", "zzz", 1, None)).error, ErrorCode::UNKNOWN_MEMBER_ID);
}

/// Checklist 121: group.consumer.max.size reached refuses a new member, not an existing one.
#[test]
fn item_121_max_size() {
    let mut kit = Kit::with(ShardConfig { consumer_max_size: 1, ..config() });
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.cgh(cjoin("g", "b", &["t"])).error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    assert_eq!(kit.cgh(cbeat("g", "a", 1, None)).error, ErrorCode::NONE);
}

/// Checklist 122: partitions moving from a to b: a revokes first, staying at its epoch; b gets
/// nothing of a's until a's heartbeat no longer lists it.
#[test]
fn item_122_reconciliation() {
    let mut kit = Kit::new();
    let a = kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(parts(&a.assignment), vec![0, 1, 2, 3, 4, 5]);
    let b = kit.cgh(cjoin("g", "b", &["t"]));
    // b is at epoch 2 but its partitions are a's still
    assert_eq!((b.member_epoch, parts(&b.assignment)), (2, vec![]));
    let target_b = kit.group("g").consumer.as_ref().unwrap().target["b"].get(&t()).cloned().unwrap();
    assert_eq!(target_b.len(), 3);
    assert_eq!(kit.group("g").consumer.as_ref().unwrap().members["b"].state, MemberState::UnreleasedPartitions);
    // a heartbeats still owning everything: told to keep only its target, at epoch 1
    let r = kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2, 3, 4, 5])));
    assert_eq!(r.member_epoch, 1);
    let kept = parts(&r.assignment);
    assert_eq!(kept.len(), 3);
    assert_eq!(kit.group("g").consumer.as_ref().unwrap().members["a"].state, MemberState::UnrevokedPartitions);
    assert!(kit.has_timer(&TimerKey::ConsumerRevoke { group: "g".into(), member: "a".into(), epoch: 1 }).is_some());
    // b asks again: still nothing
    assert_eq!(parts(&kit.cgh(cbeat("g", "b", 2, owned(&[]))).assignment), Vec::<i32>::new());
    // a lets them go: epoch 2, stable
    let r = kit.cgh(cbeat("g", "a", 1, owned(&kept)));
    assert_eq!(r.member_epoch, 2);
    // every member at the target epoch, but b still waits for its partitions: Reconciling
    assert_eq!(kit.group("g").consumer.as_ref().unwrap().state(), ConsumerGroupState::Reconciling);
    assert!(kit.has_timer(&TimerKey::ConsumerRevoke { group: "g".into(), member: "a".into(), epoch: 1 }).is_none());
    // now b gets them
    let r = kit.cgh(cbeat("g", "b", 2, owned(&[])));
    assert_eq!(parts(&r.assignment), target_b.iter().copied().collect::<Vec<_>>());
    assert_eq!(kit.group("g").consumer.as_ref().unwrap().state(), ConsumerGroupState::Stable);
}

/// Checklist 123: a member that does not revoke within its rebalance timeout is fenced and
/// the group epoch bumped.
#[test]
fn item_123_revocation_timeout() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    kit.cgh(cjoin("g", "b", &["t"]));
    kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2, 3, 4, 5])));
    let epoch = kit.group("g").consumer.as_ref().unwrap().epoch;
    kit.advance(29_999);
    assert!(kit.group("g").consumer.as_ref().unwrap().members.contains_key("a"));
    kit.advance(1);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert!(!c.members.contains_key("a"));
    assert_eq!(c.epoch, epoch + 1);
    assert_eq!(kit.cgh(cbeat("g", "a", 1, owned(&[]))).error, ErrorCode::UNKNOWN_MEMBER_ID);
}

/// Checklist 124: a silent member is removed after group.consumer.session.timeout.ms, with
/// tombstones for its records 8, 7 and 5, and the group epoch bumped.
#[test]
fn item_124_session_timeout() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    kit.cgh(cjoin("g", "b", &["t"]));
    kit.advance(40_000);
    kit.cgh(cbeat("g", "b", 2, None));
    let from = kit.records.len();
    kit.advance(5_000);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!(c.members.keys().collect::<Vec<_>>(), vec!["b"]);
    assert_eq!(c.epoch, 3);
    let written = &kit.records[from..];
    assert!(matches!(&written[0], Record::Consumer(ConsumerRecord::CurrentAssignment { member, value: None, .. }) if member == "a"));
    assert!(matches!(&written[1], Record::Consumer(ConsumerRecord::TargetMember { member, value: None, .. }) if member == "a"));
    assert!(matches!(&written[2], Record::Consumer(ConsumerRecord::Member { member, value: None, .. }) if member == "a"));
    // b's next heartbeat brings the new target: all of "t"
    let r = kit.cgh(cbeat("g", "b", 2, owned(&[3, 4, 5])));
    assert_eq!((r.member_epoch, parts(&r.assignment)), (3, vec![0, 1, 2, 3, 4, 5]));
}

/// Checklist 125: leaving with epoch −1 answers epoch −1 and bumps the group epoch.
#[test]
fn item_125_leave_bumps_the_epoch() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let r = kit.cgh(cbeat("g", "a", -1, None));
    assert_eq!((r.error, r.member_epoch), (ErrorCode::NONE, -1));
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!((c.epoch, c.state()), (2, ConsumerGroupState::Empty));
    assert!(kit.has_timer(&TimerKey::ConsumerSession { group: "g".into(), member: "a".into() }).is_none());
}

/// Checklist 126: a static member leaving with −2 keeps its partitions without an epoch bump,
/// and its return under a new member id gets them back.
#[test]
fn item_126_static_member_away_and_back() {
    let mut kit = Kit::new();
    let first = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cjoin("g", "a", &["t"]) });
    kit.cgh(cjoin("g", "b", &["t"]));
    kit.cgh(cbeat("g", "a", 1, owned(&parts(&first.assignment))));
    let mine = parts(&kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2]))).assignment);
    let a_now = kit.group("g").consumer.as_ref().unwrap().members["a"].clone();
    let epoch = kit.group("g").consumer.as_ref().unwrap().epoch;
    let r = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cbeat("g", "a", -2, None) });
    assert_eq!(r.member_epoch, -2);
    assert_eq!(kit.group("g").consumer.as_ref().unwrap().epoch, epoch, "no bump on a static leave");
    let back = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cjoin("g", "a2", &["t"]) });
    assert_eq!(back.error, ErrorCode::NONE);
    let expected = if mine.is_empty() { a_now.assigned.get(&t()).map(|s| s.iter().copied().collect()).unwrap_or_default() } else { mine };
    assert_eq!(parts(&back.assignment), expected);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!(c.epoch, epoch, "no bump on the return either");
    assert!(!c.members.contains_key("a"));
    assert_eq!(c.static_members.get("i").map(String::as_str), Some("a2"));
}

/// Checklist 127: a new member taking an active static member's instance id.
#[test]
fn item_127_unreleased_instance_id() {
    let mut kit = Kit::new();
    kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cjoin("g", "a", &["t"]) });
    let r = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cjoin("g", "b", &["t"]) });
    assert_eq!(r.error, ErrorCode::UNRELEASED_INSTANCE_ID);
    // and an old id heartbeating for an instance now someone else's is fenced
    let r = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cbeat("g", "zz", 1, None) });
    assert_eq!(r.error, ErrorCode::FENCED_INSTANCE_ID);
}

/// Checklist 128: a heartbeat of nulls gets no assignment; a full one does.
#[test]
fn item_128_assignment_only_when_changed_or_full() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.cgh(cbeat("g", "a", 1, None)).assignment, None);
    let full =
        HeartbeatInput { rebalance_timeout_ms: 30_000, subscribed_topic_names: Some(vec!["t".into()]), ..cbeat("g", "a", 1, owned(&[0])) };
    assert_eq!(parts(&kit.cgh(full).assignment), vec![0, 1, 2, 3, 4, 5]);
}

/// Checklist 129: a classic group with members of the consumer embedded protocol is upgraded
/// when a consumer-protocol member joins (its members keep their partitions and are told to
/// rejoin); one of another protocol type is not; an empty classic group simply becomes a
/// consumer group, keeping its offsets, and back.
#[test]
fn item_129_classic_groups_upgrade() {
    let mut kit = Kit::new();
    kit.stable_members(vec![super::shard::JoinInput { protocol_type: "connect".into(), ..super::testkit::join("other", "") }]);
    let r = kit.cgh(cjoin("other", "a", &["t"]));
    assert_eq!(r.error, ErrorCode::GROUP_ID_NOT_FOUND);
    assert!(r.message.unwrap().contains("does not use the consumer embedded protocol"));
    // a classic consumer group of one member holding all of "t"
    let joined = kit.join_all(vec![classic_join("old", "")]);
    let (old, generation) = (joined[0].0.clone(), joined[0].1.generation_id);
    let all = assignment_bytes(&[0, 1, 2, 3, 4, 5]);
    let s =
        kit.sync(super::shard::SyncInput { assignments: vec![(old.clone(), all)], ..super::testkit::sync("old", &old, generation, &[]) });
    assert_eq!(kit.synced(s).unwrap().error, ErrorCode::NONE);
    let r = kit.cgh(cjoin("old", "a", &["t"]));
    assert_eq!((r.error, r.member_epoch, parts(&r.assignment)), (ErrorCode::NONE, generation + 1, vec![]));
    let c = kit.group("old").consumer.clone().unwrap();
    assert_eq!((c.members[&old].epoch, c.members[&old].assigned.get(&t()).map(|s| s.len())), (generation, Some(6)));
    assert!(c.members[&old].meta.classic.is_some());
    // the classic member is told to rejoin; its rejoin keeps half and lets the rest go to a
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("old", &old, generation)), ErrorCode::REBALANCE_IN_PROGRESS);
    let id = kit.join(classic_join("old", &old));
    let r = kit.joined(id).unwrap();
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, generation + 1));
    let s = kit.sync(super::testkit::sync("old", &old, r.generation_id, &[]));
    assert_eq!(assigned_in(&kit.synced(s).unwrap().assignment).len(), 3);
    assert_eq!(parts(&kit.cgh(cbeat("old", "a", generation + 1, owned(&[]))).assignment).len(), 3);
    // the records rebuild the same group
    assert_eq!(kit.replayed().group("old").unwrap().consumer, kit.group("old").consumer);
    // a simple group (offsets only) becomes a consumer group and keeps its offsets
    assert_eq!(kit.commit(commit("simple", "", -1, &[("t", 0, 42)])), vec![ErrorCode::NONE]);
    let r = kit.cgh(cjoin("simple", "a", &["t"]));
    assert_eq!(r.error, ErrorCode::NONE);
    assert_eq!(kit.group("simple").offsets.len(), 1);
    // and back: once empty, a classic JoinGroup turns it into a classic group
    kit.cgh(cbeat("simple", "a", -1, None));
    let (member, _) = kit.join_new(super::testkit::join("simple", ""));
    assert!(!member.is_empty());
    assert!(kit.group("simple").consumer.is_none());
    assert_eq!(kit.group("simple").offsets.len(), 1);
}

/// Checklist 130: the last consumer-protocol member leaves a group whose other members are
/// classic: it becomes a classic group of them and rebalances.
#[test]
fn item_130_downgrade_when_the_last_consumer_protocol_member_leaves() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", "") });
    let b = kit.joined(id).unwrap().member_id;
    // a classic member leaving does not downgrade (only the last consumer-protocol one does)
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", "") });
    let c = kit.joined(id).unwrap().member_id;
    kit.leave("g", &[(&c, None)]);
    assert!(kit.group("g").consumer.is_some());
    // b catches up with the group epoch, as a live client does when its heartbeat tells it to
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", &b) });
    let b_generation = kit.joined(id).unwrap().generation_id;
    let epoch = kit.group("g").consumer.as_ref().unwrap().epoch;
    assert_eq!(b_generation, epoch);
    assert_eq!(kit.cgh(cbeat("g", "a", -1, None)).member_epoch, -1);
    let g = kit.group("g");
    assert!(g.consumer.is_none(), "downgraded");
    // the generation is the group epoch
    assert_eq!(
        (g.state, g.generation, g.protocol_type.as_deref()),
        (super::group::GroupState::PreparingRebalance, epoch, Some("consumer"))
    );
    assert_eq!(g.members.keys().cloned().collect::<Vec<_>>(), vec![b.clone()]);
    // b, at the generation it was given, learns of the rebalance and rejoins as in any classic group
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &b, b_generation)), ErrorCode::REBALANCE_IN_PROGRESS);
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", &b) });
    let r = kit.joined(id).unwrap();
    assert_eq!((r.error, r.generation_id, r.leader.as_str()), (ErrorCode::NONE, epoch + 1, b.as_str()));
    // replayed, the group is classic
    assert!(kit.replayed().group("g").unwrap().consumer.is_none());
}

/// A ConsumerProtocol assignment (version 0) of partitions of "t".
fn assignment_bytes(ps: &[i32]) -> bytes::Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    b.put_i16(1);
    b.put_slice(b"t");
    b.put_i32(ps.len() as i32);
    for p in ps {
        b.put_i32(*p);
    }
    b.put_i32(-1);
    b.freeze()
}

/// A classic JoinGroup (v5) of a consumer subscribed to "t", as the Java client sends it.
fn classic_join(group: &str, member: &str) -> super::shard::JoinInput {
    super::shard::JoinInput {
        protocols: vec![super::group::Protocol { name: "range".into(), metadata: super::testkit::subscription(&["t"]) }],
        ..super::testkit::join(group, member)
    }
}

/// Partitions of "t" in a ConsumerProtocol assignment (version 0).
fn assigned_in(bytes: &[u8]) -> Vec<i32> {
    let mut r = bytes;
    use bytes::Buf;
    assert_eq!(r.get_i16(), 0);
    let mut out = Vec::new();
    for _ in 0..r.get_i32() {
        let n = r.get_i16() as usize;
        assert_eq!(&r[..n], b"t");
        r.advance(n);
        for _ in 0..r.get_i32() {
            out.push(r.get_i32());
        }
    }
    out
}

/// Checklist 131: a classic member joins a consumer group: MEMBER_ID_REQUIRED, then a
/// generation that is its member epoch, protocol type "consumer"; SyncGroup hands it the
/// coordinator's assignment; its Heartbeat says REBALANCE_IN_PROGRESS when freed partitions wait
/// for it, and its rejoin gets them (checklist 132).
#[test]
fn item_131_132_classic_member_in_a_consumer_group() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let id = kit.join(classic_join("g", ""));
    let r = kit.joined(id).unwrap();
    assert_eq!(r.error, ErrorCode::MEMBER_ID_REQUIRED);
    let member = r.member_id.clone();
    let id = kit.join(classic_join("g", &member));
    let r = kit.joined(id).unwrap();
    assert_eq!(
        (r.error, r.generation_id, r.protocol_type.as_deref(), r.protocol_name.as_deref()),
        (ErrorCode::NONE, 2, Some("consumer"), Some("range"))
    );
    assert!(r.leader.is_empty() && r.members.is_empty(), "a classic member of a consumer group is a follower");
    // nothing yet: a still owns everything
    let s = kit.sync(super::testkit::sync("g", &member, 2, &[]));
    let s = kit.synced(s).unwrap();
    assert_eq!((s.error, assigned_in(&s.assignment)), (ErrorCode::NONE, vec![]));
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &member, 2)), ErrorCode::NONE, "still waiting on a");
    // a revokes its half
    let kept = parts(&kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2, 3, 4, 5]))).assignment);
    kit.cgh(cbeat("g", "a", 1, owned(&kept)));
    // the classic member is told to rejoin, and its rejoin gets the freed partitions
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &member, 2)), ErrorCode::REBALANCE_IN_PROGRESS);
    let id = kit.join(classic_join("g", &member));
    let r = kit.joined(id).unwrap();
    let s = kit.sync(super::testkit::sync("g", &member, r.generation_id, &[]));
    let got = assigned_in(&kit.synced(s).unwrap().assignment);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|p| !kept.contains(p)));
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &member, r.generation_id)), ErrorCode::NONE);
    // a wrong generation
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &member, 1)), ErrorCode::ILLEGAL_GENERATION);
    // its commits: generation = member epoch (any OffsetCommit version)
    assert_eq!(kit.commit(commit("g", &member, r.generation_id, &[("t", 0, 1)])), vec![ErrorCode::NONE]);
    assert_eq!(kit.commit(commit("g", &member, 1, &[("t", 0, 1)])), vec![ErrorCode::ILLEGAL_GENERATION]);
    // the group epoch moves on (a third member): rejoin
    kit.cgh(cjoin("g", "c", &["t"]));
    assert_eq!(kit.heartbeat(super::testkit::heartbeat("g", &member, r.generation_id)), ErrorCode::REBALANCE_IN_PROGRESS);
    // it does not rejoin within its rebalance timeout (30 s in the test join): removed
    kit.advance(30_000);
    assert!(!kit.group("g").consumer.as_ref().unwrap().members.contains_key(&member));
    // the records replay to the same group, the classic member's metadata with them
    let replayed = kit.replayed();
    assert_eq!(replayed.group("g").unwrap().consumer, kit.group("g").consumer);
}

/// A static member of the classic protocol restarting (JoinGroup with an empty member id and
/// its instance id) into a consumer group replaces its old self at once — its JoinGroup cannot
/// say it left — keeping its partitions; a member id that is neither is fenced.
#[test]
fn a_classic_static_member_restarts_into_a_consumer_group() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let static_join = |member: &str| super::shard::JoinInput { group_instance_id: Some("i".into()), ..classic_join("g", member) };
    let id = kit.join(static_join(""));
    let first = kit.joined(id).unwrap();
    assert_eq!(first.error, ErrorCode::NONE);
    let old = first.member_id.clone();
    kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2, 3, 4, 5])));
    kit.cgh(cbeat("g", "a", 1, owned(&[0, 1, 2])));
    let id = kit.join(static_join(&old));
    let held = kit.group("g").consumer.as_ref().unwrap().members[&old].assigned.clone();
    assert_eq!(kit.joined(id).unwrap().error, ErrorCode::NONE);
    // the restart
    let id = kit.join(static_join(""));
    let again = kit.joined(id).unwrap();
    assert_eq!(again.error, ErrorCode::NONE);
    assert_ne!(again.member_id, old);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert!(!c.members.contains_key(&old));
    assert_eq!(c.members[&again.member_id].assigned, held);
    assert_eq!(c.static_members.get("i"), Some(&again.member_id));
    // the old id is fenced
    let id = kit.join(static_join(&old));
    assert_eq!(kit.joined(id).unwrap().error, ErrorCode::FENCED_INSTANCE_ID);
}

/// What Kafka's coordinator checks that corral's first version did not (a review against it):
/// the size limit before the member lookup; no upgrade of a classic group when the joining
/// member would be refused; a classic member syncing behind the group epoch is told to rejoin;
/// several classic members leaving at once each leave the subscription.
#[test]
fn review_fixes_hold() {
    // the size limit comes first: an unknown member heartbeating in a full group
    let mut kit = Kit::with(ShardConfig { consumer_max_size: 1, ..config() });
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.cgh(cbeat("g", "zz", 3, None)).error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    // a classic group of one member is not upgraded when the group may hold only one
    let joined = kit.join_all(vec![classic_join("full", "")]);
    let s = kit.sync(super::testkit::sync("full", &joined[0].0, joined[0].1.generation_id, &[]));
    kit.synced(s).unwrap();
    assert_eq!(kit.cgh(cjoin("full", "b", &["t"])).error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    assert!(kit.group("full").consumer.is_none(), "the classic group stays as it was");
    // a classic member whose SyncGroup comes after the group epoch moved: rejoin
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["u"]));
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", "") });
    let r = kit.joined(id).unwrap();
    kit.cgh(cjoin("g", "c", &["t"]));
    let s = kit.sync(super::testkit::sync("g", &r.member_id, r.generation_id, &[]));
    assert_eq!(kit.synced(s).unwrap().error, ErrorCode::REBALANCE_IN_PROGRESS);
    // two classic members leave at once: neither's topic stays in the subscription metadata
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", "") });
    let other = kit.joined(id).unwrap().member_id;
    kit.cgh(cbeat("g", "c", -1, None));
    kit.leave("g", &[(&r.member_id, None), (&other, None)]);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!(c.members.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(c.subscription_metadata.keys().collect::<Vec<_>>(), vec!["u"]);
}

/// A classic member of a consumer group leaves with LeaveGroup: removed, the group epoch bumped.
#[test]
fn a_classic_member_leaves_a_consumer_group() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let id = kit.join(super::shard::JoinInput { version: 3, ..classic_join("g", "") });
    let r = kit.joined(id).unwrap();
    assert_eq!(r.error, ErrorCode::NONE, "v3: no MEMBER_ID_REQUIRED step");
    let epoch = kit.group("g").consumer.as_ref().unwrap().epoch;
    let left = kit.leave("g", &[(&r.member_id, None), ("nobody", None)]);
    assert_eq!(left.members.iter().map(|m| m.error).collect::<Vec<_>>(), vec![ErrorCode::NONE, ErrorCode::UNKNOWN_MEMBER_ID]);
    let c = kit.group("g").consumer.as_ref().unwrap();
    assert_eq!((c.members.len(), c.epoch), (1, epoch + 1));
}

/// Checklist 133: consumer-protocol members commit with OffsetCommit v9 and their epoch.
#[test]
fn item_133_commits_check_the_member_epoch() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    let c = |version: i16, epoch: i32| CommitInput { version, ..commit("g", "a", epoch, &[("t", 0, 5)]) };
    assert_eq!(kit.commit(c(8, 1)), vec![ErrorCode::UNSUPPORTED_VERSION]);
    assert_eq!(kit.commit(c(9, 2)), vec![ErrorCode::STALE_MEMBER_EPOCH]);
    assert_eq!(kit.commit(c(9, 1)), vec![ErrorCode::NONE]);
    // a transactional commit at a stale epoch: ILLEGAL_GENERATION, the code a producer knows
    let txn = |epoch: i32| CommitInput { producer_id: Some(7), version: 3, ..commit("g", "a", epoch, &[("t", 0, 5)]) };
    assert_eq!(kit.commit(txn(0)), vec![ErrorCode::ILLEGAL_GENERATION]);
    assert_eq!(kit.commit(txn(1)), vec![ErrorCode::NONE]);
    // an admin commit (no member, −1) only while the group is empty
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 6)])), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    kit.cgh(cbeat("g", "a", -1, None));
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 6)])), vec![ErrorCode::NONE]);
}

/// Checklist 134: OffsetFetch v9 with a stale epoch, an unknown member, or as an admin.
#[test]
fn item_134_fetches_check_the_member_epoch() {
    let mut kit = Kit::new();
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.shard.check_offset_fetch("g", Some("a"), 0), Err(ErrorCode::STALE_MEMBER_EPOCH));
    assert_eq!(kit.shard.check_offset_fetch("g", Some("x"), 1), Err(ErrorCode::UNKNOWN_MEMBER_ID));
    assert_eq!(kit.shard.check_offset_fetch("g", None, -1), Ok(()));
    assert_eq!(kit.shard.check_offset_fetch("g", Some("a"), 1), Ok(()));
}

/// Checklist 135: ConsumerGroupDescribe of an unknown or a classic group.
#[test]
fn item_135_describe_errors() {
    let mut kit = Kit::new();
    kit.stable("classic", 1);
    kit.cgh(cjoin("g", "a", &["t"]));
    assert_eq!(kit.shard.describe_consumer_group("nope").unwrap_err().0, ErrorCode::GROUP_ID_NOT_FOUND);
    assert_eq!(kit.shard.describe_consumer_group("classic").unwrap_err().0, ErrorCode::GROUP_ID_NOT_FOUND);
    let d = kit.shard.describe_consumer_group("g").unwrap();
    assert_eq!((d.state, d.epoch, d.assignment_epoch, d.assignor, d.members.len()), ("Stable", 1, 1, "uniform", 1));
    // and the classic api shows it as not a classic group
    assert!(kit.shard.describe("g").unwrap().not_classic);
}

/// A restart keeps every consumer group, member epoch and assignment: the records replayed
/// (through a real keyed log, compacted or not) rebuild the same groups.
#[test]
fn consumer_groups_survive_a_replay() {
    let mut kit = Kit::new();
    let a = kit.cgh(HeartbeatInput { instance_id: Some("i".into()), ..cjoin("g", "a", &["t", "u"]) });
    kit.cgh(cjoin("g", "b", &["t"]));
    kit.cgh(cbeat("g", "a", a.member_epoch, owned(&parts(&a.assignment))));
    kit.cgh(cjoin("h", "c", &["u"]));
    kit.cgh(cbeat("h", "c", -1, None));
    for compact in [false, true] {
        let (replayed, _) = kit.replayed_through_log(compact);
        for g in ["g", "h"] {
            let live = kit.group(g).consumer.clone().unwrap();
            let back = replayed.group(g).unwrap().consumer.clone().unwrap();
            assert_eq!(back, live, "group {g} (compacted: {compact})");
        }
    }
}

mod props {
    //! Random runs of consumer-protocol members: after every step, (1) no partition is held
    //! (assigned or pending revocation) by two members, (2) the target assignment gives every
    //! subscribed partition to exactly one member that subscribes to its topic, and (3) the
    //! records written so far, replayed, rebuild the same groups.

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        /// Client `c` joins (or rejoins) subscribed to "t", or to "t" and "u".
        Join { c: usize, both: bool, stat: bool },
        /// Client `c` heartbeats, reporting what it owns (as told by its last answer).
        Beat { c: usize },
        /// Client `c` leaves (−1), or steps away as a static member (−2).
        Leave { c: usize, away: bool },
        /// Time passes (sessions of 45 s, revocation deadlines of 30 s).
        Wait { ms: i64 },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0..5usize, any::<bool>(), any::<bool>()).prop_map(|(c, both, stat)| Step::Join { c, both, stat }),
            6 => (0..5usize).prop_map(|c| Step::Beat { c }),
            1 => (0..5usize, any::<bool>()).prop_map(|(c, away)| Step::Leave { c, away }),
            1 => (1_000..50_000i64).prop_map(|ms| Step::Wait { ms }),
        ]
    }

    /// A client as it sees itself: its member id, epoch and owned partitions.
    #[derive(Debug, Clone, Default)]
    struct Client {
        id: Option<String>,
        instance: Option<String>,
        epoch: i32,
        owned: Assignment,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn members_never_share_a_partition_and_replay_rebuilds_the_groups(steps in prop::collection::vec(step(), 1..60)) {
            let mut kit = Kit::new();
            let mut clients: Vec<Client> = vec![Client::default(); 5];
            let mut fresh = 0;
            for s in steps {
                match s {
                    Step::Join { c, both, stat } => {
                        fresh += 1;
                        let topics: &[&str] = if both { &["t", "u"] } else { &["t"] };
                        let id = format!("m{fresh}");
                        let instance = if stat { Some(format!("i{c}")) } else { None };
                        let r = kit.cgh(HeartbeatInput { instance_id: instance.clone(), ..cjoin("g", &id, topics) });
                        if r.error == ErrorCode::NONE {
                            clients[c] = Client { id: Some(id), instance, epoch: r.member_epoch, owned: r.assignment.unwrap_or_default() };
                        }
                    }
                    Step::Beat { c } => {
                        let Some(id) = clients[c].id.clone() else { continue };
                        let h = HeartbeatInput { instance_id: clients[c].instance.clone(), ..cbeat("g", &id, clients[c].epoch, Some(clients[c].owned.clone())) };
                        let r = kit.cgh(h);
                        match r.error {
                            ErrorCode::NONE => {
                                clients[c].epoch = r.member_epoch;
                                if let Some(a) = r.assignment {
                                    clients[c].owned = a;
                                }
                            }
                            // fenced or gone: it drops everything and rejoins later
                            _ => clients[c] = Client::default(),
                        }
                    }
                    Step::Leave { c, away } => {
                        let Some(id) = clients[c].id.clone() else { continue };
                        let epoch = if away && clients[c].instance.is_some() { -2 } else { -1 };
                        kit.cgh(HeartbeatInput { instance_id: clients[c].instance.clone(), ..cbeat("g", &id, epoch, None) });
                        clients[c] = Client::default();
                    }
                    Step::Wait { ms } => kit.advance(ms),
                }
                let Some(cg) = kit.shard.group("g").and_then(|g| g.consumer.clone()) else { continue };
                // (1) held by one member at most
                let mut held: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
                for m in cg.members.values() {
                    for (t, ps) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                        for p in ps {
                            if let Some(other) = held.insert((*t, *p), m.id.clone()) {
                                prop_assert!(false, "partition {t}/{p} held by {other} and {}", m.id);
                            }
                        }
                    }
                }
                // (2) the target: each subscribed partition once, to a subscriber
                if cg.assignment_epoch == cg.epoch && !cg.members.is_empty() {
                    let mut targeted: BTreeSet<(Uuid, i32)> = BTreeSet::new();
                    for (id, a) in &cg.target {
                        let m = &cg.members[id];
                        for (t, ps) in a {
                            let name = cg.subscription_metadata.values().find(|x| x.id == *t).map(|x| x.name.clone()).unwrap();
                            prop_assert!(m.meta.subscribed_topic_names.contains(&name), "{id} got {name} without subscribing");
                            for p in ps {
                                prop_assert!(targeted.insert((*t, *p)), "{t}/{p} targeted twice");
                            }
                        }
                    }
                    let expected: usize = cg.subscription_metadata.values().map(|t| t.partitions as usize).sum();
                    prop_assert_eq!(targeted.len(), expected);
                }
                // (3) replay
                let replayed = kit.replayed();
                prop_assert_eq!(replayed.group("g").and_then(|g| g.consumer.clone()), Some(cg));
            }
        }
    }
}
