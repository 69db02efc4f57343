//! The next-generation consumer protocol (KIP-848) end to end with a real librdkafka (the
//! rdkafka crate, librdkafka 2.12 with `group.protocol=consumer`): the coordinator computes the
//! assignment, members reconcile through ConsumerGroupHeartbeat. Three members share a topic
//! and consume every message once; a fourth joins while the others keep consuming (none ever
//! loses every partition: no stop-the-world); a member leaves; one is SIGKILLed and its
//! partitions move after the session timeout; a static member comes back to its partitions; a
//! subscription by regular expression picks up a topic created later; commit and resume; and a
//! classic group beside a consumer group on the same topic.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Poller, TestServer, child_consumer_exe, spawn_child_consumer, wait_for};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

const SECOND: Duration = Duration::from_secs(1);

/// The server: heartbeats every 200 ms (the coordinator tells members the interval), sessions
/// of 3 s, so that scenarios take seconds.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.group_consumer_heartbeat_interval_ms = 200;
        c.group_consumer_session_timeout_ms = 3_000;
    })
    .await
}

/// What a member saw: the partitions it owns (topic, partition), when it owned none after
/// owning some, and every message it consumed.
#[derive(Default)]
struct Seen {
    owned: BTreeSet<(String, i32)>,
    /// Times it was left with nothing after owning something (a stop-the-world would do that).
    emptied: usize,
    consumed: Vec<(String, i32, i64, String)>,
    /// When it last consumed a message.
    last: Option<Instant>,
    /// The longest time between two messages it consumed.
    largest_gap: Duration,
}

struct Recorder(Arc<Mutex<Seen>>);

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let mut s = self.0.lock().unwrap();
        match r {
            Rebalance::Assign(tpl) => s.owned.extend(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition()))),
            Rebalance::Revoke(tpl) => {
                let had = !s.owned.is_empty();
                for e in tpl.elements() {
                    s.owned.remove(&(e.topic().to_string(), e.partition()));
                }
                if had && s.owned.is_empty() {
                    s.emptied += 1;
                }
            }
            Rebalance::Error(_) => {}
        }
    }
}

/// A consumer of the consumer protocol, polling on its own thread until stopped.
struct Member {
    seen: Arc<Mutex<Seen>>,
    poller: Poller,
}

enum Subscription<'a> {
    Topics(&'a [&'a str]),
    Regex(&'a str),
}

impl Member {
    fn start(bootstrap: &str, group: &str, sub: Subscription<'_>, extra: &[(&str, &str)]) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "500");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        let consumer: BaseConsumer<Recorder> = config.create_with_context(Recorder(seen.clone())).unwrap();
        match sub {
            Subscription::Topics(t) => consumer.subscribe(t).unwrap(),
            Subscription::Regex(r) => consumer.subscribe(&[r]).unwrap(),
        }
        let s2 = seen.clone();
        let poller = Poller::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                    let mut s = s2.lock().unwrap();
                    let now = Instant::now();
                    if let Some(last) = s.last {
                        s.largest_gap = s.largest_gap.max(now - last);
                    }
                    s.last = Some(now);
                    s.consumed.push((m.topic().to_string(), m.partition(), m.offset(), v));
                    if m.offset() % 10 == 9 {
                        let _ = consumer.commit_message(&m, CommitMode::Sync);
                    }
                }
            }
            // dropping closes the consumer: its leave heartbeat
            drop(consumer);
        });
        Member { seen, poller }
    }

    fn topics(bootstrap: &str, group: &str, topics: &[&str]) -> Member {
        Member::start(bootstrap, group, Subscription::Topics(topics), &[])
    }

    fn owned(&self) -> BTreeSet<(String, i32)> {
        self.seen.lock().unwrap().owned.clone()
    }

    fn partitions_of(&self, topic: &str) -> BTreeSet<i32> {
        self.owned().into_iter().filter(|(t, _)| t == topic).map(|(_, p)| p).collect()
    }

    /// Stops polling and closes the consumer (its leave heartbeat).
    async fn stop(self) {
        self.poller.stop().await;
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let r = admin.create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let mut sends = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{tag}{topic}/{p}-{i}");
            sends.push(producer.send_result(FutureRecord::<(), _>::to(topic).partition(p).payload(&v)).unwrap());
        }
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
}

