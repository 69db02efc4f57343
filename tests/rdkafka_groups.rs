//! Consumer groups end to end with a real librdkafka (the rdkafka crate): balanced assignment,
//! a member killed without leaving, a member that leaves cleanly, static membership across a
//! restart, commit and resume, and cooperative-sticky handover. Each scenario runs twice: on
//! corral in broker mode, and through `corral proxy` in front of librdkafka's three-broker mock
//! cluster (the `proxy_` tests), where the data goes to the mock's brokers and the group is
//! corral's.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Poller, TestProxy, TestServer, child_consumer_exe, spawn_child_consumer, wait_for};
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;

const SECOND: Duration = Duration::from_secs(1);

/// What a member saw: every rebalance event, the partitions it owns now, and how many
/// Heartbeat requests it has sent (from librdkafka's statistics).
#[derive(Default)]
struct Seen {
    events: Vec<(Instant, &'static str, Vec<i32>)>,
    owned: BTreeSet<i32>,
    consumed: Vec<(i32, i64, String)>,
    heartbeats: i64,
}

struct Recorder(Arc<Mutex<Seen>>);

impl ClientContext for Recorder {
    fn stats(&self, stats: Statistics) {
        // Heartbeats go to the coordinator's connection; summed over every broker handle.
        let sent: i64 = stats.brokers.values().filter_map(|b| b.req.get("Heartbeat")).sum();
        let mut s = self.0.lock().unwrap();
        s.heartbeats = s.heartbeats.max(sent);
    }
}

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
    poller: Poller,
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
        let mut config = consumer_config(bootstrap, group, extra);
        // statistics (served by `poll`) count the member's heartbeats; see `wait_settled`
        config.set("statistics.interval.ms", "100");
        let consumer: BaseConsumer<Recorder> = config.create_with_context(Recorder(seen.clone())).unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let s2 = seen.clone();
        let poller = Poller::spawn(move |stop| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                    s2.lock().unwrap().consumed.push((m.partition(), m.offset(), v));
                }
            }
            // dropping closes the consumer: LeaveGroup for dynamic members
            drop(consumer);
        });
        Member { seen, poller }
    }

    fn owned(&self) -> BTreeSet<i32> {
        self.seen.lock().unwrap().owned.clone()
    }

    fn events(&self) -> usize {
        self.seen.lock().unwrap().events.len()
    }

    fn heartbeats(&self) -> i64 {
        self.seen.lock().unwrap().heartbeats
    }

    /// Stops polling and closes the consumer (a LeaveGroup for a dynamic member).
    async fn stop(self) {
        self.poller.stop().await;
    }
}

/// Heartbeats a member must send, with no rebalance event meanwhile, for the group to count
/// as settled: one may have been in flight when counting began, so at least two were answered
/// with no error (librdkafka sends one at a time, and stops heartbeating to rejoin).
const SETTLED_HEARTBEATS: i64 = 3;

/// Waits until the group has settled for every one of `members`: each has sent
/// [`SETTLED_HEARTBEATS`] heartbeats since the last rebalance event any of them saw. A
/// rebalance the coordinator still had in mind would have been answered to one of those
/// heartbeats (REBALANCE_IN_PROGRESS) and shown up as an event.
async fn wait_settled(members: &[&Member], what: &str) {
    let deadline = Instant::now() + 30 * SECOND;
    'again: loop {
        let marks: Vec<(usize, i64)> = members.iter().map(|m| (m.events(), m.heartbeats())).collect();
        loop {
            if members.iter().zip(&marks).any(|(m, (events, _))| m.events() != *events) {
                continue 'again;
            }
            if members.iter().zip(&marks).all(|(m, (_, beats))| m.heartbeats() >= beats + SETTLED_HEARTBEATS) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what} to settle");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
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
    wait_for(30 * SECOND, "a balanced assignment", || all_six(&refs) && refs.iter().all(|m| m.owned().len() == 2)).await;
    // Produce once the group is stable: without commits, a message read before a rebalance
    // would rightly be read again by the partition's next owner.
    wait_settled(&refs, "the three-member group").await;
    produce(&b, "six", 6, 50).await;
    let counts = |seen: &[Arc<Mutex<Seen>>]| {
        let mut n: HashMap<String, usize> = HashMap::new();
        for s in seen {
            for (_, _, v) in &s.lock().unwrap().consumed {
                *n.entry(v.clone()).or_default() += 1;
            }
        }
        n
    };
    let seen: Vec<Arc<Mutex<Seen>>> = members.iter().map(|m| m.seen.clone()).collect();
    wait_for(30 * SECOND, "every message", || counts(&seen).len() == 300).await;
    // Everything the members consumed until they stopped counts: a message read twice before
    // then fails the test.
    for m in members {
        m.stop().await;
    }
    let counts = counts(&seen);
    assert_eq!(counts.len(), 300);
    let twice: Vec<&String> = counts.iter().filter(|(_, n)| **n > 1).map(|(v, _)| v).collect();
    assert!(twice.is_empty(), "messages consumed more than once: {twice:?}");
    server.stop().await;
}

