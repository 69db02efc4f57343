//! Kafka's classic group coordinator checklist (`reference/kafka-group-coordinator.md` §5),
//! item by item, against a pure shard driven by the [`Kit`] with literal time; then replay
//! tests: a fresh shard rebuilt from the records written must hold the same groups and offsets.
//!
//! Each test is named `item_NN_<what>` and quotes its item. Times are relative to the Kit's
//! start (`T0`). The Kit's default config has no initial rebalance delay, so a lone first member
//! is answered at once; items about the delay use Kafka's default of 3000 ms.
//!
//! Not tested here:
//! * API layer (covered by tests/groups_protocol.rs): 2, 3, 4 (FindCoordinator), 5 (routing:
//!   NOT_COORDINATOR), 6 (loading: COORDINATOR_LOAD_IN_PROGRESS, Heartbeat NONE), 7 (coordinator
//!   not started), 10 (INVALID_GROUP_ID for ""), 41 (v<7 null ProtocolName sent as ""), 51 (v5
//!   SyncGroup without ProtocolType/Name), 94 (unknown topic or partition), 99 (OffsetFetch v1
//!   puts the group error in every partition), 115 (ListGroups state and type filters); and the
//!   wire halves of 40 (null ProtocolType/Name on errors at v7+) and 114 ("Dead" below v6,
//!   GROUP_ID_NOT_FOUND at v6), whose shard halves are tested here.
//! * Log append failures, a runtime matter a pure shard never sees: 8, 9, 83, and the failure
//!   half of 106 are tested in `coordinator/mod.rs` (a coordinator over a data dir that fails
//!   on demand).
//! * Transactional offsets, which corral does not implement (no TxnOffsetCommit): 98, 111.
//! * 110's "group Dead": corral unloads shards only at shutdown; the parked-request half is
//!   tested.
//! * 116-135: KIP-848, not implemented.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

use super::group::{Group, GroupState, Protocol};
use super::record::{GroupValue, RawRecord, Record};
use super::shard::*;
use super::testkit::*;
use crate::error::ErrorCode;

/// The Kit's clock at start.
const T0: i64 = 1_000_000;
const DAY: i64 = 24 * 3_600_000;

/// Kafka's default initial rebalance delay.
fn delayed() -> ShardConfig {
    ShardConfig { initial_rebalance_delay_ms: 3_000, ..config() }
}

/// `join` with other timeouts.
fn join_timed(group: &str, member: &str, session_ms: i32, rebalance_ms: i32) -> JoinInput {
    JoinInput { session_timeout_ms: session_ms, rebalance_timeout_ms: rebalance_ms, ..join(group, member) }
}

/// `static_join` with other timeouts.
fn static_timed(group: &str, instance: &str, session_ms: i32, rebalance_ms: i32) -> JoinInput {
    JoinInput { session_timeout_ms: session_ms, rebalance_timeout_ms: rebalance_ms, ..static_join(group, instance) }
}

/// A known member's rejoin, unchanged: the same instance id, timeouts and protocols.
fn rejoin(kit: &Kit, group: &str, member: &str) -> JoinInput {
    let m = &kit.group(group).members[member];
    JoinInput {
        group_instance_id: m.instance_id.clone(),
        session_timeout_ms: m.session_timeout_ms,
        rebalance_timeout_ms: m.rebalance_timeout_ms,
        protocols: m.protocols.clone(),
        ..join(group, member)
    }
}

fn hb_key(group: &str, member: &str) -> TimerKey {
    TimerKey::Heartbeat { group: group.into(), member: member.into() }
}

fn member_ids(g: &Group) -> Vec<String> {
    g.members.keys().cloned().collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn answered(kit: &mut Kit, req: u64) -> JoinResult {
    kit.joined(req).unwrap_or_else(|| panic!("join {req} not answered"))
}

fn group_records(records: &[Record]) -> Vec<(String, Option<GroupValue>)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Group { group, value } => Some((group.clone(), value.clone())),
            _ => None,
        })
        .collect()
}

// ============================================================================ A. routing

/// 1. G: 50 partitions, group "foo". W: partitionFor. T: `abs_kafka(java_hash("foo")) % 50` with UTF-16 code-unit hashing, wrapping i32, abs(i32::MIN)=0.
#[test]
fn item_01_group_placement_is_kafkas() {
    assert_eq!(super::shard_for("foo", 50), 24);
    // Kafka 4.0 logged "partition=34 [Group console-consumer-21343]"
    assert_eq!(super::shard_for("console-consumer-21343", 50), 34);
    // String.hashCode == i32::MIN: Kafka's abs gives 0
    assert_eq!(super::shard_for("polygenelubricants", 50), 0);
    // a negative hash (-2002532269) and a character outside ASCII
    assert_eq!(super::shard_for("group-ümlaut", 50), 19);
    // one code point, two UTF-16 units: 31 * 0xD83D + 0xDE00 = 1772899
    assert_eq!(super::shard_for("😀", 50), 49);
}

// ============================================================================ B. JoinGroup validation

/// 11. G: GroupId "". W: OffsetCommit (gen −1). T: accepted (only null is INVALID_GROUP_ID).
#[test]
fn item_11_empty_group_id_may_commit() {
    let mut kit = Kit::new();
    assert_eq!(kit.commit(commit("", "", -1, &[("t", 0, 5)])), vec![ErrorCode::NONE]);
    assert_eq!(kit.shard.fetch_offsets("", Some(&[("t".into(), 0)]), false), vec![fetched("t", 0, 5, -1, "")]);
}

/// 12. G: SessionTimeoutMs 5999 or 1800001. W: JoinGroup. T: INVALID_SESSION_TIMEOUT, MemberId echoed.
#[test]
fn item_12_session_timeout_out_of_bounds() {
    let mut kit = Kit::new();
    for ms in [5_999, 1_800_001] {
        let r = kit.join(join_timed("g", "m", ms, 30_000));
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::INVALID_SESSION_TIMEOUT, "m"));
    }
    assert!(kit.shard.group("g").is_none(), "checked before any group lookup");
    assert!(kit.records.is_empty());
    for ms in [6_000, 1_800_000] {
        let r = kit.join(join_timed("g", "", ms, 30_000));
        assert_eq!(answered(&mut kit, r).error, ErrorCode::MEMBER_ID_REQUIRED);
    }
}

/// 13. G: no group. W: JoinGroup MemberId "member-id" (dynamic or static). T: UNKNOWN_MEMBER_ID, no group created.
#[test]
fn item_13_known_member_id_creates_no_group() {
    let mut kit = Kit::new();
    for instance in [None, Some("i".to_string())] {
        let r = kit.join(JoinInput { group_instance_id: instance, ..join("g", "member-id") });
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::UNKNOWN_MEMBER_ID, "member-id"));
    }
    assert!(kit.shard.group("g").is_none());
    assert!(kit.records.is_empty());
}

/// 14. G: Empty/new group. W: JoinGroup ProtocolType "". T: INCONSISTENT_GROUP_PROTOCOL.
#[test]
fn item_14_empty_protocol_type_is_inconsistent() {
    let mut kit = Kit::new();
    let r = kit.join(JoinInput { protocol_type: String::new(), ..join("g", "") });
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::INCONSISTENT_GROUP_PROTOCOL, ""));
    assert!(kit.group("g").members.is_empty() && kit.group("g").pending_members.is_empty());
}

/// 15. G: Empty group. W: JoinGroup with Protocols []. T: INCONSISTENT_GROUP_PROTOCOL.
#[test]
fn item_15_no_protocols_is_inconsistent() {
    let mut kit = Kit::new();
    let r = kit.join(JoinInput { protocols: vec![], ..join("g", "") });
    assert_eq!(answered(&mut kit, r).error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    assert!(kit.group("g").members.is_empty() && kit.group("g").pending_members.is_empty());
}

/// 16. G: group of type "consumer". W: join with type "connect". T: INCONSISTENT_GROUP_PROTOCOL.
#[test]
fn item_16_other_protocol_type_is_inconsistent() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    let r = kit.join(JoinInput { protocol_type: "connect".into(), ..join("g", "") });
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::INCONSISTENT_GROUP_PROTOCOL, ""));
    // an existing member too, with its id echoed
    let r = kit.join(JoinInput { protocol_type: "connect".into(), ..join("g", &ids[0]) });
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::INCONSISTENT_GROUP_PROTOCOL, ids[0].as_str()));
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 17. G: members support only {range}. W: new member offers {roundrobin}. T: INCONSISTENT_GROUP_PROTOCOL.
#[test]
fn item_17_unsupported_protocol_is_inconsistent() {
    let mut kit = Kit::new();
    kit.stable("g", 2);
    let r = kit.join(JoinInput { protocols: protocols(&["roundrobin"]), ..join("g", "") });
    assert_eq!(answered(&mut kit, r).error, ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    // offering it alongside one every member supports is fine
    let r = kit.join(JoinInput { protocols: protocols(&["roundrobin", "range"]), ..join("g", "") });
    assert_eq!(answered(&mut kit, r).error, ErrorCode::MEMBER_ID_REQUIRED);
}

/// 18. G: group Dead. W: JoinGroup (unknown or known member). T: COORDINATOR_NOT_AVAILABLE.
#[test]
fn item_18_dead_group_join() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.kill("g");
    let r = kit.join(join("g", ""));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::COORDINATOR_NOT_AVAILABLE, ""));
    let r = kit.join(join("g", &ids[0]));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::COORDINATOR_NOT_AVAILABLE, ids[0].as_str()));
}

/// 19. G: Stable group. W: JoinGroup with MemberId not in group. T: UNKNOWN_MEMBER_ID.
#[test]
fn item_19_unknown_member_of_existing_group() {
    let mut kit = Kit::new();
    kit.stable("g", 2);
    let r = kit.join(join("g", "not-a-member"));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::UNKNOWN_MEMBER_ID, "not-a-member"));
    assert!(kit.group("g").is(GroupState::Stable));
    assert_eq!(kit.group("g").generation, 2);
}

/// 20. G: Empty group with history. W: JoinGroup with old known MemberId. T: UNKNOWN_MEMBER_ID.
#[test]
fn item_20_old_member_of_empty_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.leave("g", &[(&ids[0], None)]);
    assert!(kit.group("g").is(GroupState::Empty));
    let r = kit.join(join("g", &ids[0]));
    assert_eq!(answered(&mut kit, r).error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert!(kit.group("g").is(GroupState::Empty));
}

// ============================================================================ C. member ids, pending, max size

/// 21. G: v≥4, dynamic, MemberId "". W: JoinGroup. T: MEMBER_ID_REQUIRED, MemberId = `<clientId>-<uuid>`, member not yet counted in the group.
#[test]
fn item_21_member_id_required() {
    let mut kit = Kit::new();
    let r = kit.join(join("g", ""));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::MEMBER_ID_REQUIRED, "client-1"));
    let g = kit.group("g");
    assert!(g.members.is_empty());
    assert!(g.pending_members.contains("client-1"));
    assert!(g.is(GroupState::Empty));
    // a pending member lives for its session timeout
    assert_eq!(kit.has_timer(&hb_key("g", "client-1")), Some(T0 + 10_000));
    // production ids: the client id, a dash, a 36-character UUID
    let mut shard = Shard::new(config(), IdSource::Random);
    let out = shard.join(0, 1, join("g", ""));
    let Some((_, Reply::Join(r))) = out.replies.first() else { panic!("no answer") };
    let uuid = r.member_id.strip_prefix("client-").expect("client id prefix");
    assert_eq!(uuid.len(), 36);
    assert!(uuid::Uuid::parse_str(uuid).is_ok());
}

/// 22. G: v≤3 dynamic MemberId "". W: JoinGroup. T: member added and parked immediately (no MEMBER_ID_REQUIRED).
#[test]
fn item_22_old_versions_join_in_one_step() {
    let mut kit = Kit::with(delayed());
    let r = kit.join(JoinInput { version: 3, ..join("g", "") });
    assert!(kit.joined(r).is_none(), "parked");
    let g = kit.group("g");
    assert_eq!(g.members.len(), 1);
    assert!(g.pending_members.is_empty());
    assert_eq!(g.members.values().next().and_then(|m| m.awaiting_join).map(|w| w.request), Some(r));
    assert!(g.is(GroupState::PreparingRebalance));
}

