//! Several corral proxies sharing the coordinator through the upstream cluster
//! (`--cluster-name`): each serves the shards the upstream group `__corral-<name>` assigns it.
//! The upstream is a corral broker (it fences the shards' producers, which librdkafka's mock
//! cluster does not do). Real clients (librdkafka through the rdkafka crate) consume and
//! commit through the proxies while proxies join, stop, are SIGKILLed and SIGSTOPped.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestProxy, TestServer};
use corral_testkit::{Client, ServerProcess, s};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const SESSION_MS: i32 = 3_000;
const GROUPS: usize = 40;

fn group(i: usize) -> String {
    format!("so-{i}")
}

/// What each proxy answers FindCoordinator for `group`: the coordinator's address, or the error.
async fn coordinator_via(proxy: SocketAddr, group: &str) -> Result<SocketAddr, String> {
    let mut c = Client::connect(proxy, "scale-out-test").await.map_err(|e| e.to_string())?;
    let (r, _): (FindCoordinatorResponse, usize) =
        c.call_leaving(3, &FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0)).await.map_err(|e| e.to_string())?;
    if r.error_code != 0 {
        return Err(format!("error {}", r.error_code));
    }
    format!("{}:{}", r.host.as_str(), r.port).parse().map_err(|e| format!("{e}"))
}

/// Waits until every proxy names the same coordinator for each of the groups, and that
/// coordinator is one of `proxies`: every group is served by exactly one live proxy. Returns
/// how long that took and how many groups each proxy serves.
async fn settled(proxies: &[SocketAddr], within: Duration) -> (Duration, BTreeMap<SocketAddr, usize>) {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < within {
        let mut owners: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        let mut ok = true;
        'groups: for g in 0..GROUPS {
            let mut seen = None;
            for p in proxies {
                match coordinator_via(*p, &group(g)).await {
                    Ok(c) if proxies.contains(&c) && seen.is_none_or(|s| s == c) => seen = Some(c),
                    other => {
                        last = format!("{} via {p}: {other:?} (others said {seen:?})", group(g));
                        ok = false;
                        break 'groups;
                    }
                }
            }
            *owners.entry(seen.expect("some proxy")).or_default() += 1;
        }
        if ok {
            return (started.elapsed(), owners);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the proxies did not agree on the groups' coordinators within {within:?}: {last}");
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let r = admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r.iter().all(|r| r.is_ok()), "{r:?}");
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let sends: Vec<_> = (0..n)
        .map(|i| producer.send_result(FutureRecord::to(topic).partition(i as i32 % partitions).key("k").payload("v")).unwrap())
        .collect();
    for s in sends {
        s.await.unwrap().unwrap();
    }
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap()
}

/// The committed offsets of `group` for partitions `0..partitions` of `topic`, read through
/// `bootstrap` by a consumer that does not join (`None` if the read failed).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Option<Vec<i64>> {
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).ok()?;
    Some(
        (0..partitions)
            .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            })
            .collect(),
    )
}

/// Consumes `want` records of `topic` in `group` through `bootstrap`, committing each; the
/// offsets it committed (acknowledged), by partition.
fn consume_and_commit(bootstrap: &str, group: &str, topic: &str, want: usize) -> HashMap<i32, i64> {
    let c = consumer(bootstrap, group);
    c.subscribe(&[topic]).unwrap();
    let mut acked = HashMap::new();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < want && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got += 1;
            if c.commit_message(&m, CommitMode::Sync).is_ok() {
                acked.insert(m.partition(), m.offset() + 1);
            }
        }
    }
    assert_eq!(got, want, "{group}: consumed {got} of {want} in 60 s");
    acked
}

/// Every offset each group's commits acknowledged is committed, read through each of `via`.
fn check_committed(label: &str, acked: &[HashMap<i32, i64>], via: &[String]) {
    for (g, acks) in acked.iter().enumerate() {
        for b in via {
            let c = committed(b, &group(g), "so-in", 3).unwrap_or_else(|| panic!("{label}: no committed offsets via {b}"));
            for (p, off) in acks {
                assert!(
                    c[*p as usize] >= *off,
                    "{label}: {} partition {p} committed {} < acknowledged {off} (via {b})",
                    group(g),
                    c[*p as usize]
                );
            }
        }
    }
}

