//! A librdkafka consumer-group member in a process of its own, for the test that SIGKILLs a
//! member (tests/rdkafka_groups.rs, `a_killed_member_loses_its_partitions_after_the_session_timeout`):
//! only a separate process can die without its socket being closed politely or a LeaveGroup
//! being sent. It is a program, not a test, so it is never counted as a passing one.
//!
//!     child_consumer BOOTSTRAP GROUP TOPIC [consumer]
//!
//! Joins GROUP subscribed to TOPIC with the consumer settings the test's own members use (with
//! `consumer`: the next-generation protocol, `group.protocol=consumer`, whose session and
//! heartbeat settings are the coordinator's; tests/rdkafka_consumer_protocol.rs), and
//! prints `OWNED p p ...` (the partitions it owns, possibly none) on stdout every time its
//! assignment changes. It runs until it is killed, or until its stdin reaches end of file (the
//! test that started it is gone), and then exits at once, without leaving the group.
//!
//! The test builds it (`cargo build --example child_consumer`, a no-op when it is up to date),
//! since a `cargo test --test rdkafka_groups` run builds no examples of its own accord.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};

/// Reports every change of the assignment on a channel (the callback runs inside `poll`).
struct Owned(mpsc::Sender<BTreeSet<i32>>, std::sync::Mutex<BTreeSet<i32>>);

impl ClientContext for Owned {}

impl ConsumerContext for Owned {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let mut owned = self.1.lock().expect("only this callback takes the lock");
        match r {
            Rebalance::Assign(tpl) => owned.extend(tpl.elements().iter().map(|e| e.partition())),
            Rebalance::Revoke(tpl) => {
                for e in tpl.elements() {
                    owned.remove(&e.partition());
                }
            }
            Rebalance::Error(_) => {}
        }
        // The receiver lives as long as the process.
        let _ = self.0.send(owned.clone());
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (bootstrap, group, topic, modern) = match args.as_slice() {
        [b, g, t] => (b, g, t, false),
        [b, g, t, p] if p == "consumer" => (b, g, t, true),
        _ => {
            eprintln!("usage: child_consumer BOOTSTRAP GROUP TOPIC [consumer]");
            std::process::exit(2);
        }
    };
    let (tx, rx) = mpsc::channel();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    if modern {
        config.set("group.protocol", "consumer");
    } else {
        // The same settings as `consumer_config` in tests/rdkafka_groups.rs: the test's timing
        // assertions rely on this session timeout.
        config.set("session.timeout.ms", "6000").set("heartbeat.interval.ms", "500");
    }
    let consumer: BaseConsumer<Owned> = config.create_with_context(Owned(tx, Default::default())).expect("a consumer");
    consumer.subscribe(&[topic]).expect("subscribe");

    // The parent holds our stdin; when it is gone, so are we (no LeaveGroup either way).
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        for owned in rx {
            let list: Vec<String> = owned.iter().map(|p| p.to_string()).collect();
            if writeln!(out, "OWNED {}", list.join(" ")).and_then(|()| out.flush()).is_err() {
                std::process::exit(0);
            }
        }
    });
    loop {
        // Serves the rebalance callbacks; messages are not the point.
        let _ = consumer.poll(Duration::from_millis(100));
    }
}
