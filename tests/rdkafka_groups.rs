//! Consumer groups end to end with a real librdkafka (the rdkafka crate): balanced assignment,
//! a member killed without leaving, a member that leaves cleanly, static membership across a
//! restart, commit and resume, and cooperative-sticky handover. Each scenario runs twice: on
//! corral in broker mode, and through `corral proxy` in front of librdkafka's three-broker mock
//! cluster (the `proxy_` tests), where the data goes to the mock's brokers and the group is
//! corral's.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestProxy, TestServer};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

const SECOND: Duration = Duration::from_secs(1);

/// What a member saw: every rebalance event, and the partitions it owns now.
#[derive(Default)]
struct Seen {
    events: Vec<(Instant, &'static str, Vec<i32>)>,
    owned: BTreeSet<i32>,
    consumed: Vec<(i32, i64, String)>,
}

struct Recorder(Arc<Mutex<Seen>>);

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let mut s = self.0.lock().unwrap();
        match r {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                s.owned.extend(parts.iter().copied());
                s.events.push((Instant::now(), "assign", parts));
            }
            Rebalance::Revoke(tpl) => {
                let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                for p in &parts {
                    s.owned.remove(p);
                }
                s.events.push((Instant::now(), "revoke", parts));
            }
            Rebalance::Error(_) => s.events.push((Instant::now(), "error", vec![])),
        }
    }
}

/// A consumer polling on its own thread until stopped.
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn consumer_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("enable.auto.commit", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

impl Member {
    fn start(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> Member {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let consumer: BaseConsumer<Recorder> =
            consumer_config(bootstrap, group, extra).create_with_context(Recorder(seen.clone())).unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let (s2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                    s2.lock().unwrap().consumed.push((m.partition(), m.offset(), v));
                }
            }
            // dropping closes the consumer: LeaveGroup for dynamic members
            drop(consumer);
        });
        Member { seen, stop, thread: Some(thread) }
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.seen.lock().unwrap().owned.clone()
    }

    fn events(&self) -> usize {
        self.seen.lock().unwrap().events.len()
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until `cond` holds, up to `limit`; returns how long it took.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Where a scenario runs: corral in broker mode, or a corral proxy in front of librdkafka's
/// mock cluster with three brokers.
enum Target {
    Broker(TestServer),
    Proxy { proxy: TestProxy, mock: MockCluster<'static, rdkafka::producer::DefaultProducerContext> },
}

impl Target {
    async fn broker() -> Target {
        Target::Broker(TestServer::start().await)
    }

    async fn proxy() -> Target {
        let mock = MockCluster::new(3).unwrap();
        let proxy = TestProxy::start(&mock.bootstrap_servers()).await;
        Target::Proxy { proxy, mock }
    }

    fn bootstrap(&self) -> String {
        match self {
            Target::Broker(s) => s.bootstrap(),
            Target::Proxy { proxy, .. } => proxy.bootstrap(),
        }
    }

    /// Creates a topic (admin CreateTopics on corral; the mock cluster has no CreateTopics, so
    /// there through its own API, with its three brokers leading the partitions in turn) and
    /// produces `per_partition` messages to each partition.
    async fn topic_with_messages(&self, topic: &str, partitions: i32, per_partition: usize) {
        match self {
            Target::Broker(_) => {
                let admin: AdminClient<DefaultClientContext> =
                    ClientConfig::new().set("bootstrap.servers", self.bootstrap()).create().unwrap();
                let r = admin
                    .create_topics(&[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))], &AdminOptions::new())
                    .await
                    .unwrap();
                assert!(r[0].is_ok(), "{r:?}");
            }
            Target::Proxy { mock, .. } => {
                mock.create_topic(topic, partitions, 3).unwrap();
                for p in 0..partitions {
                    mock.partition_leader(topic, p, Some(1 + p % 3)).unwrap();
                }
            }
        }
        produce(&self.bootstrap(), topic, partitions, per_partition).await;
    }

    async fn stop(self) {
        match self {
            Target::Broker(s) => s.stop().await,
            Target::Proxy { proxy, mock } => {
                proxy.stop().await.unwrap();
                drop(mock);
            }
        }
    }
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let mut sends = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{p}-{i}");
            sends.push(producer.send_result(FutureRecord::<(), _>::to(topic).partition(p).payload(&v)).unwrap());
        }
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
}

fn all_six(members: &[&Member]) -> bool {
    let owned: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned()).collect();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    let total: usize = owned.iter().map(|o| o.len()).sum();
    union.len() == 6 && total == 6
}