/// The upstream lets the proxies' membership use a 3 s session (Kafka's floor is 6 s).
fn low_session_floor(config: &mut corral::Config) {
    config.group_min_session_timeout_ms = 1_000;
}

/// An upstream corral broker and three in-process proxies sharing the coordinator.
async fn three_shared_proxies() -> (TestServer, Vec<TestProxy>) {
    let upstream = TestServer::start_with(low_session_floor).await;
    let mut proxies = Vec::new();
    for _ in 0..3 {
        proxies.push(TestProxy::start_with(&upstream.bootstrap(), shared).await);
    }
    (upstream, proxies)
}

fn shared(config: &mut corral::Config) {
    config.proxy_cluster_name = Some("scale".into());
    config.proxy_cluster_session_timeout_ms = SESSION_MS;
    config.mirror_offsets = false;
}

/// Three proxies split the shards; committed offsets read the same through every proxy; a
/// proxy that stops cleanly hands its shards over (no session timeout to wait out) and a
/// fourth that joins takes a share, with every committed offset still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_split_the_shards_and_hand_them_over_when_one_stops_or_joins() {
    let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::INFO).with_test_writer().try_init();
    let (upstream, mut proxies) = three_shared_proxies().await;
    let up = upstream.bootstrap();
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    let (took, owners) = settled(&addrs, Duration::from_secs(30)).await;
    eprintln!("three proxies settled in {took:?}: {owners:?}");
    assert_eq!(owners.len(), 3, "every proxy serves some of {GROUPS} groups: {owners:?}");

    let b0 = proxies[0].bootstrap();
    create_topic(&b0, "so-in", 3).await;
    produce(&b0, "so-in", 3, 60).await;
    // six groups, each consumed through a different proxy; each commits as it goes
    let mut acked = Vec::new();
    for g in 0..6 {
        let b = proxies[g % 3].bootstrap();
        let acks = tokio::task::spawn_blocking(move || consume_and_commit(&b, &group(g), "so-in", 30)).await.unwrap();
        acked.push(acks);
    }
    let all: Vec<String> = proxies.iter().map(|p| p.bootstrap()).collect();
    let (a, v) = (acked.clone(), all.clone());
    tokio::task::spawn_blocking(move || check_committed("three proxies", &a, &v)).await.unwrap();

    // a clean stop: its shards move at once (it leaves the upstream group)
    let stopped = proxies.remove(1);
    let stopped_at = Instant::now();
    stopped.stop().await.unwrap();
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    let (took, owners) = settled(&addrs, Duration::from_secs(30)).await;
    eprintln!("after a clean stop: settled {:?} after the stop began: {owners:?}", stopped_at.elapsed());
    assert!(took < Duration::from_millis(SESSION_MS as u64), "a clean stop waited out the session timeout ({took:?})");
    let via: Vec<String> = proxies.iter().map(|p| p.bootstrap()).collect();
    let a = acked.clone();
    tokio::task::spawn_blocking(move || check_committed("after a clean stop", &a, &via)).await.unwrap();

    // a fourth proxy joins and takes a share; the groups resume where they committed
    proxies.push(TestProxy::start_with(&up, shared).await);
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    let (took, owners) = settled(&addrs, Duration::from_secs(30)).await;
    eprintln!("a third proxy joined: settled in {took:?}: {owners:?}");
    assert_eq!(owners.len(), 3, "the new proxy serves some groups: {owners:?}");
    for g in 0..6 {
        let b = proxies[2].bootstrap();
        let acks = tokio::task::spawn_blocking(move || consume_and_commit(&b, &group(g), "so-in", 30)).await.unwrap();
        // each group had consumed 30 of 60: it gets the other 30, from where it committed
        for (p, off) in &acks {
            assert_eq!(*off, 20, "{} partition {p} resumed and read to the end", group(g));
        }
    }
    for p in proxies {
        p.stop().await.unwrap();
    }
    upstream.stop().await;
}