/// 23. G: static MemberId "" (any v≥5). W: JoinGroup. T: no MEMBER_ID_REQUIRED; MemberId = `<instanceId>-<uuid>` and a different id on each rejoin.
#[test]
fn item_23_static_members_get_ids_at_once() {
    let mut kit = Kit::new();
    let r = kit.join(static_join("g", "i1"));
    let first = answered(&mut kit, r);
    assert_eq!(first.error, ErrorCode::NONE);
    assert!(first.member_id.starts_with("i1-"));
    let r = kit.join(static_join("g", "i1"));
    let second = answered(&mut kit, r);
    assert_eq!(second.error, ErrorCode::NONE);
    assert!(second.member_id.starts_with("i1-"));
    assert_ne!(first.member_id, second.member_id);
    assert_eq!(kit.group("g").static_members["i1"], second.member_id);
    // production ids: the instance id, a dash, a UUID
    let mut shard = Shard::new(config(), IdSource::Random);
    let out = shard.join(0, 1, static_join("g", "i1"));
    assert!(out.replies.is_empty(), "parked until the join timer fires");
    let id = &shard.group("g").expect("group").static_members["i1"];
    assert!(uuid::Uuid::parse_str(id.strip_prefix("i1-").expect("instance prefix")).is_ok());
}

/// 24. G: rebalance waiting on a pending member. W: pending member rejoins with its id. T: join completes for all.
#[test]
fn item_24_join_waits_for_pending_member() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    let r = kit.join(join("g", ""));
    let pending = answered(&mut kit, r).member_id;
    assert!(kit.group("g").is(GroupState::Stable), "a pending member triggers nothing");
    let leader = kit.join(join("g", &ids[0]));
    assert!(kit.joined(leader).is_none(), "waits for the pending member");
    let p = kit.join(join("g", &pending));
    let l = answered(&mut kit, leader);
    let p = answered(&mut kit, p);
    assert_eq!((l.error, l.generation_id, p.error, p.generation_id), (ErrorCode::NONE, 2, ErrorCode::NONE, 2));
    assert_eq!(sorted(l.members.iter().map(|m| m.member_id.clone()).collect()), sorted(vec![ids[0].clone(), pending]));
}

/// 25. G: pending member never rejoins. W: its session timeout elapses. T: removed; join completes without it.
#[test]
fn item_25_pending_member_expires() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    let r = kit.join(join("g", ""));
    let pending = answered(&mut kit, r).member_id;
    let leader = kit.join(join("g", &ids[0]));
    kit.advance(9_999);
    assert!(kit.joined(leader).is_none());
    kit.advance(1);
    assert!(kit.group("g").pending_members.is_empty());
    let l = answered(&mut kit, leader);
    assert_eq!((l.error, l.generation_id), (ErrorCode::NONE, 2));
    assert_eq!(l.members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
    assert!(!kit.group("g").members.contains_key(&pending));
}

/// 25. (during the initial delay) G: pending member never rejoins. W: its session timeout elapses. T: removed; join completes without it.
///
/// Kafka's removePendingMemberAndUpdateClassicGroup completes the join once everyone left has joined, even in the initial rebalance.
#[test]
fn item_25_pending_member_expiry_completes_the_initial_join() {
    let mut kit = Kit::with(delayed());
    let (a, ra) = kit.join_new(join("g", "")); // t=0: the delay runs to 3000
    let r = kit.join(join_timed("g", "", 7_000, 30_000)); // pending until 7000
    assert_eq!(answered(&mut kit, r).error, ErrorCode::MEMBER_ID_REQUIRED);
    kit.advance(2_000);
    let (_, rb) = kit.join_new(join("g", "")); // extends the delay to 6000
    kit.advance(3_000);
    let (_, rc) = kit.join_new(join("g", "")); // extends it to 9000
    kit.advance(1_999);
    assert!(kit.joined(ra).is_none());
    kit.advance(1); // t=7000: the pending member expires; a, b and c have all joined
    assert!(kit.group("g").pending_members.is_empty());
    for r in [ra, rb, rc] {
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.generation_id, r.leader.as_str()), (ErrorCode::NONE, 1, a.as_str()));
    }
}

/// 26. G: group.max.size=N reached (Stable). W: new member joins. T: GROUP_MAX_SIZE_REACHED, MemberId "".
#[test]
fn item_26_full_group_rejects_new_members() {
    let mut kit = Kit::new();
    kit.shard.config.max_size = 2;
    kit.stable("g", 2);
    let r = kit.join(join("g", ""));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::GROUP_MAX_SIZE_REACHED, ""));
    let r = kit.join(static_join("g", "i"));
    assert_eq!(answered(&mut kit, r).error, ErrorCode::GROUP_MAX_SIZE_REACHED);
    assert_eq!(kit.group("g").members.len(), 2);
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 27. G: max size N, PreparingRebalance with N awaiting. W: existing awaiting member rejoins. T: accepted; a member not yet awaiting is rejected.
#[test]
fn item_27_full_rebalance_keeps_the_first_rejoiners() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 3);
    kit.shard.config.max_size = 2;
    kit.join(join("g", &ids[0]));
    let first = kit.join(join("g", &ids[1]));
    assert_eq!(kit.group("g").num_awaiting_join(), 2);
    // an awaiting member rejoins again: accepted (its earlier join is superseded)
    let again = kit.join(join("g", &ids[1]));
    assert!(kit.joined(first).is_some());
    assert!(kit.joined(again).is_none(), "parked");
    // a member not yet awaiting: rejected and removed
    let late = kit.join(join("g", &ids[2]));
    let late = answered(&mut kit, late);
    assert_eq!((late.error, late.member_id.as_str()), (ErrorCode::GROUP_MAX_SIZE_REACHED, ""));
    assert_eq!(member_ids(kit.group("g")), sorted(vec![ids[0].clone(), ids[1].clone()]));
    kit.advance(30_000);
    let r = answered(&mut kit, again);
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
}

/// 28. G: loaded group larger than group.max.size. W: load completes. T: group forced into PreparingRebalance.
#[test]
fn item_28_oversize_group_rebalances_on_load() {
    let mut kit = Kit::new();
    kit.stable("g", 3);
    kit.stable("small", 2);
    let later = kit.now + 1_000;
    let loaded = Kit::loaded(ShardConfig { max_size: 2, ..config() }, later, &kit.raw_records());
    let g = loaded.group("g");
    assert!(g.is(GroupState::PreparingRebalance));
    assert_eq!((g.members.len(), g.generation), (3, 2));
    assert_eq!(loaded.has_timer(&TimerKey::Join { group: "g".into() }), Some(later + 30_000));
    assert!(loaded.group("small").is(GroupState::Stable));
}

// ============================================================================ D. join phase timing

/// 29. G: new group, one member joins at t=0 (rebalance timeout large). W: clock → 2999 ms. T: no response; at ≥3000 ms: response NONE, generation 1.
#[test]
fn item_29_initial_join_waits_for_the_delay() {
    let mut kit = Kit::with(delayed());
    let (id, r) = kit.join_new(join_timed("g", "", 10_000, 300_000));
    assert_eq!(kit.has_timer(&TimerKey::Join { group: "g".into() }), Some(T0 + 3_000));
    kit.advance(2_999);
    assert!(kit.joined(r).is_none());
    kit.advance(1);
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.generation_id, r.leader.as_str()), (ErrorCode::NONE, 1, id.as_str()));
}

/// 29. (a member leaves) G: new group, members join at t=0 and t=1000. W: one leaves at t=2000. T: the initial join still waits for its delay (extended by the second member's join to 6000).
///
/// An initial rebalance never completes early (§2.7; Kafka's LeaveGroup calls maybeCompleteJoinPhase).
#[test]
fn item_29_initial_join_waits_even_when_a_member_leaves() {
    let mut kit = Kit::with(delayed());
    let (a, ra) = kit.join_new(join("g", ""));
    kit.advance(1_000);
    let (b, rb) = kit.join_new(join("g", ""));
    kit.advance(1_000);
    let left = kit.leave("g", &[(&b, None)]);
    assert_eq!(left.members, vec![left_as(&b, None, ErrorCode::NONE)]);
    assert_eq!(answered(&mut kit, rb).error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert!(kit.joined(ra).is_none(), "not completed early");
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    kit.advance(3_999);
    assert!(kit.joined(ra).is_none());
    kit.advance(1);
    let r = answered(&mut kit, ra);
    assert_eq!((r.error, r.generation_id, r.members.len()), (ErrorCode::NONE, 1, 1));
    assert_eq!(r.leader, a);
}

/// 30. G: first member t=0 with rebalanceTimeout 9000; second joins at 2999. W: clock advances. T: neither answered at 4502; both answered by 6002.
#[test]
fn item_30_a_new_member_extends_the_initial_delay() {
    let mut kit = Kit::with(delayed());
    let (_, r1) = kit.join_new(join_timed("g", "", 10_000, 9_000));
    kit.advance(2_999);
    let (_, r2) = kit.join_new(join_timed("g", "", 10_000, 9_000));
    kit.advance(4_502 - 2_999);
    assert!(kit.joined(r1).is_none() && kit.joined(r2).is_none());
    kit.advance(5_999 - 4_502);
    assert!(kit.joined(r1).is_none() && kit.joined(r2).is_none());
    kit.advance(1); // t=6000
    for r in [r1, r2] {
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 1));
    }
}

/// 31. G: rebalanceTimeout 6000; members keep joining every <3 s. W: clock → 6000. T: join completes exactly at the rebalance timeout.
#[test]
fn item_31_initial_delay_is_capped_by_the_rebalance_timeout() {
    let mut kit = Kit::with(delayed());
    let (_, r1) = kit.join_new(join_timed("g", "", 10_000, 6_000));
    kit.advance(2_999);
    let (_, r2) = kit.join_new(join_timed("g", "", 10_000, 6_000));
    kit.advance(3_000); // t=5999
    let (_, r3) = kit.join_new(join_timed("g", "", 10_000, 6_000));
    assert!(kit.joined(r1).is_none() && kit.joined(r2).is_none() && kit.joined(r3).is_none());
    kit.advance(1); // t=6000: no further extension although r3 just joined
    for r in [r1, r2, r3] {
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 1));
    }
    assert_eq!(kit.group("g").members.len(), 3);
}

/// 32. G: Stable group of 2 (not initial). W: both rejoin. T: join completes immediately on the last join, generation+1.
#[test]
fn item_32_rebalance_completes_when_all_rejoined() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let l = kit.join(join("g", &ids[0]));
    assert!(kit.joined(l).is_none());
    let f = kit.join(join("g", &ids[1]));
    for r in [l, f] {
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
    }
    assert!(kit.group("g").is(GroupState::CompletingRebalance));
    assert_eq!(kit.has_timer(&TimerKey::Join { group: "g".into() }), None);
}

/// 33. G: rebalance in progress; a dynamic member does not rejoin. W: rebalance timeout (max member rebalanceTimeoutMs) elapses. T: it is removed; others get the new generation.
#[test]
fn item_33_dynamic_member_that_does_not_rejoin_is_removed() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let l = kit.join(join("g", &ids[0]));
    // the follower stays alive (heartbeats) but never rejoins
    kit.advance_heartbeating(25_000, 5_000, "g", &[&ids[1]]);
    kit.advance(4_999);
    assert!(kit.joined(l).is_none());
    assert!(kit.group("g").members.contains_key(&ids[1]));
    kit.advance(1);
    let r = answered(&mut kit, l);
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
    assert_eq!(r.members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
    assert_eq!(member_ids(kit.group("g")), vec![ids[0].clone()]);
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[1], 2)), ErrorCode::UNKNOWN_MEMBER_ID);
}