async fn three_members_share_six_partitions_and_consume_everything_once_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 0).await;
    let members: Vec<Member> = (0..3).map(|_| Member::start(&b, "g-balance", "six", &[])).collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(30 * SECOND, "a balanced assignment", || all_six(&refs) && refs.iter().all(|m| m.owned().len() == 2));
    // Produce once the group is stable: without commits, a message read before a rebalance
    // would rightly be read again by the partition's next owner.
    produce(&b, "six", 6, 50).await;
    wait_for(30 * SECOND, "every message", || {
        members.iter().map(|m| m.seen.lock().unwrap().consumed.len()).sum::<usize>() >= 300
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &members {
        for (_, _, v) in &m.seen.lock().unwrap().consumed {
            *seen.entry(v.clone()).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "a message was consumed twice");
    for m in members {
        m.stop();
    }
    server.stop().await;
}

async fn a_member_that_leaves_cleanly_hands_over_at_once_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let a = Member::start(&b, "g-leave", "six", &[]);
    let c = Member::start(&b, "g-leave", "six", &[]);
    wait_for(30 * SECOND, "two members with three partitions each", || all_six(&[&a, &c]) && a.owned().len() == 3);
    let started = Instant::now();
    c.stop();
    let took = wait_for(10 * SECOND, "the survivor to own all six", || a.owned().len() == 6);
    eprintln!("clean leave: partitions moved after {:?}", started.elapsed());
    assert!(took < Duration::from_secs(4), "a LeaveGroup should move partitions well before the session timeout, took {took:?}");
    a.stop();
    server.stop().await;
}

/// A child process that cannot outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Re-run of this test binary as a child consumer, so it can be SIGKILLed.
const CHILD_ENV: &str = "CORRAL_TEST_CHILD_CONSUMER";

#[test]
fn child_consumer() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.splitn(3, ',');
    let (b, group, topic) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let m = Member::start(b, group, topic, &[]);
    let mut last = BTreeSet::new();
    loop {
        let owned = m.owned();
        if owned != last {
            println!("OWNED {}", owned.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "));
            last = owned;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn a_killed_member_loses_its_partitions_after_the_session_timeout_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let a = Member::start(&b, "g-kill", "six", &[]);
    let c = Member::start(&b, "g-kill", "six", &[]);
    let mut child = KillOnDrop(Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_consumer", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, format!("{b},g-kill,six"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let out = BufReader::new(child.0.stdout.take().unwrap());
    let child_owned: Arc<Mutex<BTreeSet<i32>>> = Arc::new(Mutex::new(BTreeSet::new()));
    let co = child_owned.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            // the first line follows libtest's "test child_consumer ... " without a newline
            if let Some((_, rest)) = line.split_once("OWNED") {
                *co.lock().unwrap() = rest.split_whitespace().map(|p| p.parse().unwrap()).collect();
            }
        }
    });
    wait_for(30 * SECOND, "three members with two partitions each", || {
        a.owned().len() == 2 && c.owned().len() == 2 && child_owned.lock().unwrap().len() == 2
    });
    let killed = Instant::now();
    child.0.kill().unwrap(); // SIGKILL: no LeaveGroup, the socket just dies
    child.0.wait().unwrap();
    let took = wait_for(20 * SECOND, "the survivors to own all six", || all_six(&[&a, &c]));
    eprintln!("SIGKILLed member (session 6 s): partitions reassigned after {took:?}");
    assert!(took >= Duration::from_secs(3), "reassigned before the session could have expired ({took:?})");
    assert!(killed.elapsed() < Duration::from_secs(15));
    a.stop();
    c.stop();
    server.stop().await;
}

async fn a_static_member_restarts_without_a_rebalance_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let s1 = Member::start(&b, "g-static", "six", &[("group.instance.id", "i1")]);
    let s2 = Member::start(&b, "g-static", "six", &[("group.instance.id", "i2")]);
    wait_for(30 * SECOND, "two static members with three each", || all_six(&[&s1, &s2]) && s1.owned().len() == 3);
    std::thread::sleep(Duration::from_millis(1500)); // let the group settle
    let before = s1.owned();
    let s2_events = s2.events();
    s1.stop(); // a static member does not send LeaveGroup on close
    let back = Member::start(&b, "g-static", "six", &[("group.instance.id", "i1")]);
    let took = wait_for(10 * SECOND, "the restarted member to get its partitions back", || back.owned() == before);
    eprintln!("static member restart: assignment back after {took:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s2.events(), s2_events, "the other static member was rebalanced");
    assert_eq!(back.owned(), before);
    back.stop();
    s2.stop();
    server.stop().await;
}

/// Consumes up to `want` messages of topic "one" in group g-resume, committing the
/// `commit_after`-th and stopping there.
fn consume_committing(bootstrap: &str, want: usize, commit_after: Option<usize>) -> Vec<i64> {
    let c: BaseConsumer = consumer_config(bootstrap, "g-resume", &[]).create().unwrap();
    c.subscribe(&["one"]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + 30 * SECOND;
    while got.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(m.offset());
            if Some(got.len()) == commit_after {
                c.commit_message(&m, CommitMode::Sync).unwrap();
                break;
            }
        }
    }
    got
}