fn spawn_proxy(up: &str, config: &std::path::Path) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["proxy", "--upstream", up, "--listen", "127.0.0.1:0", "--ephemeral", "--cluster-name", "chaos", "--config"]).arg(config);
    ServerProcess::spawn_logged(&mut cmd, Duration::from_secs(30)).unwrap()
}

fn signal(p: &ServerProcess, sig: &str) {
    assert!(Command::new("kill").args([sig, &p.pid().to_string()]).status().unwrap().success());
}

/// The committers of the chaos test: one consumer per group, bootstrapped on every proxy,
/// consuming and committing each record; what each commit acknowledged is in the ledger.
struct Committers {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<HashMap<(usize, i32), i64>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Committers {
    /// Two consumers per group, so partitions are shared out and move between members.
    fn start(bootstrap: &str, groups: usize, topic: &str) -> Committers {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<HashMap<(usize, i32), i64>>> = Arc::default();
        let threads = (0..groups * 2)
            .map(|i| {
                let g = i / 2;
                let (b, t, stop, acked) = (bootstrap.to_string(), topic.to_string(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let c = consumer(&b, &format!("chaos-{g}"));
                    c.subscribe(&[&t]).unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                            if c.commit_message(&m, CommitMode::Sync).is_ok() {
                                let mut a = acked.lock().unwrap();
                                let e = a.entry((g, m.partition())).or_insert(0);
                                *e = (*e).max(m.offset() + 1);
                            }
                            // a steady trickle, not a flood: commits keep flowing through every step
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Committers { stop, acked, threads }
    }

    fn total(&self) -> i64 {
        self.acked.lock().unwrap().values().sum()
    }

    fn snapshot(&self) -> HashMap<(usize, i32), i64> {
        self.acked.lock().unwrap().clone()
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// The partitions each member of `group` is assigned in the generation its coordinator
/// describes (found through `via`): DescribeGroups v5, each member's ConsumerProtocol
/// assignment read. `None` while the group cannot be described (moving, rebalancing).
async fn assignments(via: SocketAddr, group: &str) -> Option<Vec<Vec<i32>>> {
    let coordinator = coordinator_via(via, group).await.ok()?;
    let mut c = Client::connect(coordinator, "scale-out-test").await.ok()?;
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let (r, _): (DescribeGroupsResponse, usize) = c.call_leaving(5, &req).await.ok()?;
    let g = r.groups.first().filter(|g| g.error_code == 0 && g.group_state.as_str() == "Stable")?;
    g.members.iter().map(|m| parse_assignment(&m.member_assignment)).collect()
}

/// The partitions of a ConsumerProtocol assignment (every topic's; the test uses one topic).
fn parse_assignment(b: &[u8]) -> Option<Vec<i32>> {
    let mut at = 2usize;
    let read_i32 = |at: &mut usize| -> Option<i32> {
        let v = i32::from_be_bytes(b.get(*at..*at + 4)?.try_into().ok()?);
        *at += 4;
        Some(v)
    };
    let topics = read_i32(&mut at)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
        at += 2 + len;
        for _ in 0..read_i32(&mut at)? {
            out.push(read_i32(&mut at)?);
        }
    }
    Some(out)
}

/// After a step: every acknowledged commit is there (read through `via`), no committed offset
/// went backwards since the last check, no partition of a group has two owners in the
/// generation its coordinator describes, and the committers keep committing.
async fn check_step(label: &str, via: &str, committers: &Committers, last: &mut HashMap<(usize, i32), i64>, groups: usize) {
    for g in 0..groups {
        let group = format!("chaos-{g}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let members = loop {
            if let Some(m) = assignments(via.parse().unwrap(), &group).await {
                break m;
            }
            assert!(Instant::now() < deadline, "{label}: {group} was not described Stable within 20 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut owners: HashMap<i32, usize> = HashMap::new();
        for (m, parts) in members.iter().enumerate() {
            for p in parts {
                if let Some(other) = owners.insert(*p, m) {
                    panic!("{label}: {group} partition {p} has two owners in one generation (members {other} and {m}): {members:?}");
                }
            }
        }
        assert_eq!(owners.len(), 4, "{label}: {group}: every partition of chaos-in has an owner: {members:?}");
    }
    let acked = committers.snapshot();
    let via = via.to_string();
    let read =
        tokio::task::spawn_blocking(move || (0..groups).map(|g| committed(&via, &format!("chaos-{g}"), "chaos-in", 4)).collect::<Vec<_>>())
            .await
            .unwrap();
    for (g, offsets) in read.iter().enumerate() {
        let offsets = offsets.as_ref().unwrap_or_else(|| panic!("{label}: chaos-{g}'s committed offsets could not be read"));
        for (p, off) in offsets.iter().enumerate() {
            let key = (g, p as i32);
            let a = acked.get(&key).copied().unwrap_or(-1);
            assert!(*off >= a, "{label}: chaos-{g} partition {p}: committed {off} < acknowledged {a}: an acknowledged commit was lost");
            let before = last.get(&key).copied().unwrap_or(-1);
            assert!(*off >= before, "{label}: chaos-{g} partition {p}: committed offset went back from {before} to {off}");
            last.insert(key, *off);
        }
    }
    let before = committers.total();
    let deadline = Instant::now() + Duration::from_secs(20);
    while committers.total() < before + groups as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        committers.total() >= before + groups as i64,
        "{label}: the committers stopped committing ({before} -> {})",
        committers.total()
    );
}

/// Three proxies; a fourth joins; one stops cleanly; one is SIGKILLed; one is SIGSTOPped past
/// its session timeout and then SIGCONTed — while real consumers (two per group, several
/// groups) commit continuously: after each step every group is served by exactly one live
/// proxy, no acknowledged commit is lost, no committed offset goes back, no partition of a
/// group has two owners in one generation, and the consumers keep committing. (The SIGSTOPped proxy's shards move on; when it wakes, the
/// upstream refuses its writes — its producers were fenced — and it serves nothing stale.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_killed_paused_and_replaced_lose_no_committed_offset() {
    let upstream = TestServer::start_with(low_session_floor).await;
    let up = upstream.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, format!("\"proxy.cluster.session.timeout.ms\" = {SESSION_MS}\n\"mirror.offsets\" = false\n")).unwrap();
    let mut proxies: Vec<ServerProcess> = (0..3).map(|_| spawn_proxy(&up, &config)).collect();
    let addrs = |ps: &[ServerProcess]| ps.iter().map(|p| p.addr()).collect::<Vec<_>>();
    settled(&addrs(&proxies), Duration::from_secs(30)).await;
    let bootstrap = addrs(&proxies).iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, "chaos-in", 4).await;
    produce(&bootstrap, "chaos-in", 4, 20_000).await;
    let groups = 4;
    let committers = Committers::start(&bootstrap, groups, "chaos-in");
    let mut last = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while committers.total() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    check_step("three proxies", &addrs(&proxies)[0].to_string(), &committers, &mut last, groups).await;

    // a fourth proxy joins and takes a share
    proxies.push(spawn_proxy(&up, &config));
    let (took, owners) = settled(&addrs(&proxies), Duration::from_secs(30)).await;
    eprintln!("a fourth proxy joined: settled {took:?} later: {owners:?}");
    check_step("after a fourth proxy joined", &addrs(&proxies)[3].to_string(), &committers, &mut last, groups).await;

    // a clean stop: it leaves the upstream group, its shards move at once
    let mut stopping = proxies.remove(3);
    assert!(stopping.terminate().unwrap().success());
    let (took, owners) = settled(&addrs(&proxies), Duration::from_secs(30)).await;
    eprintln!("a clean stop: settled {took:?} later: {owners:?}");
    check_step("after a clean stop", &addrs(&proxies)[0].to_string(), &committers, &mut last, groups).await;

    // SIGKILL: its shards move once its session times out
    let mut killed = proxies.remove(0);
    killed.kill().unwrap();
    let (took, owners) = settled(&addrs(&proxies), Duration::from_secs(30)).await;
    eprintln!("SIGKILL: every group served again {took:?} later: {owners:?}");
    check_step("after a SIGKILL", &addrs(&proxies)[0].to_string(), &committers, &mut last, groups).await;

    // SIGSTOP past the session timeout: the other takes its shards; SIGCONT: it gives them up
    // before serving again, and takes a share anew
    signal(&proxies[0], "-STOP");
    let live = vec![proxies[1].addr()];
    let (took, owners) = settled(&live, Duration::from_secs(30)).await;
    eprintln!("SIGSTOP: every group served by the other {took:?} later: {owners:?}");
    check_step("while a proxy is stopped", &live[0].to_string(), &committers, &mut last, groups).await;
    signal(&proxies[0], "-CONT");
    let (took, owners) = settled(&addrs(&proxies), Duration::from_secs(30)).await;
    eprintln!("SIGCONT: the woken proxy agrees again {took:?} later: {owners:?}");
    let woke = proxies[0].stderr().text();
    assert!(
        woke.contains("no heartbeat for a whole session") || woke.contains("every shard is given up"),
        "the woken proxy did not give its shards up: {}",
        woke.lines().filter(|l| l.contains("WARN")).collect::<Vec<_>>().join("\n")
    );
    check_step("after SIGCONT", &addrs(&proxies)[0].to_string(), &committers, &mut last, groups).await;

    committers.finish();
    for mut p in proxies {
        let _ = p.terminate();
    }
    upstream.stop().await;
}

/// Counts a consumer's assignments (each is a rebalance it took part in).
struct Assignments(Arc<Mutex<Vec<Vec<i32>>>>);

impl rdkafka::ClientContext for Assignments {}

impl rdkafka::consumer::ConsumerContext for Assignments {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = r {
            self.0.lock().unwrap().push(tpl.elements().iter().map(|e| e.partition()).collect());
        }
    }
}

/// A static member (group.instance.id) whose coordinating proxy stops: the shard moves, the
/// member finds the new coordinator and goes on — same assignment, no rebalance — as after a
/// Kafka coordinator failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_keeps_its_assignment_when_its_coordinator_proxy_stops() {
    let (upstream, mut proxies) = three_shared_proxies().await;
    let addrs: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    settled(&addrs, Duration::from_secs(30)).await;
    let bootstrap = addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",");
    create_topic(&bootstrap, "so-static-in", 2).await;
    produce(&bootstrap, "so-static-in", 2, 4_000).await;