/// 34. G: static follower does not rejoin. W: rebalance timeout. T: it stays a member (listed to the leader with old metadata), removed only at session timeout.
#[test]
fn item_34_static_follower_that_does_not_rejoin_stays() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![
        static_timed("g", "i-l", 60_000, 30_000),
        JoinInput {
            protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"old") }],
            ..static_timed("g", "i-f", 60_000, 30_000)
        },
    ]);
    let (l, f) = (&ids[0], &ids[1]);
    let rn = kit.join(static_timed("g", "i-n", 60_000, 30_000));
    let n = kit.group("g").static_members["i-n"].clone();
    let rl = kit.join(rejoin(&kit, "g", l));
    kit.advance(29_999);
    assert!(kit.joined(rl).is_none());
    kit.advance(1);
    let lead = answered(&mut kit, rl);
    assert_eq!((lead.error, lead.generation_id, lead.leader.as_str()), (ErrorCode::NONE, 3, l.as_str()));
    let listed: BTreeMap<String, (Option<String>, Bytes)> =
        lead.members.iter().map(|m| (m.member_id.clone(), (m.group_instance_id.clone(), m.metadata.clone()))).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[f], (Some("i-f".to_string()), Bytes::from_static(b"old")));
    assert!(answered(&mut kit, rn).members.is_empty());
    assert!(kit.group("g").is(GroupState::CompletingRebalance));
    assert_eq!(kit.group("g").members.len(), 3);
    // the others sync; the silent follower goes at its session timeout (60 s after its last sign of life)
    let assign = [(l.as_str(), "x"), (n.as_str(), "y"), (f.as_str(), "z")];
    let mut s = sync("g", l, 3, &assign);
    s.group_instance_id = Some("i-l".into());
    kit.sync(s);
    kit.sync(sync("g", &n, 3, &[]));
    kit.advance(29_999);
    assert!(kit.group("g").members.contains_key(f.as_str()));
    assert!(kit.group("g").is(GroupState::Stable));
    kit.advance(1);
    assert!(!kit.group("g").members.contains_key(f.as_str()));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

/// 35. G: leader does not rejoin, a follower does. W: join completes. T: the follower becomes leader.
#[test]
fn item_35_a_rejoined_member_replaces_a_silent_leader() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_timed("g", "i-l", 60_000, 30_000), static_timed("g", "i-f", 60_000, 30_000)]);
    let (l, f) = (&ids[0], &ids[1]);
    let rn = kit.join(static_timed("g", "i-n", 60_000, 30_000));
    let n = kit.group("g").static_members["i-n"].clone();
    let rf = kit.join(rejoin(&kit, "g", f));
    kit.advance(30_000);
    let rf = answered(&mut kit, rf);
    let rn = answered(&mut kit, rn);
    let leader = kit.group("g").leader.clone().expect("a leader");
    assert_ne!(&leader, l);
    assert!(leader == *f || leader == n);
    let (lead, follow) = if leader == *f { (rf, rn) } else { (rn, rf) };
    assert_eq!(lead.leader, leader);
    assert_eq!(follow.leader, leader);
    assert_eq!(lead.members.len(), 3, "the silent static leader is still listed");
    assert!(follow.members.is_empty());
}

/// 36. G: only non-rejoined static members remain. W: rebalance timeout. T: group stays PreparingRebalance, timer re-armed.
#[test]
fn item_36_join_waits_for_static_members_that_did_not_rejoin() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_timed("g", "i-l", 60_000, 30_000), static_timed("g", "i-f", 60_000, 30_000)]);
    kit.leave("g", &[(&ids[1], Some("i-f"))]);
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    kit.advance(30_000);
    let g = kit.group("g");
    assert!(g.is(GroupState::PreparingRebalance));
    assert_eq!((member_ids(g), g.generation), (vec![ids[0].clone()], 2));
    assert_eq!(kit.has_timer(&TimerKey::Join { group: "g".into() }), Some(T0 + 60_000));
    // the leader's session ends it: the group empties
    kit.advance(30_000);
    let g = kit.group("g");
    assert!(g.is(GroupState::Empty));
    assert_eq!((g.members.len(), g.generation), (0, 3));
}

/// 37. G: new member parked in join. W: 300000 ms pass without join completion. T: its JoinGroup answered UNKNOWN_MEMBER_ID and it is removed.
#[test]
fn item_37_new_member_join_times_out() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![join_timed("g", "", 500_000, 600_000)]);
    let (n, rn) = kit.join_new(join("g", ""));
    assert_eq!(kit.has_timer(&hb_key("g", &n)), Some(T0 + NEW_MEMBER_JOIN_TIMEOUT_MS));
    kit.advance(299_999);
    assert!(kit.joined(rn).is_none());
    kit.advance(1);
    let r = answered(&mut kit, rn);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::UNKNOWN_MEMBER_ID, ""));
    assert_eq!(member_ids(kit.group("g")), vec![ids[0].clone()]);
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

/// 38. G: all members leave during PreparingRebalance. W: join completes. T: generation+1, Empty, GroupMetadata record with no members & null protocol.
#[test]
fn item_38_everyone_leaves_during_the_join_phase() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let rl = kit.join(join("g", &ids[0]));
    let before = kit.records.len();
    let left = kit.leave("g", &[(&ids[0], None), (&ids[1], None)]);
    assert_eq!(left.error, ErrorCode::NONE);
    assert!(left.members.iter().all(|m| m.error == ErrorCode::NONE));
    assert_eq!(answered(&mut kit, rl).error, ErrorCode::UNKNOWN_MEMBER_ID);
    let g = kit.group("g");
    assert!(g.is(GroupState::Empty));
    assert_eq!((g.generation, g.protocol_name.clone(), g.leader.clone()), (3, None, None));
    let written = group_records(kit.records_since(before));
    assert_eq!(written.len(), 1);
    let v = written[0].1.clone().expect("a value");
    assert_eq!((v.generation, v.protocol.clone(), v.leader.clone(), v.protocol_type.as_str()), (3, None, None, "consumer"));
    assert!(v.members.is_empty());
    assert_eq!(v.current_state_timestamp, kit.now);
}

// ============================================================================ E. join responses

/// 39. G: join completes. W: responses. T: only the leader's `Members` is non-empty and contains every member with the metadata of the selected protocol; all share GenerationId, ProtocolName, Leader.
#[test]
fn item_39_only_the_leader_gets_the_members() {
    let mut kit = Kit::new();
    let joins = ["a", "b", "c"]
        .iter()
        .map(|m| JoinInput {
            protocols: vec![
                Protocol { name: "range".into(), metadata: Bytes::from(format!("range-{m}")) },
                Protocol { name: "other".into(), metadata: Bytes::from(format!("other-{m}")) },
            ],
            ..join("g", "")
        })
        .collect();
    let answers = kit.join_all(joins);
    let leader = answers[0].0.clone();
    let metas = ["range-a", "range-b", "range-c"];
    for (k, (id, r)) in answers.iter().enumerate() {
        assert_eq!((r.generation_id, r.protocol_name.as_deref(), r.leader.as_str()), (2, Some("range"), leader.as_str()));
        assert_eq!(&r.member_id, id);
        if k == 0 {
            let listed: BTreeMap<String, Bytes> = r.members.iter().map(|m| (m.member_id.clone(), m.metadata.clone())).collect();
            let want: BTreeMap<String, Bytes> =
                answers.iter().zip(metas).map(|((id, _), m)| (id.clone(), Bytes::from_static(m.as_bytes()))).collect();
            assert_eq!(listed, want);
        } else {
            assert!(r.members.is_empty());
        }
    }
}

/// 40. G: v≥7. W: successful join. T: ProtocolType = group's type; on any error ProtocolType and ProtocolName null.
///
/// The shard's half: the answer carries them, or not; encoding is the API's.
#[test]
fn item_40_protocol_type_only_on_success() {
    let mut kit = Kit::new();
    let (_, r) = kit.join_new(JoinInput { version: 7, ..join("g", "") });
    let r = answered(&mut kit, r);
    assert_eq!((r.protocol_type.as_deref(), r.protocol_name.as_deref()), (Some("consumer"), Some("range")));
    let r = kit.join(JoinInput { version: 7, ..join("g", "nobody") });
    let r = answered(&mut kit, r);
    assert_eq!(r.error, ErrorCode::UNKNOWN_MEMBER_ID);
    assert_eq!((r.protocol_type, r.protocol_name, r.generation_id), (None, None, -1));
}

/// 42. G: members prefer [range,rr],[rr,range],[rr,range]. W: select. T: "roundrobin"; with a 1:1 tie either.
#[test]
fn item_42_protocol_vote() {
    let mut kit = Kit::new();
    let prefs = [["range", "roundrobin"], ["roundrobin", "range"], ["roundrobin", "range"]];
    let answers = kit.join_all(prefs.iter().map(|p| JoinInput { protocols: protocols(p), ..join("g", "") }).collect());
    assert!(answers.iter().all(|(_, r)| r.protocol_name.as_deref() == Some("roundrobin")));
    let answers = kit.join_all(prefs[..2].iter().map(|p| JoinInput { protocols: protocols(p), ..join("tie", "") }).collect());
    let chosen = answers[0].1.protocol_name.clone().expect("a protocol");
    assert!(chosen == "range" || chosen == "roundrobin");
    assert!(answers.iter().all(|(_, r)| r.protocol_name.as_ref() == Some(&chosen)));
}

/// 43. G: first member joins a new group. W: join completes. T: it is the leader; later joiners are followers.
#[test]
fn item_43_first_member_leads() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 3]);
    let first = &answers[0].0;
    assert!(answers.iter().all(|(_, r)| &r.leader == first));
    assert_eq!(answers[0].1.members.len(), 3);
    assert!(answers[1..].iter().all(|(_, r)| r.members.is_empty()));
    assert_eq!(kit.group("g").leader.as_ref(), Some(first));
}

/// 44. G: Stable; follower rejoins with identical protocols. W: JoinGroup. T: immediate answer, same generation, empty member list, no state change.
#[test]
fn item_44_unchanged_follower_rejoin_does_not_rebalance() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let r = kit.join(join("g", &ids[1]));
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.generation_id, r.leader.as_str(), r.member_id.as_str()), (ErrorCode::NONE, 2, ids[0].as_str(), ids[1].as_str()));
    assert!(r.members.is_empty());
    assert!(kit.group("g").is(GroupState::Stable));
    assert_eq!(kit.has_timer(&TimerKey::Join { group: "g".into() }), None);
}

/// 45. G: Stable; leader rejoins with identical protocols. W: JoinGroup. T: PreparingRebalance.
#[test]
fn item_45_leader_rejoin_rebalances() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let r = kit.join(join("g", &ids[0]));
    assert!(kit.joined(r).is_none());
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert_eq!(kit.has_timer(&TimerKey::Join { group: "g".into() }), Some(T0 + 30_000));
}

/// 46. G: Stable or CompletingRebalance; member rejoins with changed metadata. W: JoinGroup. T: rebalance.
#[test]
fn item_46_changed_metadata_rebalances() {
    let changed = |g: &str, id: &str| JoinInput {
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"new") }],
        ..join(g, id)
    };
    let mut kit = Kit::new();
    let ids = kit.stable("stable", 2);
    let r = kit.join(changed("stable", &ids[1]));
    assert!(kit.joined(r).is_none());
    assert!(kit.group("stable").is(GroupState::PreparingRebalance));

    let answers = kit.join_all(vec![join("completing", ""); 2]);
    let follower = &answers[1].0;
    // the same metadata again: the current generation at once
    let same = kit.join(join("completing", follower));
    let same = answered(&mut kit, same);
    assert_eq!((same.error, same.generation_id), (ErrorCode::NONE, 2));
    assert!(kit.group("completing").is(GroupState::CompletingRebalance));
    let r = kit.join(changed("completing", follower));
    assert!(kit.joined(r).is_none());
    assert!(kit.group("completing").is(GroupState::PreparingRebalance));
}

/// 47. G: CompletingRebalance with parked follower SyncGroups. W: any rebalance trigger. T: parked syncs get REBALANCE_IN_PROGRESS, assignments cleared.
#[test]
fn item_47_rebalance_fails_parked_syncs() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let rl = kit.join(join("g", &ids[0]));
    let rf = kit.join(join("g", &ids[1]));
    assert_eq!(answered(&mut kit, rl).generation_id, 3);
    assert_eq!(answered(&mut kit, rf).generation_id, 3);
    assert!(kit.group("g").is(GroupState::CompletingRebalance));
    assert!(kit.group("g").members.values().all(|m| !m.assignment.is_empty()), "generation 2's assignments");
    let parked = kit.sync(sync("g", &ids[1], 3, &[]));
    assert!(kit.synced(parked).is_none());
    kit.join_new(join("g", "")); // a new member triggers a rebalance
    assert_eq!(kit.synced(parked).map(|r| r.error), Some(ErrorCode::REBALANCE_IN_PROGRESS));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert!(kit.group("g").members.values().all(|m| m.assignment.is_empty()));
}

// ============================================================================ F. SyncGroup