/// How often each value was consumed, over `members`.
fn counts(members: &[&Member]) -> HashMap<String, usize> {
    let mut n = HashMap::new();
    for m in members {
        for (_, _, _, v) in &m.seen.lock().unwrap().consumed {
            *n.entry(v.clone()).or_default() += 1;
        }
    }
    n
}

/// Every partition of `topic` (0..n) owned by exactly one of `members`.
fn covers(members: &[&Member], topic: &str, n: i32) -> bool {
    let mut all = Vec::new();
    for m in members {
        all.extend(m.partitions_of(topic));
    }
    let set: BTreeSet<i32> = all.iter().copied().collect();
    all.len() == n as usize && set == (0..n).collect()
}

/// Three members of the consumer protocol share a 6-partition topic two partitions each, and
/// consume every message exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_six_partitions_and_consume_everything_once() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "six", 6).await;
    let members: Vec<Member> = (0..3).map(|_| Member::topics(&b, "g-848", &["six"])).collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(30 * SECOND, "a balanced assignment", || covers(&refs, "six", 6) && refs.iter().all(|m| m.owned().len() == 2)).await;
    produce(&b, "six", 6, 50, "").await;
    wait_for(30 * SECOND, "every message", || counts(&refs).len() == 300).await;
    for m in members.iter() {
        m.poller.halt();
    }
    let counts = counts(&refs);
    let twice: Vec<&String> = counts.iter().filter(|(_, n)| **n > 1).map(|(v, _)| v).collect();
    assert!(twice.is_empty(), "messages consumed more than once: {twice:?}");
    for m in members {
        m.stop().await;
    }
    server.stop().await;
}

/// A fourth member joins while three consume a steady stream: the members that give
/// partitions up keep the rest (never left with nothing), the newcomer gets its share, and
/// every message is consumed. The largest gap in consumption is printed for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_joins_without_stopping_the_others() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "eight", 8).await;
    let mut members: Vec<Member> = (0..3).map(|_| Member::topics(&b, "g-join", &["eight"])).collect();
    {
        let refs: Vec<&Member> = members.iter().collect();
        wait_for(30 * SECOND, "three members owning all", || covers(&refs, "eight", 8)).await;
    }
    // a steady stream while the fourth joins
    let streaming = Arc::new(AtomicBool::new(true));
    let (s2, b2) = (streaming.clone(), b.clone());
    let producer = tokio::spawn(async move {
        let mut round = 0;
        while s2.load(Ordering::Relaxed) {
            produce(&b2, "eight", 8, 5, &format!("r{round}:")).await;
            round += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        round
    });
    tokio::time::sleep(SECOND).await;
    members.push(Member::topics(&b, "g-join", &["eight"]));
    let refs: Vec<&Member> = members.iter().collect();
    let took = wait_for(30 * SECOND, "four members owning all, two each", || {
        covers(&refs, "eight", 8) && refs.iter().all(|m| m.owned().len() == 2)
    })
    .await;
    tokio::time::sleep(SECOND).await;
    streaming.store(false, Ordering::Relaxed);
    let rounds = producer.await.unwrap();
    let expected = rounds * 8 * 5;
    wait_for(30 * SECOND, "every message of the stream", || counts(&refs).len() == expected).await;
    for (i, m) in refs.iter().enumerate().take(3) {
        assert_eq!(m.seen.lock().unwrap().emptied, 0, "member {i} was left with no partition while the fourth joined");
    }
    let gap = refs[..3].iter().map(|m| m.seen.lock().unwrap().largest_gap).max().unwrap();
    println!("fourth member settled in {took:?}; largest gap in an existing member's consumption: {gap:?}");
    for m in members {
        m.stop().await;
    }
    server.stop().await;
}