async fn a_member_that_leaves_cleanly_hands_over_at_once_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let a = Member::start(&b, "g-leave", "six", &[]);
    let c = Member::start(&b, "g-leave", "six", &[]);
    wait_for(30 * SECOND, "two members with three partitions each", || all_six(&[&a, &c]) && a.owned().len() == 3).await;
    let started = Instant::now();
    c.stop().await;
    let took = wait_for(10 * SECOND, "the survivor to own all six", || a.owned().len() == 6).await;
    eprintln!("clean leave: partitions moved after {:?}", started.elapsed());
    assert!(took < Duration::from_secs(4), "a LeaveGroup should move partitions well before the session timeout, took {took:?}");
    a.stop().await;
    server.stop().await;
}

async fn a_killed_member_loses_its_partitions_after_the_session_timeout_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let a = Member::start(&b, "g-kill", "six", &[]);
    let c = Member::start(&b, "g-kill", "six", &[]);
    let exe = tokio::task::spawn_blocking(child_consumer_exe).await.unwrap();
    let (mut child, child_owned) = spawn_child_consumer(exe, &[b.as_str(), "g-kill", "six"]);
    wait_for(30 * SECOND, "three members with two partitions each", || {
        a.owned().len() == 2 && c.owned().len() == 2 && child_owned.lock().unwrap().len() == 2
    })
    .await;
    let killed = Instant::now();
    child.0.kill().unwrap(); // SIGKILL: no LeaveGroup, the socket just dies
    child.0.wait().unwrap();
    let took = wait_for(20 * SECOND, "the survivors to own all six", || all_six(&[&a, &c])).await;
    eprintln!("SIGKILLed member (session 6 s): partitions reassigned after {took:?}");
    assert!(took >= Duration::from_secs(3), "reassigned before the session could have expired ({took:?})");
    assert!(killed.elapsed() < Duration::from_secs(15));
    a.stop().await;
    c.stop().await;
    server.stop().await;
}

async fn a_static_member_restarts_without_a_rebalance_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("six", 6, 1).await;
    let s1 = Member::start(&b, "g-static", "six", &[("group.instance.id", "i1")]);
    let s2 = Member::start(&b, "g-static", "six", &[("group.instance.id", "i2")]);
    wait_for(30 * SECOND, "two static members with three each", || all_six(&[&s1, &s2]) && s1.owned().len() == 3).await;
    wait_settled(&[&s1, &s2], "the static group").await;
    let before = s1.owned();
    let s2_events = s2.events();
    s1.stop().await; // a static member does not send LeaveGroup on close
    let back = Member::start(&b, "g-static", "six", &[("group.instance.id", "i1")]);
    let took = wait_for(10 * SECOND, "the restarted member to get its partitions back", || back.owned() == before).await;
    eprintln!("static member restart: assignment back after {took:?}");
    // Had the rejoin started a rebalance, the other member would be told so in answer to its
    // next heartbeat: watch it heartbeat a few times (or react).
    let beats = s2.heartbeats();
    wait_for(10 * SECOND, "the other member to heartbeat", || s2.heartbeats() >= beats + SETTLED_HEARTBEATS || s2.events() != s2_events)
        .await;
    assert_eq!(s2.events(), s2_events, "the other static member was rebalanced");
    assert_eq!(back.owned(), before);
    back.stop().await;
    s2.stop().await;
    server.stop().await;
}

async fn commit_restart_resume_on(server: Target) {
    let b = server.bootstrap();
    server.topic_with_messages("one", 1, 100).await;
    let bs = b.clone();
    let first =
        tokio::task::spawn_blocking(move || common::consume_committing(&consumer_config(&bs, "g-resume", &[]), "one", 100, Some(40)))
            .await
            .unwrap();
    assert_eq!(first.first(), Some(&0));
    assert_eq!(first.len(), 40);
    let bs = b.clone();
    let second = tokio::task::spawn_blocking(move || common::consume_committing(&consumer_config(&bs, "g-resume", &[]), "one", 60, None))
        .await
        .unwrap();
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
    wait_for(30 * SECOND, "two members with three each", || all_six(&[&a, &c]) && a.owned().len() == 3).await;
    wait_settled(&[&a, &c], "the two-member group").await;
    let (a0, c0) = (a.owned(), c.owned());
    let (a_events, c_events) = (a.events(), c.events());
    let started = Instant::now();
    let d = Member::start(&b, "g-coop", "six", &coop);
    let took = wait_for(30 * SECOND, "three members with two each", || {
        all_six(&[&a, &c, &d]) && a.owned().len() == 2 && c.owned().len() == 2 && d.owned().len() == 2
    })
    .await;
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
        m.stop().await;
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
