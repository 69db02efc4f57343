//! Members joining consumer groups as a real client does (the v4+ two-step join, SyncGroup,
//! heartbeats), until every group of a run has settled: what `coordinator` and `join-storm`
//! start from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral_testkit::records::consumer_subscription;
use corral_testkit::{Client, s};
use kafka_protocol::messages::*;

use crate::kafka::{TOPIC, connect};

/// A member of a benchmark group, as a real client would be after joining.
pub struct Member {
    pub conn: Client,
    pub member_id: String,
    pub generation: i32,
    pub group: String,
}

/// Joins one member (the v4+ two-step join) and, when leader, assigns round-robin.
async fn join_member(conn: &mut Client, group: &str, member_id: &mut String) -> std::io::Result<(i32, bool)> {
    loop {
        let r = conn
            .call(
                5,
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_member_id(s(member_id))
                    .with_session_timeout_ms(60_000)
                    // short, so a broker that waits out the rebalance timeout finishes in time
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![
                        join_group_request::JoinGroupRequestProtocol::default()
                            .with_name(s("range"))
                            .with_metadata(consumer_subscription(&[TOPIC])),
                    ]),
            )
            .await?;
        match r.error_code {
            0 => {
                *member_id = r.member_id.to_string();
                let leader = r.leader == r.member_id;
                let assignments = if leader {
                    r.members
                        .iter()
                        .map(|m| {
                            sync_group_request::SyncGroupRequestAssignment::default()
                                .with_member_id(m.member_id.clone())
                                .with_assignment(Bytes::from_static(b"a"))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let sr = conn
                    .call(
                        3,
                        &SyncGroupRequest::default()
                            .with_group_id(GroupId(s(group)))
                            .with_member_id(s(member_id))
                            .with_generation_id(r.generation_id)
                            .with_assignments(assignments),
                    )
                    .await?;
                if sr.error_code == 0 {
                    return Ok((r.generation_id, leader));
                }
                if sr.error_code != 27 {
                    return Err(std::io::Error::other(format!("SyncGroup error {}", sr.error_code)));
                }
            }
            79 => *member_id = r.member_id.to_string(),
            25 => member_id.clear(),
            code => return Err(std::io::Error::other(format!("JoinGroup error {code}"))),
        }
    }
}

/// Group names unique to this process, so that a scenario never meets the members an
/// earlier scenario left behind in the same broker (they linger until their session ends).
pub fn group_name(g: usize) -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    });
    format!("bench-{tag}-{g}")
}