/// 48. G: unknown group or Empty group. W: SyncGroup. T: UNKNOWN_MEMBER_ID.
#[test]
fn item_48_sync_to_unknown_or_empty_group() {
    let mut kit = Kit::new();
    let r = kit.sync(sync("nope", "m", 1, &[]));
    assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::UNKNOWN_MEMBER_ID));
    let ids = kit.stable("g", 1);
    kit.leave("g", &[(&ids[0], None)]);
    let r = kit.sync(sync("g", &ids[0], 2, &[]));
    assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::UNKNOWN_MEMBER_ID));
}

/// 49. G: group Stable. W: SyncGroup unknown member / wrong generation. T: UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION.
#[test]
fn item_49_sync_validation() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let r = kit.sync(sync("g", "nobody", 2, &[]));
    assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::UNKNOWN_MEMBER_ID));
    let r = kit.sync(sync("g", &ids[1], 1, &[]));
    assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::ILLEGAL_GENERATION));
}

/// 50. G: v5. W: SyncGroup ProtocolType/Name differ from the group's. T: INCONSISTENT_GROUP_PROTOCOL; null values accepted by the coordinator.
#[test]
fn item_50_sync_protocol_must_match() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let with = |t: Option<&str>, n: Option<&str>| SyncInput {
        protocol_type: t.map(String::from),
        protocol_name: n.map(String::from),
        ..sync("g", &ids[1], 2, &[])
    };
    for (t, n, want) in [
        (Some("connect"), None, ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        (None, Some("roundrobin"), ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        (Some("consumer"), Some("roundrobin"), ErrorCode::INCONSISTENT_GROUP_PROTOCOL),
        (None, None, ErrorCode::NONE),
        (Some("consumer"), Some("range"), ErrorCode::NONE),
    ] {
        let r = kit.sync(with(t, n));
        let r = kit.synced(r).expect("answered");
        assert_eq!(r.error, want, "{t:?} {n:?}");
        if want == ErrorCode::NONE {
            assert_eq!((r.protocol_type.as_deref(), r.protocol_name.as_deref()), (Some("consumer"), Some("range")));
            assert_eq!(r.assignment, Bytes::from(format!("a-{}", ids[1])));
        }
    }
}

/// 52. G: PreparingRebalance. W: SyncGroup. T: REBALANCE_IN_PROGRESS.
#[test]
fn item_52_sync_while_preparing() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.join(join("g", &ids[0]));
    let r = kit.sync(sync("g", &ids[1], 2, &[]));
    assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::REBALANCE_IN_PROGRESS));
}

/// 53. G: CompletingRebalance. W: follower syncs first. T: parked until leader's assignment commits, then gets its own bytes.
#[test]
fn item_53_follower_waits_for_the_leader() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 2]);
    let (l, f) = (&answers[0].0, &answers[1].0);
    let rf = kit.sync(sync("g", f, 2, &[]));
    assert!(kit.synced(rf).is_none());
    let rl = kit.sync(sync("g", l, 2, &[(l.as_str(), "for-l"), (f.as_str(), "for-f")]));
    assert_eq!(kit.synced(rf).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from_static(b"for-f"))));
    assert_eq!(kit.synced(rl).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from_static(b"for-l"))));
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 54. G: CompletingRebalance. W: leader syncs with assignments for a subset. T: members missing get empty bytes; one GroupMetadata record; all parked answered NONE; state Stable.
#[test]
fn item_54_leader_sync_persists_one_record() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 3]);
    let ids: Vec<&String> = answers.iter().map(|(id, _)| id).collect();
    let parked: Vec<u64> = ids[1..].iter().map(|id| kit.sync(sync("g", id, 2, &[]))).collect();
    let before = kit.records.len();
    let rl = kit.sync(sync("g", ids[0], 2, &[(ids[0].as_str(), "x"), (ids[1].as_str(), "y")]));
    let written = kit.records_since(before).to_vec();
    assert_eq!(written.len(), 1);
    let Record::Group { group, value: Some(v) } = &written[0] else { panic!("not a group record: {written:?}") };
    assert_eq!((group.as_str(), v.generation, v.protocol.as_deref(), v.leader.as_ref()), ("g", 2, Some("range"), Some(ids[0])));
    let stored: BTreeMap<&str, &[u8]> = v.members.iter().map(|m| (m.member_id.as_str(), &m.assignment[..])).collect();
    let want: BTreeMap<&str, &[u8]> = [(ids[0].as_str(), &b"x"[..]), (ids[1].as_str(), &b"y"[..]), (ids[2].as_str(), &b""[..])].into();
    assert_eq!(stored, want);
    assert_eq!(kit.synced(rl).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from_static(b"x"))));
    assert_eq!(kit.synced(parked[0]).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from_static(b"y"))));
    assert_eq!(kit.synced(parked[1]).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::new())));
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 55. G: Stable. W: late follower SyncGroup. T: immediate answer with stored assignment.
#[test]
fn item_55_late_follower_gets_the_stored_assignment() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 2]);
    let (l, f) = (&answers[0].0, &answers[1].0);
    kit.sync(sync("g", l, 2, &[(l.as_str(), "x"), (f.as_str(), "y")]));
    assert!(kit.group("g").is(GroupState::Stable));
    let r = kit.sync(sync("g", f, 2, &[]));
    assert_eq!(kit.synced(r).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from_static(b"y"))));
    // and again: the same bytes
    let r = kit.sync(sync("g", f, 2, &[]));
    assert_eq!(kit.synced(r).map(|r| r.assignment), Some(Bytes::from_static(b"y")));
}

/// 56. G: join completed, no member syncs. W: rebalance timeout elapses. T: all removed, group Empty (record written); their heartbeats → UNKNOWN_MEMBER_ID.
#[test]
fn item_56_nobody_syncs() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join_timed("g", "", 60_000, 30_000); 2]);
    assert_eq!(kit.has_timer(&TimerKey::Sync { group: "g".into(), generation: 2 }), Some(T0 + 30_000));
    kit.advance(29_999);
    assert_eq!(kit.group("g").members.len(), 2);
    let before = kit.records.len();
    kit.advance(1);
    let g = kit.group("g");
    assert!(g.is(GroupState::Empty));
    assert_eq!((g.members.len(), g.generation), (0, 3));
    let written = group_records(kit.records_since(before));
    assert_eq!(written.len(), 1);
    assert!(written[0].1.as_ref().is_some_and(|v| v.members.is_empty() && v.generation == 3));
    for (id, _) in &answers {
        assert_eq!(kit.heartbeat(heartbeat("g", id, 2)), ErrorCode::UNKNOWN_MEMBER_ID);
    }
}

/// 57. G: leader synced (Stable), followers did not. W: rebalance timeout. T: followers removed, PreparingRebalance, leader heartbeat → REBALANCE_IN_PROGRESS.
#[test]
fn item_57_followers_that_never_sync_are_removed_in_stable() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 3]);
    let ids: Vec<String> = answers.iter().map(|(id, _)| id.clone()).collect();
    kit.sync(sync("g", &ids[0], 2, &[]));
    assert!(kit.group("g").is(GroupState::Stable));
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    kit.advance_heartbeating(25_000, 5_000, "g", &all);
    kit.advance(4_999);
    assert_eq!(kit.group("g").members.len(), 3);
    kit.advance(1);
    assert_eq!(member_ids(kit.group("g")), vec![ids[0].clone()]);
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[0], 2)), ErrorCode::REBALANCE_IN_PROGRESS);
}

/// 58. G: followers synced, leader did not. W: rebalance timeout. T: leader removed, rebalance; all synced ⇒ nobody removed.
#[test]
fn item_58_leader_that_never_syncs_is_removed() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join_timed("g", "", 60_000, 30_000); 3]);
    let ids: Vec<String> = answers.iter().map(|(id, _)| id.clone()).collect();
    let parked: Vec<u64> = ids[1..].iter().map(|id| kit.sync(sync("g", id, 2, &[]))).collect();
    kit.advance(30_000);
    assert!(!kit.group("g").members.contains_key(&ids[0]));
    assert_eq!(kit.group("g").members.len(), 2);
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    for r in parked {
        assert_eq!(kit.synced(r).map(|r| r.error), Some(ErrorCode::REBALANCE_IN_PROGRESS));
    }
    // everyone synced: the pending-sync timer is gone and nobody is removed
    let ids = kit.stable("synced", 3);
    assert_eq!(kit.has_timer(&TimerKey::Sync { group: "synced".into(), generation: 2 }), None);
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    kit.advance_heartbeating(60_000, 5_000, "synced", &all);
    assert!(kit.group("synced").is(GroupState::Stable));
    assert_eq!(kit.group("synced").members.len(), 3);
}

/// 59. G: follower parked in SyncGroup, leader silent. W: leader's session timeout. T: leader removed, follower gets REBALANCE_IN_PROGRESS, group PreparingRebalance.
#[test]
fn item_59_silent_leader_fails_parked_followers() {
    let mut kit = Kit::new();
    // the follower's session outlasts the leader's, so only the leader's expires
    let answers = kit.join_all(vec![join("g", ""), join_timed("g", "", 20_000, 30_000)]);
    let (l, f) = (answers[0].0.clone(), answers[1].0.clone());
    let rf = kit.sync(sync("g", &f, 2, &[]));
    kit.advance(9_999);
    assert!(kit.synced(rf).is_none());
    kit.advance(1);
    assert!(!kit.group("g").members.contains_key(&l));
    assert_eq!(kit.synced(rf).map(|r| r.error), Some(ErrorCode::REBALANCE_IN_PROGRESS));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

// ============================================================================ G. Heartbeat and session

/// 60. G: unknown group. W: Heartbeat. T: UNKNOWN_MEMBER_ID.
#[test]
fn item_60_heartbeat_unknown_group() {
    let mut kit = Kit::new();
    assert_eq!(kit.heartbeat(heartbeat("nope", "m", 1)), ErrorCode::UNKNOWN_MEMBER_ID);
}

/// 61. G: Dead group. W: Heartbeat. T: COORDINATOR_NOT_AVAILABLE.
#[test]
fn item_61_heartbeat_dead_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.kill("g");
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[0], 1)), ErrorCode::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(kit.heartbeat(heartbeat("g", "nobody", 7)), ErrorCode::COORDINATOR_NOT_AVAILABLE);
}

/// 62. G: Empty group. W: Heartbeat. T: UNKNOWN_MEMBER_ID.
#[test]
fn item_62_heartbeat_empty_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.leave("g", &[(&ids[0], None)]);
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[0], 2)), ErrorCode::UNKNOWN_MEMBER_ID);
}

/// 63. G: Stable. W: Heartbeat with wrong generation. T: ILLEGAL_GENERATION (even during PreparingRebalance if the generation is wrong).
#[test]
fn item_63_heartbeat_wrong_generation() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[1], 1)), ErrorCode::ILLEGAL_GENERATION);
    kit.join(join("g", &ids[0]));
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[1], 3)), ErrorCode::ILLEGAL_GENERATION);
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[1], 2)), ErrorCode::REBALANCE_IN_PROGRESS);
}

/// 64. G: PreparingRebalance, correct generation. W: Heartbeat. T: REBALANCE_IN_PROGRESS and session refreshed.
#[test]
fn item_64_heartbeat_during_preparing_rebalance() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.join(join("g", &ids[0]));
    kit.advance(7_000);
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[1], 2)), ErrorCode::REBALANCE_IN_PROGRESS);
    assert_eq!(kit.has_timer(&hb_key("g", &ids[1])), Some(T0 + 17_000));
}

/// 65. G: CompletingRebalance. W: Heartbeat (correct gen). T: NONE.
#[test]
fn item_65_heartbeat_during_completing_rebalance() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![join("g", ""); 2]);
    kit.advance(1_000);
    assert_eq!(kit.heartbeat(heartbeat("g", &answers[1].0, 2)), ErrorCode::NONE);
    assert_eq!(kit.has_timer(&hb_key("g", &answers[1].0)), Some(T0 + 11_000));
}

/// 66. G: Stable. W: heartbeat every < session timeout. T: member kept; stop heartbeating ⇒ removed after session timeout and rebalance.
#[test]
fn item_66_heartbeats_keep_the_session() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.advance_heartbeating(60_000, 9_000, "g", &[&ids[0], &ids[1]]);
    assert_eq!(kit.group("g").members.len(), 2);
    assert!(kit.group("g").is(GroupState::Stable));
    let last = kit.now;
    kit.advance_heartbeating(9_000, 9_000, "g", &[&ids[0]]);
    kit.advance(last + 9_999 - kit.now);
    assert!(kit.group("g").members.contains_key(&ids[1]));
    kit.advance(1);
    assert!(!kit.group("g").members.contains_key(&ids[1]));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert_eq!(kit.heartbeat(heartbeat("g", &ids[0], 2)), ErrorCode::REBALANCE_IN_PROGRESS);
}