async fn commit_restart_resume_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("one", 1, 100).await;
    let bs = b.clone();
    let first = tokio::task::spawn_blocking(move || consume_committing(&bs, 100, Some(40))).await.unwrap();
    assert_eq!(first.first(), Some(&0));
    assert_eq!(first.len(), 40);
    let bs = b.clone();
    let second = tokio::task::spawn_blocking(move || consume_committing(&bs, 60, None)).await.unwrap();
    assert_eq!(second.first(), Some(&40), "resumes right after the committed offset");
    assert_eq!(second.len(), 60);
    server.stop().await;
}

async fn cooperative_sticky_third_member_takes_only_what_it_needs_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = Member::start(&b, "g-coop", "six", &coop);
    let c = Member::start(&b, "g-coop", "six", &coop);
    wait_for(30 * SECOND, "two members with three each", || all_six(&[&a, &c]) && a.owned().len() == 3);
    std::thread::sleep(Duration::from_millis(1500));
    let (a0, c0) = (a.owned(), c.owned());
    let (a_events, c_events) = (a.events(), c.events());
    let started = Instant::now();
    let d = Member::start(&b, "g-coop", "six", &coop);
    let took = wait_for(30 * SECOND, "three members with two each", || {
        all_six(&[&a, &c, &d]) && a.owned().len() == 2 && c.owned().len() == 2 && d.owned().len() == 2
    });
    eprintln!("cooperative-sticky third member settled after {took:?} ({:?} since start)", started.elapsed());
    assert!(a.owned().is_subset(&a0) && c.owned().is_subset(&c0), "a kept partition moved");
    // cooperative: since the third member came, each old member revoked just what it handed over
    for (m, since) in [(&a, a_events), (&c, c_events)] {
        let revoked: BTreeSet<i32> = {
            let seen = m.seen.lock().unwrap();
            seen.events[since..].iter().filter(|e| e.1 == "revoke").flat_map(|e| e.2.clone()).collect()
        };
        assert_eq!(revoked.len(), 1, "exactly one partition revoked per old member: {revoked:?}");
        let owned = m.owned();
        assert!(!revoked.iter().any(|p| owned.contains(p)));
    }
    for m in [a, c, d] {
        m.stop();
    }
    server.stop().await;
}

// Each scenario on both targets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_six_partitions_and_consume_everything_once() {
    three_members_share_six_partitions_and_consume_everything_once_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_three_members_share_six_partitions_and_consume_everything_once() {
    three_members_share_six_partitions_and_consume_everything_once_on(Target::proxy().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_cleanly_hands_over_at_once() {
    a_member_that_leaves_cleanly_hands_over_at_once_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_a_member_that_leaves_cleanly_hands_over_at_once() {
    a_member_that_leaves_cleanly_hands_over_at_once_on(Target::proxy().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_loses_its_partitions_after_the_session_timeout() {
    a_killed_member_loses_its_partitions_after_the_session_timeout_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_a_killed_member_loses_its_partitions_after_the_session_timeout() {
    a_killed_member_loses_its_partitions_after_the_session_timeout_on(Target::proxy().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_without_a_rebalance() {
    a_static_member_restarts_without_a_rebalance_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_a_static_member_restarts_without_a_rebalance() {
    a_static_member_restarts_without_a_rebalance_on(Target::proxy().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_restart_resume() {
    commit_restart_resume_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_commit_restart_resume() {
    commit_restart_resume_on(Target::proxy().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_third_member_takes_only_what_it_needs() {
    cooperative_sticky_third_member_takes_only_what_it_needs_on(Target::broker().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_cooperative_sticky_third_member_takes_only_what_it_needs() {
    cooperative_sticky_third_member_takes_only_what_it_needs_on(Target::proxy().await).await;
}