/// Connects, retrying until the deadline: thousands of members connecting at once overflow
/// the server's listen backlog, and some connects fail before the server has accepted them.
async fn connect_until(target: &str, deadline: Instant) -> std::io::Result<Client> {
    loop {
        match connect(target).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Where members connect: `target` itself, or (several proxies sharing the coordinator) each
/// group's coordinator as FindCoordinator on `target` names it — looked up once per group,
/// again when a member's connection fails.
#[derive(Debug)]
pub struct Route {
    target: String,
    coordinators: Option<std::sync::Mutex<std::collections::HashMap<String, String>>>,
}

impl Route {
    async fn lookup(&self, conn: &mut Client, group: &str) -> Option<String> {
        let r = conn.call(3, &FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0)).await.ok()?;
        (r.error_code == 0).then(|| format!("{}:{}", r.host.as_str(), r.port))
    }

    /// Resolves every group's coordinator over one connection (`find`), or routes to `target`.
    pub async fn new(target: &str, groups: &[String], find: bool) -> std::io::Result<Route> {
        let mut route = Route { target: target.to_string(), coordinators: None };
        if find {
            let mut conn = connect(target).await?;
            let mut map = std::collections::HashMap::new();
            for g in groups {
                if let Some(addr) = route.lookup(&mut conn, g).await {
                    map.insert(g.clone(), addr);
                }
            }
            route.coordinators = Some(std::sync::Mutex::new(map));
        }
        Ok(route)
    }

    /// A connection for a member of `group`; `stale`: its last one failed (look again).
    async fn connect(&self, group: &str, stale: bool, deadline: Instant) -> std::io::Result<Client> {
        let Some(map) = &self.coordinators else { return connect_until(&self.target, deadline).await };
        loop {
            let known = map.lock().expect("route lock").get(group).cloned().filter(|_| !stale);
            let addr = match known {
                Some(a) => Some(a),
                None => {
                    let mut c = connect_until(&self.target, deadline).await?;
                    let a = self.lookup(&mut c, group).await;
                    if let Some(a) = &a {
                        map.lock().expect("route lock").insert(group.to_string(), a.clone());
                    }
                    a
                }
            };
            if let Some(addr) = addr
                && let Ok(conn) = connect(&addr).await
            {
                return Ok(conn);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no coordinator found for {group}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One member until it holds an assignment every other member has seen stable: join, sync,
/// heartbeat every 100 ms, rejoin on any group error, reconnect on a broken connection.
async fn converge_member(route: &Route, group: &str, done: &AtomicU64, everyone: usize, deadline: Instant) -> std::io::Result<Member> {
    let mut conn = route.connect(group, false, deadline).await?;
    let mut member_id = String::new();
    let mut generation = -1;
    let mut settled = false;
    let mut last = String::from("none");
    let unsettle = |settled: &mut bool| {
        if *settled {
            *settled = false;
            done.fetch_sub(1, Ordering::SeqCst);
        }
    };
    loop {
        if Instant::now() > deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the group did not settle (last error: {last})")));
        }
        if generation < 0 {
            match join_member(&mut conn, group, &mut member_id).await {
                Ok((g, _)) => generation = g,
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    conn = route.connect(group, true, deadline).await?;
                    continue;
                }
            }
        }
        let hb = HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(&member_id)).with_generation_id(generation);
        match conn.call(3, &hb).await {
            Ok(r) if r.error_code == 0 => {
                if !settled {
                    settled = true;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                if done.load(Ordering::SeqCst) as usize == everyone {
                    // everyone has been stable once: confirm ours still is
                    if matches!(conn.call(3, &hb).await, Ok(r) if r.error_code == 0) {
                        return Ok(Member { conn, member_id, generation, group: group.to_string() });
                    }
                    unsettle(&mut settled);
                    generation = -1;
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(r) => {
                last = format!("Heartbeat error {}", r.error_code);
                unsettle(&mut settled);
                generation = -1;
            }
            Err(e) => {
                last = e.to_string();
                unsettle(&mut settled);
                generation = -1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                conn = route.connect(group, true, deadline).await?;
            }
        }
    }
}

/// Every member joins and syncs, then heartbeats until a whole pass succeeds. Returns the
/// members and the time until all held an assignment of the final generation, or an error
/// when the groups did not settle within `limit`.
pub async fn converge(
    target: &str,
    groups: usize,
    members: usize,
    find: bool,
    limit: Duration,
) -> std::io::Result<(Vec<Member>, Duration)> {
    let started = Instant::now();
    let deadline = started + limit;
    let done = Arc::new(AtomicU64::new(0));
    let names: Vec<String> = (0..groups).map(group_name).collect();
    let route = Arc::new(Route::new(target, &names, find).await?);
    let mut tasks = Vec::new();
    for g in 0..groups {
        for _ in 0..members {
            let route = route.clone();
            let group = group_name(g);
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                // a broker may hold a JoinGroup without answering: the deadline bounds every call
                match tokio::time::timeout_at(deadline.into(), converge_member(&route, &group, &done, groups * members, deadline)).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the group did not settle (a request went unanswered)"))
                    }
                }
            }));
        }
    }
    let mut out = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await.map_err(std::io::Error::other).and_then(|r| r) {
            Ok(m) => out.push(m),
            Err(e) => {
                let settle = e.kind() == std::io::ErrorKind::TimedOut;
                if first_error.as_ref().is_none_or(|(was_settle, _)| *was_settle && !settle) {
                    first_error = Some((settle, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok((out, started.elapsed())),
    }
}