/// 67. G: member parked in JoinGroup (not new). W: its session timeout passes during a long rebalance. T: not removed by the session timer.
#[test]
fn item_67_parked_join_satisfies_the_session() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let rl = kit.join(join("g", &ids[0]));
    kit.advance_heartbeating(25_000, 5_000, "g", &[&ids[1]]);
    assert!(kit.group("g").members.contains_key(&ids[0]), "past its 10 s session, still there");
    assert!(kit.joined(rl).is_none());
    kit.advance(5_000);
    let r = answered(&mut kit, rl);
    assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
}

/// 68. G: Stable, member only commits offsets. W: session timeout passes with commits but no heartbeats. T: member kept.
#[test]
fn item_68_commits_keep_the_session() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    for k in 0..6 {
        kit.advance(5_000);
        assert_eq!(kit.commit(commit("g", &ids[0], 1, &[("t", 0, k)])), vec![ErrorCode::NONE]);
    }
    assert!(kit.group("g").members.contains_key(&ids[0]));
    assert_eq!(kit.has_timer(&hb_key("g", &ids[0])), Some(kit.now + 10_000));
    kit.advance(10_000);
    assert!(kit.group("g").members.is_empty(), "and without either it goes");
}

/// 69. G: static member id mapping to another member id. W: Heartbeat with stale member id + instance id. T: FENCED_INSTANCE_ID.
#[test]
fn item_69_stale_static_member_id_is_fenced() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-l"), static_join("g", "i-s")]);
    let r = kit.join(static_join("g", "i-s"));
    let s2 = answered(&mut kit, r).member_id;
    let hb = |m: &str, i: &str| HeartbeatInput { group_instance_id: Some(i.into()), ..heartbeat("g", m, 2) };
    assert_eq!(kit.heartbeat(hb(&ids[1], "i-s")), ErrorCode::FENCED_INSTANCE_ID);
    assert_eq!(kit.heartbeat(hb(&s2, "i-s")), ErrorCode::NONE);
    assert_eq!(kit.heartbeat(hb(&s2, "i-unknown")), ErrorCode::UNKNOWN_MEMBER_ID);
}

// ============================================================================ H. LeaveGroup

/// 70. G: unknown group, v3 batch of 2. W: LeaveGroup. T: top-level NONE, both members UNKNOWN_MEMBER_ID.
///
/// The v≤2 collapse is the API's.
#[test]
fn item_70_leave_unknown_group() {
    let mut kit = Kit::new();
    let r = kit.leave("nope", &[("a", None), ("", Some("i"))]);
    assert_eq!(
        r,
        LeaveResult {
            error: ErrorCode::NONE,
            members: vec![left_as("a", None, ErrorCode::UNKNOWN_MEMBER_ID), left_as("", Some("i"), ErrorCode::UNKNOWN_MEMBER_ID)],
        }
    );
}

/// 71. G: Dead group. W: LeaveGroup. T: top-level COORDINATOR_NOT_AVAILABLE.
#[test]
fn item_71_leave_dead_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.kill("g");
    let r = kit.leave("g", &[(&ids[0], None)]);
    assert_eq!((r.error, r.members.len()), (ErrorCode::COORDINATOR_NOT_AVAILABLE, 0));
}

/// 72. G: Stable with 2 members. W: one leaves. T: NONE, group PreparingRebalance.
#[test]
fn item_72_leave_rebalances() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let r = kit.leave("g", &[(&ids[1], None)]);
    assert_eq!(r, LeaveResult { error: ErrorCode::NONE, members: vec![left_as(&ids[1], None, ErrorCode::NONE)] });
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert_eq!(member_ids(kit.group("g")), vec![ids[0].clone()]);
    assert_eq!(kit.has_timer(&hb_key("g", &ids[1])), None);
}

/// 73. G: Stable with 1 member. W: it leaves. T: group Empty, generation+1, GroupMetadata record (no members).
#[test]
fn item_73_last_member_leaves() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    let before = kit.records.len();
    kit.leave("g", &[(&ids[0], None)]);
    let g = kit.group("g");
    assert!(g.is(GroupState::Empty));
    assert_eq!(g.generation, 2);
    let written = group_records(kit.records_since(before));
    assert_eq!(written.len(), 1);
    let v = written[0].1.clone().expect("value");
    assert_eq!((v.generation, v.members.len(), v.protocol), (2, 0, None));
}

/// 74. G: static member(s). W: leave with MemberId "" + instance id(s). T: each removed, per-member NONE (admin path, response echoes MemberId "" and the instance id).
#[test]
fn item_74_admin_removes_static_members() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-a"), static_join("g", "i-b"), static_join("g", "i-c")]);
    let r = kit.leave("g", &[("", Some("i-b")), ("", Some("i-c"))]);
    assert_eq!(
        r,
        LeaveResult {
            error: ErrorCode::NONE,
            members: vec![left_as("", Some("i-b"), ErrorCode::NONE), left_as("", Some("i-c"), ErrorCode::NONE)],
        }
    );
    assert_eq!(member_ids(kit.group("g")), vec![ids[0].clone()]);
    assert_eq!(kit.group("g").static_members.keys().cloned().collect::<Vec<_>>(), vec!["i-a".to_string()]);
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

/// 75. G: static member. W: leave with wrong MemberId + its instance id / with unknown instance id. T: FENCED_INSTANCE_ID / UNKNOWN_MEMBER_ID per member.
#[test]
fn item_75_static_leave_validation() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-a"), static_join("g", "i-b")]);
    let r = kit.leave("g", &[(&ids[0], Some("i-b")), ("", Some("i-x")), (&ids[1], Some("i-x"))]);
    let errors: Vec<ErrorCode> = r.members.iter().map(|m| m.error).collect();
    assert_eq!(errors, vec![ErrorCode::FENCED_INSTANCE_ID, ErrorCode::UNKNOWN_MEMBER_ID, ErrorCode::UNKNOWN_MEMBER_ID]);
    assert_eq!(kit.group("g").members.len(), 2);
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 76. G: pending member. W: leaves. T: NONE, pending entry dropped.
#[test]
fn item_76_pending_member_leaves() {
    let mut kit = Kit::new();
    kit.stable("g", 1);
    let r = kit.join(join("g", ""));
    let pending = answered(&mut kit, r).member_id;
    let r = kit.leave("g", &[(&pending, None)]);
    assert_eq!(r.members, vec![left_as(&pending, None, ErrorCode::NONE)]);
    assert!(kit.group("g").pending_members.is_empty());
    assert_eq!(kit.has_timer(&hb_key("g", &pending)), None);
}

/// 77. G: member parked in JoinGroup. W: it is removed by LeaveGroup. T: its JoinGroup answered UNKNOWN_MEMBER_ID.
#[test]
fn item_77_leave_answers_a_parked_join() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let r = kit.join(join("g", &ids[0]));
    kit.leave("g", &[(&ids[0], None)]);
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::UNKNOWN_MEMBER_ID, ""));
}

// ============================================================================ I. static membership

/// 78. G: Stable, static member S (id s1). W: S rejoins with MemberId "", same protocols, v≤8. T: new id s2, no rebalance, GroupMetadata record with s2, Leader field = previous leader id, generation unchanged; later SyncGroup returns the old assignment.
#[test]
fn item_78_static_rejoin_in_stable_keeps_the_generation() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-s"), static_join("g", "i-f")]);
    let s1 = ids[0].clone(); // S leads
    let before = kit.records.len();
    let r = kit.join(JoinInput { version: 8, ..static_join("g", "i-s") });
    let r = answered(&mut kit, r);
    let s2 = r.member_id.clone();
    assert_ne!(s2, s1);
    assert_eq!((r.error, r.generation_id, r.skip_assignment), (ErrorCode::NONE, 2, false));
    assert_eq!(r.leader, s1, "the previous leader id, so it does not believe it must assign");
    assert!(r.members.is_empty());
    let g = kit.group("g");
    assert!(g.is(GroupState::Stable));
    assert_eq!((g.generation, g.leader.as_ref()), (2, Some(&s2)));
    assert_eq!(g.static_members["i-s"], s2);
    let written = group_records(kit.records_since(before));
    assert_eq!(written.len(), 1);
    let v = written[0].1.clone().expect("value");
    let stored: BTreeMap<String, Bytes> = v.members.iter().map(|m| (m.member_id.clone(), m.assignment.clone())).collect();
    assert_eq!(stored.get(&s2), Some(&Bytes::from(format!("a-{s1}"))));
    assert!(!stored.contains_key(&s1));
    let sy = kit.sync(SyncInput { group_instance_id: Some("i-s".into()), ..sync("g", &s2, 2, &[]) });
    assert_eq!(kit.synced(sy).map(|r| (r.error, r.assignment)), Some((ErrorCode::NONE, Bytes::from(format!("a-{s1}")))));
    assert_eq!(kit.has_timer(&hb_key("g", &s1)), None);
}

/// 79. G: as 78 but S is leader and v9. W: rejoin. T: response Members = all members, SkipAssignment = true, Leader = s2.
#[test]
fn item_79_static_leader_rejoin_v9_skips_assignment() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-s"), static_join("g", "i-f")]);
    let r = kit.join(JoinInput { version: 9, ..static_join("g", "i-s") });
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.generation_id, r.skip_assignment), (ErrorCode::NONE, 2, true));
    assert_eq!(r.leader, r.member_id);
    let listed = sorted(r.members.iter().map(|m| m.member_id.clone()).collect());
    assert_eq!(listed, sorted(vec![r.member_id.clone(), ids[1].clone()]));
    // a follower at v9 gets no list and no skip
    let f = kit.join(JoinInput { version: 9, ..static_join("g", "i-f") });
    let f = answered(&mut kit, f);
    assert_eq!((f.skip_assignment, f.members.len(), f.leader.as_str()), (false, 0, r.member_id.as_str()));
    assert!(kit.group("g").is(GroupState::Stable));
}

/// 80. G: as 78 but the selected protocol would change. W: rejoin. T: rebalance.
#[test]
fn item_80_static_rejoin_changing_the_protocol_rebalances() {
    let mut kit = Kit::new();
    let both = protocols(&["range", "roundrobin"]);
    kit.stable_members(vec![
        JoinInput { protocols: both.clone(), ..static_join("g", "i-l") },
        JoinInput { protocols: both.clone(), ..static_join("g", "i-s") },
    ]);
    assert_eq!(kit.group("g").protocol_name.as_deref(), Some("range"));
    let r = kit.join(JoinInput { protocols: protocols(&["roundrobin"]), ..static_join("g", "i-s") });
    assert!(kit.joined(r).is_none(), "parked for the rebalance");
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

/// 81. G: CompletingRebalance. W: static member rejoins with MemberId "". T: new rebalance.
#[test]
fn item_81_static_rejoin_while_completing_rebalances() {
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![static_join("g", "i-l"), static_join("g", "i-s")]);
    let r = kit.join(static_join("g", "i-s"));
    assert!(kit.joined(r).is_none());
    let g = kit.group("g");
    assert!(g.is(GroupState::PreparingRebalance));
    assert_ne!(g.static_members["i-s"], answers[1].0);
}

