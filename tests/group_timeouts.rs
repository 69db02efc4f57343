//! The coordinator's timeouts over real sockets, in virtual time: each test runs under paused
//! tokio time (`start_paused`), with corral on the same runtime, so its timers and its clock
//! (`corral::clock`) advance only when every task waits, and jump straight to the next
//! deadline. Seconds of session and rebalance timeouts take milliseconds of real time, and the
//! instants asserted are exact, not "some time later". Items are those of
//! reference/kafka-group-coordinator.md §5.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{RawClient, TestServer};
use corral_testkit::s;
use kafka_protocol::messages::*;
use tokio::time::Instant;

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;

fn join(group: &str, member: &str, session_ms: i32, rebalance_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(rebalance_ms)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"m")),
        ])
}

/// A timer's answer came at `ms`, give or take the timer wheel's millisecond (a deadline is
/// kept in whole milliseconds and the wheel fires on the tick at or after it).
fn within(elapsed: Duration, ms: u64) {
    assert!(elapsed >= Duration::from_millis(ms) && elapsed <= Duration::from_millis(ms + 2), "answered after {elapsed:?}, not {ms} ms");
}

/// A member's connection and its member id (JoinGroup v5 hands one out first: MEMBER_ID_REQUIRED).
async fn member(server: &TestServer, group: &str, session_ms: i32, rebalance_ms: i32) -> (RawClient, String) {
    let mut c = RawClient::connect(server.addr).await;
    let r = c.send(5, &join(group, "", session_ms, rebalance_ms)).await;
    assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
    (c, r.member_id.to_string())
}

/// Sends a JoinGroup in the background; the answer and the virtual instant it arrived.
fn join_in_background(mut c: RawClient, req: JoinGroupRequest) -> tokio::task::JoinHandle<(RawClient, JoinGroupResponse, Instant)> {
    tokio::spawn(async move {
        let r = c.send(5, &req).await;
        (c, r, Instant::now())
    })
}

async fn sync(c: &mut RawClient, group: &str, member: &str, generation: i32, assign: &[&str]) -> SyncGroupResponse {
    let assignments = assign
        .iter()
        .map(|m| sync_group_request::SyncGroupRequestAssignment::default().with_member_id(s(m)).with_assignment(Bytes::from_static(b"a")))
        .collect();
    c.send(
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id(generation)
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(assignments),
    )
    .await
}

async fn heartbeat(c: &mut RawClient, group: &str, member: &str, generation: i32) -> i16 {
    c.send(4, &HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(member)).with_generation_id(generation))
        .await
        .error_code
}

/// The group's state and its members' ids.
async fn describe(c: &mut RawClient, group: &str) -> (String, Vec<String>) {
    let r = c.send(5, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))])).await;
    let g = &r.groups[0];
    (g.group_state.to_string(), g.members.iter().map(|m| m.member_id.to_string()).collect())
}

/// A one-member group, joined and synced (Stable): its connection, member id and generation.
async fn stable_one(server: &TestServer, group: &str, session_ms: i32, rebalance_ms: i32) -> (RawClient, String, i32) {
    let (mut c, id) = member(server, group, session_ms, rebalance_ms).await;
    let j = c.send(5, &join(group, &id, session_ms, rebalance_ms)).await;
    assert_eq!(j.error_code, 0);
    assert_eq!(sync(&mut c, group, &id, j.generation_id, &[&id]).await.error_code, 0);
    (c, id, j.generation_id)
}

/// Items 29 and 30: a new group's first join waits `group.initial.rebalance.delay.ms`
/// (3000 ms), and a member joining during the delay restarts it, up to the rebalance timeout:
/// first member at 0, second at 2999 ⇒ neither answered at 4502, both at 6000.
#[tokio::test(start_paused = true)]
async fn item_29_30_initial_delay_restarts_when_a_member_joins() {
    let server = TestServer::start_with(|c| c.group_initial_rebalance_delay_ms = 3000).await;
    let g = "delayed";
    let (a, a_id) = member(&server, g, 30_000, 9_000).await;
    let (b, b_id) = member(&server, g, 30_000, 9_000).await;
    let t0 = Instant::now();
    let first = join_in_background(a, join(g, &a_id, 30_000, 9_000));
    tokio::time::sleep_until(t0 + Duration::from_millis(2999)).await;
    assert!(!first.is_finished(), "the first join was answered before the delay ran out");
    let second = join_in_background(b, join(g, &b_id, 30_000, 9_000));
    tokio::time::sleep_until(t0 + Duration::from_millis(4502)).await;
    assert!(!first.is_finished() && !second.is_finished(), "answered before the restarted delay ran out");
    let (_, ra, at_a) = first.await.unwrap();
    let (_, rb, at_b) = second.await.unwrap();
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    for at in [at_a, at_b] {
        within(at - t0, 6000);
    }
}

/// Item 29 alone: one member, answered exactly at 3000 ms (not at 2999).
#[tokio::test(start_paused = true)]
async fn item_29_a_lone_member_waits_the_initial_delay() {
    let server = TestServer::start_with(|c| c.group_initial_rebalance_delay_ms = 3000).await;
    let (a, id) = member(&server, "alone", 30_000, 60_000).await;
    let t0 = Instant::now();
    let (_, r, at) = join_in_background(a, join("alone", &id, 30_000, 60_000)).await.unwrap();
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    within(at - t0, 3000);
}