/// A member that leaves (its leave heartbeat) hands its partitions to the others at once; one
/// that is SIGKILLed (a process of its own: no leave, its socket just dies) loses them after
/// the session timeout (3 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_and_killed_members_hand_their_partitions_over() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "six", 6).await;
    let mut members: Vec<Member> = (0..3).map(|_| Member::topics(&b, "g-leave", &["six"])).collect();
    {
        let refs: Vec<&Member> = members.iter().collect();
        wait_for(30 * SECOND, "a balanced assignment", || covers(&refs, "six", 6) && refs.iter().all(|m| m.owned().len() == 2)).await;
    }
    members.pop().unwrap().stop().await;
    let refs: Vec<&Member> = members.iter().collect();
    let took = wait_for(30 * SECOND, "two members owning all after a leave", || covers(&refs, "six", 6)).await;
    assert!(took < 3 * SECOND, "a clean leave took {took:?}, as long as a session timeout");
    // a third member in a process of its own, then SIGKILLed
    let exe = tokio::task::spawn_blocking(child_consumer_exe).await.unwrap();
    let (mut child, child_owned) = spawn_child_consumer(exe, &[b.as_str(), "g-leave", "six", "consumer"]);
    wait_for(30 * SECOND, "three members with two partitions each", || {
        refs.iter().all(|m| m.owned().len() == 2) && child_owned.lock().unwrap().len() == 2
    })
    .await;
    let killed = Instant::now();
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    wait_for(30 * SECOND, "the survivors to own all six", || covers(&refs, "six", 6)).await;
    let took = killed.elapsed();
    println!("SIGKILLed member's partitions moved after {took:?} (session timeout 3 s)");
    assert!(took >= 2 * SECOND, "the killed member's partitions moved after {took:?}, before its session could end");
    for m in members {
        m.stop().await;
    }
    server.stop().await;
}

/// A static member (group.instance.id) that closes and comes back gets its partitions back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_comes_back_to_its_partitions() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "six", 6).await;
    let a = Member::start(&b, "g-static", Subscription::Topics(&["six"]), &[("group.instance.id", "alpha")]);
    let other = Member::topics(&b, "g-static", &["six"]);
    wait_for(30 * SECOND, "a balanced assignment", || covers(&[&a, &other], "six", 6) && a.owned().len() == 3).await;
    let before = a.owned();
    a.stop().await;
    let a = Member::start(&b, "g-static", Subscription::Topics(&["six"]), &[("group.instance.id", "alpha")]);
    wait_for(30 * SECOND, "the static member's partitions back", || a.owned() == before).await;
    assert_eq!(other.owned().len(), 3, "the other member's partitions moved");
    a.stop().await;
    other.stop().await;
    server.stop().await;
}

/// A subscription by regular expression picks up a topic created after the member joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regex_subscription_picks_up_a_new_topic() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "logs-a", 2).await;
    create_topic(&b, "other", 2).await;
    let m = Member::start(&b, "g-regex", Subscription::Regex("^logs-.*"), &[]);
    wait_for(30 * SECOND, "logs-a assigned", || m.partitions_of("logs-a").len() == 2).await;
    create_topic(&b, "logs-b", 3).await;
    wait_for(30 * SECOND, "logs-b assigned", || m.partitions_of("logs-b").len() == 3).await;
    assert!(m.partitions_of("other").is_empty());
    produce(&b, "logs-b", 3, 10, "").await;
    wait_for(30 * SECOND, "logs-b's messages", || counts(&[&m]).len() == 30).await;
    m.stop().await;
    server.stop().await;
}