/// 82. G: old static id s1 parked in JoinGroup or SyncGroup. W: replacement s2 joins. T: s1's parked request → FENCED_INSTANCE_ID.
#[test]
fn item_82_replacement_fences_the_old_id() {
    // parked in JoinGroup: a third member keeps the join phase open
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-l"), static_join("g", "i-s"), static_join("g", "i-f")]);
    let rl = kit.join(rejoin(&kit, "g", &ids[0]));
    let old = kit.join(rejoin(&kit, "g", &ids[1]));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    assert!(kit.joined(old).is_none());
    let new = kit.join(static_join("g", "i-s"));
    let fenced = answered(&mut kit, old);
    assert_eq!((fenced.error, fenced.member_id.as_str()), (ErrorCode::FENCED_INSTANCE_ID, ids[1].as_str()));
    assert!(kit.joined(new).is_none(), "the replacement waits in the join phase");
    let rf = kit.join(rejoin(&kit, "g", &ids[2]));
    for r in [rl, new, rf] {
        let r = answered(&mut kit, r);
        assert_eq!((r.error, r.generation_id), (ErrorCode::NONE, 3));
    }
    assert!(!kit.group("g").members.contains_key(&ids[1]));

    // parked in SyncGroup
    let mut kit = Kit::new();
    let answers = kit.join_all(vec![static_join("g", "i-l"), static_join("g", "i-s")]);
    let s1 = answers[1].0.clone();
    let parked = kit.sync(SyncInput { group_instance_id: Some("i-s".into()), ..sync("g", &s1, 2, &[]) });
    assert!(kit.synced(parked).is_none());
    kit.join(static_join("g", "i-s"));
    assert_eq!(kit.synced(parked).map(|r| r.error), Some(ErrorCode::FENCED_INSTANCE_ID));
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
}

/// 84. G: known MemberId with unknown instance id / instance id bound to another id. W: JoinGroup. T: UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID.
#[test]
fn item_84_static_join_validation() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-l"), static_join("g", "i-s")]);
    let r = kit.join(JoinInput { group_instance_id: Some("i-x".into()), ..join("g", &ids[1]) });
    assert_eq!(answered(&mut kit, r).error, ErrorCode::UNKNOWN_MEMBER_ID);
    let r = kit.join(JoinInput { group_instance_id: Some("i-l".into()), ..join("g", &ids[1]) });
    let r = answered(&mut kit, r);
    assert_eq!((r.error, r.member_id.as_str()), (ErrorCode::FENCED_INSTANCE_ID, ids[1].as_str()));
    assert!(kit.group("g").is(GroupState::Stable));
}

// ============================================================================ J. offsets

/// 85. G: no group. W: OffsetCommit gen −1, MemberId "". T: NONE; simple group exists (ListGroups shows ProtocolType "").
#[test]
fn item_85_simple_group_commit() {
    let mut kit = Kit::new();
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 1), ("t", 1, 2)])), vec![ErrorCode::NONE; 2]);
    assert_eq!(
        kit.shard.list(),
        vec![GroupListing { group_id: "g".into(), protocol_type: String::new(), state: "Empty", group_type: "classic" }]
    );
    assert!(group_records(&kit.records).is_empty(), "no GroupMetadata record for a simple group");
    assert_eq!(kit.records.len(), 2);
}

/// 86. G: no group. W: OffsetCommit gen 10. T: v≤8 ILLEGAL_GENERATION, v9+ GROUP_ID_NOT_FOUND, on every partition.
#[test]
fn item_86_commit_to_unknown_group_with_a_generation() {
    let mut kit = Kit::new();
    let c = commit("g", "m", 10, &[("t", 0, 1), ("t", 1, 2)]);
    assert_eq!(kit.commit(CommitInput { version: 8, ..c.clone() }), vec![ErrorCode::ILLEGAL_GENERATION; 2]);
    assert_eq!(kit.commit(CommitInput { version: 9, ..c }), vec![ErrorCode::GROUP_ID_NOT_FOUND; 2]);
    assert!(kit.shard.group("g").is_none());
    assert!(kit.records.is_empty());
}

/// 87. G: Dead group. W: commit. T: COORDINATOR_NOT_AVAILABLE.
#[test]
fn item_87_commit_to_dead_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.kill("g");
    assert_eq!(kit.commit(commit("g", &ids[0], 1, &[("t", 0, 1)])), vec![ErrorCode::COORDINATOR_NOT_AVAILABLE]);
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 1)])), vec![ErrorCode::COORDINATOR_NOT_AVAILABLE]);
}

/// 88. G: Empty group. W: commit gen −1 with arbitrary MemberId/instance id. T: NONE (no member validation).
#[test]
fn item_88_admin_commit_to_empty_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.leave("g", &[(&ids[0], None)]);
    let c = CommitInput { group_instance_id: Some("whatever".into()), ..commit("g", "anyone", -1, &[("t", 0, 1)]) };
    assert_eq!(kit.commit(c), vec![ErrorCode::NONE]);
}

/// 89. G: non-empty group. W: commit gen −1, MemberId "". T: UNKNOWN_MEMBER_ID.
#[test]
fn item_89_admin_commit_to_live_group() {
    let mut kit = Kit::new();
    kit.stable("g", 1);
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 1)])), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
}

/// 90. G: Stable gen 1. W: commit from unknown member / gen 2 / fenced instance. T: UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / FENCED_INSTANCE_ID.
#[test]
fn item_90_member_commit_validation() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-l")]);
    let with = |m: &str, i: Option<&str>, generation| CommitInput {
        group_instance_id: i.map(String::from),
        ..commit("g", m, generation, &[("t", 0, 1)])
    };
    assert_eq!(kit.group("g").generation, 1);
    assert_eq!(kit.commit(with("nobody", None, 1)), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    assert_eq!(kit.commit(with(&ids[0], Some("i-l"), 2)), vec![ErrorCode::ILLEGAL_GENERATION]);
    assert_eq!(kit.commit(with("old-id", Some("i-l"), 1)), vec![ErrorCode::FENCED_INSTANCE_ID]);
    assert_eq!(kit.commit(with(&ids[0], Some("i-x"), 1)), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    assert_eq!(kit.commit(with(&ids[0], Some("i-l"), 1)), vec![ErrorCode::NONE]);
}

/// 91. G: CompletingRebalance gen 1. W: commit gen 1 from a member. T: REBALANCE_IN_PROGRESS.
#[test]
fn item_91_commit_while_completing() {
    let mut kit = Kit::new();
    let r = kit.join(join("g", ""));
    let id = answered(&mut kit, r).member_id;
    let r = kit.join(join("g", &id));
    assert_eq!(answered(&mut kit, r).generation_id, 1);
    assert!(kit.group("g").is(GroupState::CompletingRebalance));
    assert_eq!(kit.commit(commit("g", &id, 1, &[("t", 0, 1)])), vec![ErrorCode::REBALANCE_IN_PROGRESS]);
}

/// 92. G: PreparingRebalance (old gen g). W: commit gen g from a member. T: NONE.
#[test]
fn item_92_commit_while_preparing() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.join(join("g", &ids[0]));
    kit.advance(4_000);
    assert_eq!(kit.commit(commit("g", &ids[1], 2, &[("t", 0, 1)])), vec![ErrorCode::NONE]);
    assert_eq!(kit.has_timer(&hb_key("g", &ids[1])), Some(T0 + 14_000), "and it refreshes the session");
}

/// 93. G: metadata of 4097 chars in partition 0 and valid metadata in partition 1. W: commit. T: p0 OFFSET_METADATA_TOO_LARGE, p1 NONE and persisted.
#[test]
fn item_93_oversized_metadata_fails_its_partition_only() {
    let mut kit = Kit::new();
    let mut c = commit("g", "", -1, &[("t", 0, 1), ("t", 1, 2), ("t", 2, 3)]);
    // Java counts UTF-16 units: 2049 emoji are 4098 units; 4096 'é' are 4096 units (8192 bytes)
    c.partitions[0].metadata = Some("x".repeat(4097));
    c.partitions[1].metadata = Some("😀".repeat(2049));
    c.partitions[2].metadata = Some("é".repeat(4096));
    assert_eq!(kit.commit(c), vec![ErrorCode::OFFSET_METADATA_TOO_LARGE, ErrorCode::OFFSET_METADATA_TOO_LARGE, ErrorCode::NONE]);
    assert_eq!(kit.records.len(), 1);
    assert!(matches!(&kit.records[0], Record::Offset { partition: 2, value: Some(v), .. } if v.metadata == "é".repeat(4096)));
    let fetched = kit.shard.fetch_offsets("g", None, false);
    assert_eq!(fetched.iter().map(|f| f.partition).collect::<Vec<_>>(), vec![2]);
}

/// 95. G: v2 commit with RetentionTimeMs 3600000. W: commit. T: record value v1 with expireTimestamp = now+1h; expires at that time regardless of group state.
#[test]
fn item_95_explicit_retention() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    kit.leave("g", &[(&ids[0], None)]); // Empty since now: its own clock would keep offsets 7 days
    let c = CommitInput { version: 2, retention_time_ms: 3_600_000, ..commit("g", "", -1, &[("t", 0, 1)]) };
    let before = kit.records.len();
    assert_eq!(kit.commit(c), vec![ErrorCode::NONE]);
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 1, 1)])), vec![ErrorCode::NONE]);
    let raw = kit.records[before].encode();
    assert_eq!(&raw.value.as_ref().expect("value")[..2], &[0, 1], "value version 1");
    let Record::Offset { value: Some(v), .. } = &kit.records[before] else { panic!() };
    assert_eq!(v.expire_timestamp, Some(kit.now + 3_600_000));
    let committed = kit.now;
    kit.advance(3_599_999);
    kit.sweep();
    assert_eq!(kit.records.len(), before + 2);
    kit.advance(1);
    kit.sweep();
    assert_eq!(kit.records_since(before + 2), &[Record::Offset { group: "g".into(), topic: "t".into(), partition: 0, value: None }]);
    assert!(kit.shard.group("g").is_some(), "the other offset keeps the group");
    assert_eq!(kit.now, committed + 3_600_000);
}

/// 96. G: committed offset. W: OffsetFetch of it and of an uncommitted partition. T: (offset, epoch, metadata, NONE) and (−1, −1, "", NONE).
#[test]
fn item_96_fetch_committed_and_uncommitted() {
    let mut kit = Kit::new();
    let mut c = commit("g", "", -1, &[("t", 0, 5)]);
    c.partitions[0].leader_epoch = 3;
    c.partitions[0].metadata = Some("md".into());
    kit.commit(c);
    let got = kit.shard.fetch_offsets("g", Some(&[("t".into(), 0), ("t".into(), 1)]), false);
    assert_eq!(got, vec![fetched("t", 0, 5, 3, "md"), fetched("t", 1, -1, -1, "")]);
}

/// 97. G: unknown group. W: OffsetFetch explicit partitions / all. T: all −1 with NONE / empty list.
///
/// A Dead group answers the same, §2.3.
#[test]
fn item_97_fetch_unknown_group() {
    let mut kit = Kit::new();
    let none = vec![fetched("t", 0, -1, -1, "")];
    assert_eq!(kit.shard.fetch_offsets("nope", Some(&[("t".into(), 0)]), false), none);
    assert!(kit.shard.fetch_offsets("nope", None, false).is_empty());
    kit.commit(commit("dead", "", -1, &[("t", 0, 4)]));
    kit.kill("dead");
    assert_eq!(kit.shard.fetch_offsets("dead", Some(&[("t".into(), 0)]), false), none);
    assert!(kit.shard.fetch_offsets("dead", None, false).is_empty());
}

/// 98. G: pending transactional offset on p0. W: OffsetFetch RequireStable=true / false. T: p0 UNSTABLE_OFFSET_COMMIT (−1) / last committed offset.
#[test]
fn item_98_require_stable_meets_a_pending_transactional_offset() {
    let mut kit = Kit::new();
    kit.commit(commit("g", "", -1, &[("t", 0, 5), ("t", 1, 7)]));
    assert_eq!(kit.txn_commit("g", 42, &[("t", 0, 9)]), vec![ErrorCode::NONE]);
    let wanted = [("t".to_string(), 0), ("t".to_string(), 1)];
    let unstable = FetchedPartition { error: ErrorCode::UNSTABLE_OFFSET_COMMIT, ..fetched("t", 0, -1, -1, "") };
    assert_eq!(kit.shard.fetch_offsets("g", Some(&wanted), true), vec![unstable, fetched("t", 1, 7, -1, "")]);
    assert_eq!(kit.shard.fetch_offsets("g", Some(&wanted), false), vec![fetched("t", 0, 5, -1, ""), fetched("t", 1, 7, -1, "")]);
    // the marker ends it: stable again, at the transaction's offset
    kit.end_txn(42, true);
    assert_eq!(kit.shard.fetch_offsets("g", Some(&wanted), true), vec![fetched("t", 0, 9, -1, ""), fetched("t", 1, 7, -1, "")]);
}