/// Item 33: during a rebalance, a dynamic member that does not rejoin is removed when the
/// rebalance timeout (5 s) runs out; the member that rejoined is answered then, alone in the
/// new generation, and the one removed learns it is unknown.
#[tokio::test(start_paused = true)]
async fn item_33_a_member_that_does_not_rejoin_is_removed_at_the_rebalance_timeout() {
    let server = TestServer::start().await;
    let g = "rebalancing";
    let (mut a, a_id) = member(&server, g, 60_000, 5_000).await;
    let j1 = a.send(5, &join(g, &a_id, 60_000, 5_000)).await;
    assert_eq!(j1.generation_id, 1);
    assert_eq!(sync(&mut a, g, &a_id, 1, &[&a_id]).await.error_code, 0);
    let (b, b_id) = member(&server, g, 60_000, 5_000).await;
    // b joining the Stable group starts a rebalance; a never rejoins
    let t0 = Instant::now();
    let (_, rb, at) = join_in_background(b, join(g, &b_id, 60_000, 5_000)).await.unwrap();
    assert_eq!(rb.error_code, 0);
    within(at - t0, 5000);
    assert_eq!((rb.generation_id, rb.leader.as_str(), rb.members.len()), (2, b_id.as_str(), 1));
    assert_eq!(heartbeat(&mut a, g, &a_id, 1).await, UNKNOWN_MEMBER_ID);
}

/// Item 56: a join completes and nobody syncs: at the rebalance timeout after the join
/// completed every member pending sync is removed and the group is Empty. A heartbeat the
/// moment before is still answered NONE (item 65, CompletingRebalance).
#[tokio::test(start_paused = true)]
async fn item_56_members_that_never_sync_are_removed_at_the_rebalance_timeout() {
    let server = TestServer::start().await;
    let g = "never-synced";
    let (mut a, id) = member(&server, g, 60_000, 4_000).await;
    let j = a.send(5, &join(g, &id, 60_000, 4_000)).await;
    assert_eq!(j.error_code, 0);
    let t0 = Instant::now();
    let mut watcher = RawClient::connect(server.addr).await;
    tokio::time::sleep_until(t0 + Duration::from_millis(3999)).await;
    assert_eq!(heartbeat(&mut a, g, &id, j.generation_id).await, 0);
    assert_eq!(describe(&mut watcher, g).await, ("CompletingRebalance".to_string(), vec![id.clone()]));
    tokio::time::sleep_until(t0 + Duration::from_millis(4000)).await;
    tokio::task::yield_now().await;
    assert_eq!(describe(&mut watcher, g).await, ("Empty".to_string(), vec![]));
    assert_eq!(heartbeat(&mut a, g, &id, j.generation_id).await, UNKNOWN_MEMBER_ID);
}

/// Item 57: the leader synced, the follower did not: at the rebalance timeout the follower is
/// removed and the group rebalances (the leader's heartbeat: REBALANCE_IN_PROGRESS).
#[tokio::test(start_paused = true)]
async fn item_57_a_follower_that_never_syncs_is_removed() {
    // a short initial delay gathers both members into generation 1
    let server = TestServer::start_with(|c| c.group_initial_rebalance_delay_ms = 100).await;
    let g = "lagging-follower";
    let (a, a_id) = member(&server, g, 60_000, 4_000).await;
    let (b, b_id) = member(&server, g, 60_000, 4_000).await;
    let ja = join_in_background(a, join(g, &a_id, 60_000, 4_000));
    let jb = join_in_background(b, join(g, &b_id, 60_000, 4_000));
    let (a, ra, _) = ja.await.unwrap();
    let (b, rb, done) = jb.await.unwrap();
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    let ((mut leader, leader_id), (_follower, follower_id)) =
        if ra.leader.as_str() == a_id { ((a, a_id), (b, b_id)) } else { ((b, b_id), (a, a_id)) };
    assert_eq!(sync(&mut leader, g, &leader_id, 1, &[&leader_id, &follower_id]).await.error_code, 0);
    tokio::time::sleep_until(done + Duration::from_millis(3999)).await;
    assert_eq!(heartbeat(&mut leader, g, &leader_id, 1).await, 0);
    tokio::time::sleep_until(done + Duration::from_millis(4000)).await;
    tokio::task::yield_now().await;
    assert_eq!(heartbeat(&mut leader, g, &leader_id, 1).await, REBALANCE_IN_PROGRESS);
    let mut watcher = RawClient::connect(server.addr).await;
    assert_eq!(describe(&mut watcher, g).await, ("PreparingRebalance".to_string(), vec![leader_id.clone()]));
}

/// Item 66: heartbeats more often than the session timeout (10 s) keep a member for a minute;
/// once they stop, it is removed exactly one session timeout after the last one.
#[tokio::test(start_paused = true)]
async fn item_66_heartbeats_keep_a_member_and_silence_expires_it() {
    let server = TestServer::start().await;
    let g = "heartbeating";
    let (mut c, id, generation) = stable_one(&server, g, 10_000, 10_000).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(heartbeat(&mut c, g, &id, generation).await, 0);
    }
    let last = Instant::now();
    let mut watcher = RawClient::connect(server.addr).await;
    tokio::time::sleep_until(last + Duration::from_millis(9_999)).await;
    assert_eq!(describe(&mut watcher, g).await, ("Stable".to_string(), vec![id.clone()]));
    tokio::time::sleep_until(last + Duration::from_millis(10_000)).await;
    tokio::task::yield_now().await;
    assert_eq!(describe(&mut watcher, g).await, ("Empty".to_string(), vec![]));
    assert_eq!(heartbeat(&mut c, g, &id, generation).await, UNKNOWN_MEMBER_ID);
}