/// Commits made through the consumer protocol (OffsetCommit v9 with the member epoch) are
/// where the next member of the group resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_resume() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "two", 2).await;
    produce(&b, "two", 2, 20, "").await;
    let m = Member::topics(&b, "g-resume", &["two"]);
    // commits every tenth offset: 9 and 19 of each partition, i.e. up to offset 20
    wait_for(30 * SECOND, "the first 40 messages", || counts(&[&m]).len() == 40).await;
    m.stop().await;
    produce(&b, "two", 2, 5, "later:").await;
    let m = Member::topics(&b, "g-resume", &["two"]);
    wait_for(30 * SECOND, "the new messages", || counts(&[&m]).len() == 10).await;
    tokio::time::sleep(SECOND / 2).await;
    let seen = counts(&[&m]);
    assert!(seen.keys().all(|v| v.starts_with("later:")), "read again what was committed: {seen:?}");
    m.stop().await;
    server.stop().await;
}

/// One application on the classic protocol and one on the consumer protocol read the same
/// topic in two groups; each group gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_and_consumer_groups_side_by_side() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "shared", 4).await;
    let modern: Vec<Member> = (0..2).map(|_| Member::topics(&b, "g-modern", &["shared"])).collect();
    let classic: Vec<Member> = (0..2)
        .map(|_| {
            Member::start(
                &b,
                "g-classic",
                Subscription::Topics(&["shared"]),
                &[("group.protocol", "classic"), ("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "500")],
            )
        })
        .collect();
    let m_refs: Vec<&Member> = modern.iter().collect();
    let c_refs: Vec<&Member> = classic.iter().collect();
    wait_for(30 * SECOND, "both groups assigned", || covers(&m_refs, "shared", 4) && covers(&c_refs, "shared", 4)).await;
    produce(&b, "shared", 4, 25, "").await;
    wait_for(30 * SECOND, "every message in both groups", || counts(&m_refs).len() == 100 && counts(&c_refs).len() == 100).await;
    // the coordinator lists one group of each type
    let types: BTreeMap<String, String> = list_group_types(&server).await;
    assert_eq!(types.get("g-modern").map(String::as_str), Some("consumer"));
    assert_eq!(types.get("g-classic").map(String::as_str), Some("classic"));
    for m in modern.into_iter().chain(classic) {
        m.stop().await;
    }
    server.stop().await;
}

/// Group id → group type, from ListGroups v5.
async fn list_group_types(server: &TestServer) -> BTreeMap<String, String> {
    use kafka_protocol::messages::ListGroupsRequest;
    let mut c = common::RawClient::connect(server.addr).await;
    let r = c.send(5, &ListGroupsRequest::default()).await;
    r.groups.into_iter().map(|g| (g.group_id.to_string(), g.group_type.to_string())).collect()
}

/// A consumer of the classic protocol joins a group of the consumer protocol (its JoinGroup,
/// SyncGroup and Heartbeat served by the consumer group): the three members share the topic,
/// two partitions each, and every message is consumed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_member_joins_a_consumer_group() {
    let server = server().await;
    let b = server.bootstrap();
    create_topic(&b, "six", 6).await;
    let mut members: Vec<Member> = (0..2).map(|_| Member::topics(&b, "g-mixed", &["six"])).collect();
    {
        let refs: Vec<&Member> = members.iter().collect();
        wait_for(30 * SECOND, "two members owning all", || covers(&refs, "six", 6)).await;
    }
    members.push(Member::start(
        &b,
        "g-mixed",
        Subscription::Topics(&["six"]),
        &[("group.protocol", "classic"), ("session.timeout.ms", "6000"), ("heartbeat.interval.ms", "200")],
    ));
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(30 * SECOND, "three members owning two each", || covers(&refs, "six", 6) && refs.iter().all(|m| m.owned().len() == 2)).await;
    produce(&b, "six", 6, 20, "").await;
    wait_for(30 * SECOND, "every message", || counts(&refs).len() == 120).await;
    for m in members.iter() {
        m.poller.halt();
    }
    let twice: Vec<String> = counts(&refs).into_iter().filter(|(_, n)| *n > 1).map(|(v, _)| v).collect();
    assert!(twice.is_empty(), "consumed more than once: {twice:?}");
    // the group is one consumer group, the classic member in it
    assert_eq!(list_group_types(&server).await.get("g-mixed").map(String::as_str), Some("consumer"));
    for m in members {
        m.stop().await;
    }
    server.stop().await;
}