/// 111. G: transactional offsets then COMMIT marker / ABORT marker. W: load. T: offsets visible / discarded.
#[test]
fn item_111_markers_make_transactional_offsets_visible_or_drop_them_and_replay_agrees() {
    let mut kit = Kit::new();
    kit.commit(commit("g", "", -1, &[("t", 0, 1), ("t", 1, 1)]));
    kit.txn_commit("g", 1, &[("t", 0, 10)]);
    kit.txn_commit("g", 2, &[("t", 1, 20)]);
    kit.txn_commit("other", 1, &[("u", 0, 30)]);
    // before any marker, a load keeps them pending
    let loaded = Kit::loaded(config(), kit.now, &kit.raw_records());
    assert!(loaded.shard.group("g").unwrap().has_pending_txn_offset("t", 0));
    assert_eq!(loaded.shard.fetch_offsets("g", None, false), vec![fetched("t", 0, 1, -1, ""), fetched("t", 1, 1, -1, "")]);
    kit.end_txn(1, true);
    kit.end_txn(2, false);
    let want_g = vec![fetched("t", 0, 10, -1, ""), fetched("t", 1, 1, -1, "")];
    assert_eq!(kit.shard.fetch_offsets("g", None, true), want_g);
    assert_eq!(kit.shard.fetch_offsets("other", None, true), vec![fetched("u", 0, 30, -1, "")]);
    for shard in [kit.replayed(), kit.replayed_through_log(true).0] {
        assert_eq!(shard.fetch_offsets("g", None, true), want_g);
        assert_eq!(shard.fetch_offsets("other", None, true), vec![fetched("u", 0, 30, -1, "")]);
        assert!(shard.group("g").unwrap().pending_txn.is_empty());
    }
}

/// A transactional commit is checked like a plain one, except that it needs no member and is
/// not refused while the group completes a rebalance (§3.1, "not for transactional commits").
#[test]
fn transactional_commits_skip_the_member_and_rebalance_checks() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 1);
    // a plain commit without member id to a group with members: UNKNOWN_MEMBER_ID
    assert_eq!(kit.commit(commit("g", "", -1, &[("t", 0, 1)])), vec![ErrorCode::UNKNOWN_MEMBER_ID]);
    assert_eq!(kit.txn_commit("g", 5, &[("t", 0, 1)]), vec![ErrorCode::NONE]);
    // with a member id (KIP-447) it is checked: a stale generation is refused
    let stale = CommitInput { producer_id: Some(5), ..commit("g", &ids[0], 0, &[("t", 0, 2)]) };
    assert_eq!(kit.commit(stale), vec![ErrorCode::ILLEGAL_GENERATION]);
    let current = CommitInput { producer_id: Some(5), ..commit("g", &ids[0], 1, &[("t", 0, 2)]) };
    assert_eq!(kit.commit(current), vec![ErrorCode::NONE]);
}

/// 100. G: classic non-empty group with protocolType "connect" (non-consumer). W: OffsetDelete. T: top-level NON_EMPTY_GROUP; protocolType "consumer" subscribed to the topic ⇒ GROUP_SUBSCRIBED_TO_TOPIC per partition; unknown group ⇒ GROUP_ID_NOT_FOUND.
#[test]
fn item_100_offset_delete_rules() {
    let mut kit = Kit::new();
    kit.stable_members(vec![JoinInput { protocol_type: "connect".into(), ..join("connect", "") }]);
    let r = kit.delete_offsets("connect", &[("a", 0)]);
    assert_eq!((r.error, r.partitions.len()), (ErrorCode::NON_EMPTY_GROUP, 0));

    let sub = vec![Protocol { name: "range".into(), metadata: subscription(&["a"]) }];
    let ids = kit.stable_members(vec![JoinInput { protocols: sub, ..join("g", "") }]);
    kit.commit(commit("g", &ids[0], 1, &[("a", 0, 1), ("b", 0, 1)]));
    let before = kit.records.len();
    let r = kit.delete_offsets("g", &[("a", 0), ("a", 1), ("b", 0), ("b", 1)]);
    assert_eq!(
        r,
        OffsetDeleteResult {
            error: ErrorCode::NONE,
            partitions: vec![
                partition_error("a", 0, ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC),
                partition_error("a", 1, ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC),
                partition_error("b", 0, ErrorCode::NONE),
                partition_error("b", 1, ErrorCode::NONE),
            ],
        }
    );
    // a tombstone only where an offset existed
    assert_eq!(kit.records_since(before), &[Record::Offset { group: "g".into(), topic: "b".into(), partition: 0, value: None }]);

    let r = kit.delete_offsets("nope", &[("a", 0)]);
    assert_eq!(r.error, ErrorCode::GROUP_ID_NOT_FOUND);
}

/// 101. G: groups Stable / Empty-with-offsets / unknown. W: DeleteGroups. T: NON_EMPTY_GROUP / NONE (offset tombstones + group tombstone) / GROUP_ID_NOT_FOUND.
#[test]
fn item_101_delete_groups() {
    let mut kit = Kit::new();
    kit.stable("stable", 1);
    assert_eq!(kit.delete_group("stable"), ErrorCode::NON_EMPTY_GROUP);
    let ids = kit.stable("empty", 1);
    kit.commit(commit("empty", &ids[0], 1, &[("t", 0, 1), ("t", 1, 1)]));
    kit.leave("empty", &[(&ids[0], None)]);
    let before = kit.records.len();
    assert_eq!(kit.delete_group("empty"), ErrorCode::NONE);
    let mut written = kit.records_since(before).to_vec();
    assert_eq!(written.pop(), Some(Record::Group { group: "empty".into(), value: None }), "the group tombstone comes last");
    written.sort_by_key(|r| match r {
        Record::Offset { partition, .. } => *partition,
        _ => -1,
    });
    assert_eq!(
        written,
        vec![
            Record::Offset { group: "empty".into(), topic: "t".into(), partition: 0, value: None },
            Record::Offset { group: "empty".into(), topic: "t".into(), partition: 1, value: None },
        ]
    );
    assert!(kit.shard.group("empty").is_none());
    assert_eq!(kit.delete_group("empty"), ErrorCode::GROUP_ID_NOT_FOUND);
    assert_eq!(kit.delete_group("nope"), ErrorCode::GROUP_ID_NOT_FOUND);
}

/// 102. G: Empty classic group that became Empty at T0 with offsets committed at T0−10d. W: expiry sweep at T0+7d−1ms / T0+7d. T: kept / tombstoned and, with no offsets left, group tombstoned.
#[test]
fn item_102_empty_group_offsets_expire_from_when_it_emptied() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![join_timed("g", "", 1_800_000, 30_000)]);
    kit.commit(commit("g", &ids[0], 1, &[("t", 0, 1)]));
    kit.advance_heartbeating(10 * DAY, 600_000, "g", &[&ids[0]]);
    kit.leave("g", &[(&ids[0], None)]);
    let emptied = kit.now;
    let before = kit.records.len();
    kit.advance(7 * DAY - 1);
    kit.sweep();
    assert_eq!(kit.records.len(), before, "7 days since it emptied, not since the commit");
    kit.advance(1);
    kit.sweep();
    assert_eq!(
        kit.records_since(before),
        &[
            Record::Offset { group: "g".into(), topic: "t".into(), partition: 0, value: None },
            Record::Group { group: "g".into(), value: None },
        ]
    );
    assert!(kit.shard.group("g").is_none());
    assert_eq!(kit.now, emptied + 7 * DAY);
}

/// 103. G: Stable "consumer" group subscribed to topic A, offsets on A and B older than retention. W: sweep. T: B expired, A kept; PreparingRebalance group: nothing expires.
#[test]
fn item_103_only_unsubscribed_offsets_of_stable_groups_expire() {
    let mut kit = Kit::new();
    let sub = vec![Protocol { name: "range".into(), metadata: subscription(&["A"]) }];
    let template = JoinInput { protocols: sub, ..join_timed("g", "", 1_800_000, 30_000) };
    let ids = kit.stable_members(vec![template.clone(), template.clone()]);
    let mut c = commit("g", &ids[0], 2, &[("A", 0, 1), ("B", 0, 1), ("C", 0, 1)]);
    assert_eq!(kit.commit(c.clone()), vec![ErrorCode::NONE; 3]);
    // C with an explicit 1 h retention (OffsetCommit v2)
    c.version = 2;
    c.retention_time_ms = 3_600_000;
    c.partitions.truncate(0);
    c.partitions.push(CommitPartition { topic: "C".into(), partition: 0, offset: 2, leader_epoch: -1, metadata: None });
    assert_eq!(kit.commit(c), vec![ErrorCode::NONE]);
    kit.advance_heartbeating(8 * DAY, 600_000, "g", &[&ids[0], &ids[1]]);

    // rebalancing: nothing expires, not even C's explicit expiry
    let rl = kit.join(JoinInput { member_id: ids[0].clone(), ..template.clone() });
    assert!(kit.group("g").is(GroupState::PreparingRebalance));
    let before = kit.records.len();
    kit.sweep();
    assert_eq!(kit.records.len(), before, "PreparingRebalance: nothing expires");
    let rf = kit.join(JoinInput { member_id: ids[1].clone(), ..template });
    assert!(kit.group("g").is(GroupState::CompletingRebalance));
    kit.sweep();
    assert_eq!(kit.records.len(), before, "CompletingRebalance: nothing expires");
    let _ = (kit.joined(rl), kit.joined(rf));
    kit.sync(sync("g", &ids[0], 3, &[]));
    assert!(kit.group("g").is(GroupState::Stable));
    let before = kit.records.len();
    kit.sweep();
    let mut expired: Vec<String> = kit
        .records_since(before)
        .iter()
        .map(|r| match r {
            Record::Offset { topic, value: None, .. } => topic.clone(),
            other => panic!("unexpected record {other:?}"),
        })
        .collect();
    expired.sort();
    assert_eq!(expired, vec!["B".to_string(), "C".to_string()]);
    assert!(kit.group("g").offsets.contains_key(&("A".to_string(), 0)));
}

/// 104. G: topic deleted. W: metadata update. T: tombstones for all groups' offsets of that topic.
#[test]
fn item_104_deleted_topic_offsets_are_tombstoned() {
    let mut kit = Kit::new();
    kit.commit(commit("g1", "", -1, &[("gone", 0, 1), ("gone", 1, 1), ("kept", 0, 1)]));
    kit.commit(commit("g2", "", -1, &[("gone", 0, 1)]));
    let before = kit.records.len();
    kit.topic_deleted("gone");
    let mut written: Vec<(String, String, i32)> = kit
        .records_since(before)
        .iter()
        .map(|r| match r {
            Record::Offset { group, topic, partition, value: None } => (group.clone(), topic.clone(), *partition),
            other => panic!("unexpected record {other:?}"),
        })
        .collect();
    written.sort();
    assert_eq!(written, vec![("g1".into(), "gone".into(), 0), ("g1".into(), "gone".into(), 1), ("g2".into(), "gone".into(), 0)]);
    assert_eq!(kit.shard.fetch_offsets("g1", None, false), vec![fetched("kept", 0, 1, -1, "")]);
    assert!(kit.shard.fetch_offsets("g2", None, false).is_empty());
}

// ============================================================================ K. persistence and loading

