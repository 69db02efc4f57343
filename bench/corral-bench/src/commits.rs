//! The `commits` scenario: concurrent simple-group committers, each waiting for its reply.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use corral_testkit::s;
use kafka_protocol::messages::*;

use crate::args::Args;
use crate::kafka::{TOPIC, connect, ensure_topic};
use crate::measure::{finish_run, percentile};

/// Concurrent committers (simple-group commits, each waits for its fsync-backed reply).
pub async fn run(a: &Args) {
    let target = a.str("target");
    let committers: usize = a.get("committers", 100);
    let seconds: f64 = a.get("seconds", 5.0);
    ensure_topic(&target, TOPIC, 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..committers {
        let (target, stop, done) = (target.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&target).await.expect("connect");
            let mut lat = Vec::new();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(&format!("committer-{i}"))))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![
                        offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(n),
                        ]),
                    ]);
                let t = Instant::now();
                let r = c.call(7, &req).await.expect("commit");
                assert_eq!(r.topics[0].partitions[0].error_code, 0);
                lat.push(t.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let (elapsed, _, _, lat) = finish_run(seconds, &stop, started, None, None, tasks).await;
    println!(
        "{{\"scenario\":\"commits\",\"committers\":{committers},\"commits_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        done.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}