    let assigned: Arc<Mutex<Vec<Vec<i32>>>> = Arc::default();
    let consumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let member = {
        let (b, assigned, consumed, stop) = (bootstrap.clone(), assigned.clone(), consumed.clone(), stop.clone());
        std::thread::spawn(move || {
            let c: BaseConsumer<Assignments> = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("group.id", "so-static")
                .set("group.instance.id", "so-static-1")
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "500")
                .create_with_context(Assignments(assigned))
                .unwrap();
            c.subscribe(&["so-static-in"]).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    let _ = c.commit_message(&m, CommitMode::Sync);
                    consumed.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let wait_consumed = |n: usize| {
        let consumed = consumed.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while consumed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            consumed.load(Ordering::Relaxed)
        }
    };
    assert!(wait_consumed(50).await >= 50, "the static member consumes");
    let before = assigned.lock().unwrap().clone();
    assert_eq!(before.len(), 1, "one assignment so far: {before:?}");

    // stop the proxy that coordinates the group
    let coordinator = coordinator_via(addrs[0], "so-static").await.unwrap();
    let i = proxies.iter().position(|p| p.addr == coordinator).expect("a proxy coordinates it");
    proxies.remove(i).stop().await.unwrap();
    let live: Vec<SocketAddr> = proxies.iter().map(|p| p.addr).collect();
    settled(&live, Duration::from_secs(30)).await;
    let moved_to = coordinator_via(live[0], "so-static").await.unwrap();
    assert_ne!(moved_to, coordinator);
    let now = consumed.load(Ordering::Relaxed);
    assert!(wait_consumed(now + 200).await >= now + 200, "the static member goes on consuming after its coordinator moved");
    let after = assigned.lock().unwrap().clone();
    assert_eq!(after, before, "no rebalance: the member kept its assignment");
    let members = assignments(live[0], "so-static").await.expect("the new coordinator describes the group");
    assert_eq!(members.len(), 1);
    stop.store(true, Ordering::Relaxed);
    member.join().unwrap();
    for p in proxies {
        p.stop().await.unwrap();
    }
    upstream.stop().await;
}