/// 105. G: commit without expire timestamp. W: write. T: key = int16 1 ‖ {group, topic, partition}; value = int16 3 ‖ {offset, leaderEpoch, metadata, commitTimestamp}.
#[test]
fn item_105_offset_commit_record_bytes() {
    let mut kit = Kit::new();
    let mut c = commit("g", "", -1, &[("t", 2, 7)]);
    c.partitions[0].leader_epoch = 5;
    c.partitions[0].metadata = Some("m".into());
    kit.commit(c);
    let raw = kit.records[0].encode();
    assert_eq!(&raw.key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
    let mut value = vec![0, 3];
    value.extend_from_slice(&7i64.to_be_bytes());
    value.extend_from_slice(&5i32.to_be_bytes());
    value.extend_from_slice(&[0, 1, b'm']);
    value.extend_from_slice(&T0.to_be_bytes());
    assert_eq!(raw.value.as_deref(), Some(&value[..]));
}

/// 106. G: new classic group created by a JoinGroup. W: request processed. T: empty GroupMetadata record (gen 0, type "") appended.
#[test]
fn item_106_a_new_group_is_written_empty() {
    let mut kit = Kit::new();
    let r = kit.join(join("g", ""));
    assert_eq!(answered(&mut kit, r).error, ErrorCode::MEMBER_ID_REQUIRED);
    assert_eq!(
        kit.records,
        vec![Record::Group {
            group: "g".into(),
            value: Some(GroupValue {
                protocol_type: String::new(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp: T0,
                members: vec![],
            }),
        }]
    );
    // an existing group is not written again
    kit.join(join("g", ""));
    assert_eq!(kit.records.len(), 1);
}

/// 107. G: log with GroupMetadata(members=[m1,m2]) then offsets. W: load. T: group Stable with m1,m2, heartbeat timers armed from load time; after their session timeout without heartbeats they are removed.
#[test]
fn item_107_loaded_members_get_sessions_from_load_time() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.commit(commit("g", &ids[0], 2, &[("t", 0, 9)]));
    let load_at = kit.now + 60_000;
    let mut loaded = Kit::loaded(config(), load_at, &kit.raw_records());
    let g = loaded.group("g");
    assert!(g.is(GroupState::Stable));
    assert_eq!((member_ids(g), g.generation, g.leader.as_ref()), (sorted(ids.clone()), 2, Some(&ids[0])));
    assert_eq!(g.offsets[&("t".to_string(), 0)].offset, 9);
    for id in &ids {
        assert_eq!(loaded.has_timer(&hb_key("g", id)), Some(load_at + 10_000));
    }
    loaded.advance(5_000);
    assert_eq!(loaded.heartbeat(heartbeat("g", &ids[1], 2)), ErrorCode::NONE);
    loaded.advance(4_999);
    assert_eq!(loaded.group("g").members.len(), 2);
    loaded.advance(1);
    assert_eq!(member_ids(loaded.group("g")), vec![ids[1].clone()], "the silent member goes");
    loaded.advance(5_000);
    assert!(loaded.group("g").is(GroupState::Empty));
}

/// 108. G: log containing a record of unknown type (key version 255). W: load. T: skipped, load succeeds.
#[test]
fn item_108_unknown_record_types_are_skipped() {
    let mut kit = Kit::new();
    kit.stable("g", 1);
    let mut raws = kit.raw_records();
    raws.insert(1, RawRecord { key: Bytes::from_static(&[0, 255, 0, 1, b'x']), value: Some(Bytes::from_static(b"whatever")) });
    raws.push(RawRecord { key: Bytes::from_static(&[0, 9, 0, 1, b'g']), value: None });
    let loaded = Kit::loaded(config(), kit.now, &raws);
    assert!(loaded.group("g").is(GroupState::Stable));
    assert_eq!(loaded.records.len(), kit.records.len());
}

/// 109. G: GroupMetadata tombstone after a value. W: load. T: group absent.
#[test]
fn item_109_group_tombstone_removes_the_group() {
    let mut kit = Kit::new();
    kit.stable("g", 1);
    let mut raws = kit.raw_records();
    raws.push(Record::Group { group: "g".into(), value: None }.encode());
    let loaded = Kit::loaded(config(), kit.now, &raws);
    assert!(loaded.shard.group("g").is_none());
}

/// 110. G: group PreparingRebalance with parked joins / CompletingRebalance with parked syncs. W: partition unloaded. T: parked requests answered NOT_COORDINATOR.
///
/// Corral unloads only at shutdown, so groups are not marked Dead.
#[test]
fn item_110_unload_answers_parked_requests() {
    let mut kit = Kit::new();
    let ids = kit.stable("preparing", 2);
    let join_parked = kit.join(join("preparing", &ids[0]));
    let answers = kit.join_all(vec![join("completing", ""); 2]);
    let sync_parked = kit.sync(sync("completing", &answers[1].0, 2, &[]));
    let mut replies = kit.shard.fail_parked(ErrorCode::NOT_COORDINATOR);
    replies.sort_by_key(|(id, _)| *id);
    assert_eq!(
        replies,
        vec![
            (join_parked, Reply::Join(JoinResult::error(ErrorCode::NOT_COORDINATOR, &ids[0]))),
            (sync_parked, Reply::Sync(SyncResult::error(ErrorCode::NOT_COORDINATOR))),
        ]
    );
}

// ============================================================================ L. describe

/// 112. G: Stable group. W: DescribeGroups. T: state "Stable", ProtocolData = protocol name, members with metadata and assignment.
#[test]
fn item_112_describe_stable() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    let d = kit.shard.describe("g").expect("known");
    assert_eq!((d.state, d.protocol_type.as_str(), d.protocol_data.as_str()), ("Stable", "consumer", "range"));
    let members: BTreeMap<String, (Bytes, Bytes)> =
        d.members.iter().map(|m| (m.member_id.clone(), (m.metadata.clone(), m.assignment.clone()))).collect();
    for id in &ids {
        assert_eq!(members[id], (Bytes::from_static(b"m"), Bytes::from(format!("a-{id}"))));
    }
    assert!(d.members.iter().all(|m| m.client_id == "client" && m.client_host == "/127.0.0.1"));
}

/// 113. G: PreparingRebalance group. W: DescribeGroups. T: ProtocolData "", members without metadata.
#[test]
fn item_113_describe_rebalancing() {
    let mut kit = Kit::new();
    kit.stable("g", 2);
    let leader = kit.group("g").leader.clone().expect("leader");
    kit.join(join("g", &leader));
    let d = kit.shard.describe("g").expect("known");
    assert_eq!((d.state, d.protocol_data.as_str(), d.members.len()), ("PreparingRebalance", "", 2));
    assert!(d.members.iter().all(|m| m.metadata.is_empty()));
}

/// 114. G: unknown group. W: DescribeGroups v5. T: ErrorCode 0, GroupState "Dead", empty members.
///
/// The shard's half: it knows no such group; the API answers "Dead".
#[test]
fn item_114_describe_unknown() {
    let kit = Kit::new();
    assert_eq!(kit.shard.describe("nope"), None);
}

// ============================================================================ replay

/// Checks that a shard rebuilt from the records holds what the live one holds: for every live
/// group in Stable or Empty, the same generation, protocol, leader, state, members (with instance
/// ids and assignments) and offsets; and no group the live shard no longer has.
fn assert_replay_matches(kit: &Kit) {
    assert_matches(kit, &kit.replayed());
}

/// [`assert_replay_matches`] against a given rebuilt shard.
fn assert_matches(kit: &Kit, replayed: &super::shard::Shard) {
    let mut checked = 0;
    for live in kit.shard.groups() {
        if !matches!(live.state, GroupState::Stable | GroupState::Empty) {
            continue;
        }
        let r = replayed.group(&live.id).unwrap_or_else(|| panic!("group {} lost in replay", live.id));
        let id = &live.id;
        assert_eq!(r.state, live.state, "{id}: state");
        assert_eq!(r.generation, live.generation, "{id}: generation");
        assert_eq!(r.protocol_type, live.protocol_type, "{id}: protocol type");
        assert_eq!(r.protocol_name, live.protocol_name, "{id}: protocol name");
        assert_eq!(r.leader, live.leader, "{id}: leader");
        let members = |g: &Group| -> BTreeMap<String, (Option<String>, Bytes)> {
            g.members.values().map(|m| (m.id.clone(), (m.instance_id.clone(), m.assignment.clone()))).collect()
        };
        assert_eq!(members(r), members(live), "{id}: members");
        assert_eq!(r.static_members, live.static_members, "{id}: static members");
        assert_eq!(r.offsets, live.offsets, "{id}: offsets");
        checked += 1;
    }
    assert!(checked > 0, "nothing to compare");
    let live: HashSet<&str> = kit.shard.groups().map(|g| g.id.as_str()).collect();
    for g in replayed.groups() {
        assert!(live.contains(g.id.as_str()), "group {} came back in replay", g.id);
    }
}

#[test]
fn replay_stable_group_of_three_after_sync() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 3);
    kit.commit(commit("g", &ids[1], 2, &[("t", 0, 10), ("t", 1, 11)]));
    assert_replay_matches(&kit);
    assert_eq!(kit.replayed().group("g").map(|g| g.members.len()), Some(3));
}

#[test]
fn replay_group_that_went_empty() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 2);
    kit.commit(commit("g", &ids[0], 2, &[("t", 0, 1)]));
    kit.leave("g", &[(&ids[0], None), (&ids[1], None)]);
    assert!(kit.group("g").is(GroupState::Empty));
    assert_replay_matches(&kit);
    // and the sessions of a group that died by timeout
    let ids = kit.stable("timed-out", 2);
    kit.commit(commit("timed-out", &ids[0], 2, &[("t", 0, 1)]));
    kit.advance(10_000);
    assert!(kit.group("timed-out").is(GroupState::Empty));
    assert_replay_matches(&kit);
    assert_eq!(kit.replayed().group("timed-out").map(|g| g.generation), Some(3));
}

#[test]
fn replay_static_member_replacement() {
    let mut kit = Kit::new();
    let ids = kit.stable_members(vec![static_join("g", "i-l"), static_join("g", "i-f"), join("g", "")]);
    // the leader and a follower are replaced without a rebalance
    let r = kit.join(static_join("g", "i-l"));
    assert_eq!(answered(&mut kit, r).error, ErrorCode::NONE);
    let r = kit.join(JoinInput { version: 9, ..static_join("g", "i-f") });
    assert_eq!(answered(&mut kit, r).error, ErrorCode::NONE);
    assert!(kit.group("g").is(GroupState::Stable));
    assert!(!kit.group("g").members.contains_key(&ids[0]));
    assert_replay_matches(&kit);
}

#[test]
fn replay_offsets_committed_then_some_deleted() {
    let mut kit = Kit::new();
    kit.commit(commit("simple", "", -1, &[("a", 0, 1), ("a", 1, 2), ("b", 0, 3)]));
    kit.delete_offsets("simple", &[("a", 1), ("b", 0)]);
    kit.commit(commit("simple", "", -1, &[("a", 0, 5)])); // a later commit replaces the first
    let ids = kit.stable("consumers", 1);
    kit.commit(commit("consumers", &ids[0], 1, &[("x", 0, 1), ("y", 0, 2)]));
    kit.delete_offsets("consumers", &[("y", 0)]); // unparsable subscriptions: subscribed to all
    kit.leave("consumers", &[(&ids[0], None)]);
    kit.delete_offsets("consumers", &[("y", 0)]);
    kit.topic_deleted("x");
    assert_eq!(kit.shard.fetch_offsets("simple", None, false), vec![fetched("a", 0, 5, -1, "")]);
    assert!(kit.shard.fetch_offsets("consumers", None, false).is_empty());
    assert_replay_matches(&kit);
}

#[test]
fn replay_deleted_group() {
    let mut kit = Kit::new();
    let ids = kit.stable("deleted", 1);
    kit.commit(commit("deleted", &ids[0], 1, &[("t", 0, 1)]));
    kit.leave("deleted", &[(&ids[0], None)]);
    assert_eq!(kit.delete_group("deleted"), ErrorCode::NONE);
    kit.commit(commit("simple", "", -1, &[("t", 0, 1)]));
    assert_eq!(kit.delete_group("simple"), ErrorCode::NONE);
    kit.stable("alive", 2);
    assert_replay_matches(&kit);
    let replayed = kit.replayed();
    assert!(replayed.group("deleted").is_none() && replayed.group("simple").is_none());
}

/// Issue "durable storage": a shard rebuilt from its offsets log on storage — through segment
/// files with small segments, before and after compaction — equals the live shard.
#[test]
fn replay_through_the_log_before_and_after_compaction() {
    let mut kit = Kit::new();
    let ids = kit.stable("g", 3);
    for round in 0..40 {
        kit.commit(commit("g", &ids[round % 3], 2, &[("t", (round % 4) as i32, round as i64)]));
    }
    kit.commit(commit("simple", "", -1, &[("a", 0, 1), ("a", 1, 2)]));
    kit.delete_offsets("simple", &[("a", 1)]);
    let gone = kit.stable("gone", 1);
    kit.leave("gone", &[(&gone[0], None)]);
    assert_eq!(kit.delete_group("gone"), ErrorCode::NONE);
    let left = kit.stable("left", 2);
    kit.commit(commit("left", &left[0], 2, &[("t", 0, 7)]));
    kit.leave("left", &[(&left[0], None), (&left[1], None)]);
    for compact in [false, true] {
        let (replayed, stats) = kit.replayed_through_log(compact);
        assert_matches(&kit, &replayed);
        if compact {
            let stats = stats.expect("compacted");
            assert!(stats.bytes_out < stats.bytes_in / 2, "{stats:?}");
        }
    }
}
