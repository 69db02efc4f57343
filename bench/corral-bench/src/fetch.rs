//! The `fetch` scenario: reading back N messages, then end-to-end latency (a produce answered
//! by a parked fetch).

use std::time::{Duration, Instant};

use corral_testkit::s;
use kafka_protocol::messages::*;

use crate::args::Args;
use crate::kafka::{batch, connect, ensure_topic, leader_addr, produce_frame};
use crate::measure::{cpu_per_op, cpu_seconds_fine, json_str, percentile};

/// Fetch throughput (reading back N messages) and end-to-end latency (a produce, answered
/// by a parked fetch). Every connection goes to the partition leader's address in Metadata
/// (through a proxy: the listener of the upstream broker leading it). `--pid` (and, behind a
/// proxy, `--upstream-pid`): CPU per Fetch request while reading back.
pub async fn run(a: &Args) {
    let target = a.str("target");
    let messages: usize = a.get("messages", 200_000);
    let pid: Option<u32> = a.opt("pid");
    let upstream_pid: Option<u32> = a.opt("upstream-pid");
    let topic = "fetch-bench";
    // --read-committed: isolation level READ_COMMITTED (read up to the last stable offset)
    let read_committed = a.flag("read-committed");
    ensure_topic(&target, topic, 1).await;
    let leader = match a.opt("leader-addr") {
        Some(addr) => Ok(addr),
        None => leader_addr(&target, topic, 0).await,
    };
    let target = match leader {
        Ok(a) => a,
        Err(e) => {
            println!(
                "{{\"scenario\":\"fetch\",\"messages\":{messages},\"error\":{}}}",
                json_str(&format!("finding the partition leader: {e}"))
            );
            return;
        }
    };
    let mut p = connect(&target).await.expect("connect");
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(500);
        let f = produce_frame(&mut p, topic, 0, 1, batch(n, 100, -1, 0));
        p.round_trip(&f).await.expect("produce");
        sent += n;
    }
    let mut c = connect(&target).await.expect("connect");
    // a read-back is a few requests of 4 MiB: counted to the nanosecond
    let cpu0 = pid.map(cpu_seconds_fine);
    let upstream_cpu0 = upstream_pid.map(cpu_seconds_fine);
    let mut fetches = 0u64;
    let started = Instant::now();
    let mut offset = 0i64;
    let mut bytes_read = 0usize;
    let mut progress = Instant::now();
    while offset < messages as i64 {
        if progress.elapsed() > Duration::from_secs(30) {
            println!(
                "{{\"scenario\":\"fetch\",\"messages\":{messages},\"error\":\"no progress for 30 s at offset {offset} of {messages}\"}}"
            );
            return;
        }
        let before = offset;
        let r = c
            .call(
                11,
                &FetchRequest::default()
                    .with_isolation_level(i8::from(read_committed))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(4 << 20)
                    .with_topics(vec![fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
                        fetch_request::FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(4 << 20),
                    ])]),
            )
            .await
            .expect("fetch");
        fetches += 1;
        let recs = r.responses[0].partitions[0].records.clone().unwrap_or_default();
        bytes_read += recs.len();
        // advance past the last whole batch
        let mut at = 0;
        while at + 61 <= recs.len() {
            let base = i64::from_be_bytes(recs[at..at + 8].try_into().expect("8"));
            let len = i32::from_be_bytes(recs[at + 8..at + 12].try_into().expect("4")) as usize;
            let delta = i32::from_be_bytes(recs[at + 23..at + 27].try_into().expect("4")) as i64;
            offset = base + delta + 1;
            at += 12 + len;
        }
        if offset > before {
            progress = Instant::now();
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_per_op(pid.zip(cpu0).map_or(-1.0, |(pid, c0)| cpu_seconds_fine(pid) - c0), fetches);
    let upstream_cpu = cpu_per_op(upstream_pid.zip(upstream_cpu0).map_or(-1.0, |(pid, c0)| cpu_seconds_fine(pid) - c0), fetches);
    // end to end: a fetch parked at the end, answered by the next produce; 200 rounds, or as
    // many as fit in 20 s (a broker that answers only when max_wait_ms runs out is slow here)
    let mut lats = Vec::new();
    let e2e_started = Instant::now();
    for _ in 0..200 {
        if e2e_started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let mut waiter = connect(&target).await.expect("connect");
        let req = FetchRequest::default().with_max_wait_ms(5000).with_min_bytes(1).with_topics(vec![
            fetch_request::FetchTopic::default().with_topic(TopicName(s(topic))).with_partitions(vec![
                fetch_request::FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
            ]),
        ]);
        let frame = waiter.frame(11, &req);
        waiter.send(&frame).await.expect("send fetch");
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t = Instant::now();
        let f = produce_frame(&mut p, topic, 0, 1, batch(1, 100, -1, 0));
        p.round_trip(&f).await.expect("produce");
        waiter.read_frame().await.expect("fetch answer");
        lats.push(t.elapsed().as_micros() as u64);
        offset += 1;
    }
    lats.sort_unstable();
    println!(
        "{{\"scenario\":\"fetch\",\"messages\":{messages},\"read_committed\":{read_committed},\"address\":{},\"messages_per_sec\":{:.0},\"mb_per_sec\":{:.1},\"fetch_requests\":{fetches},\"bytes_read\":{bytes_read},\"server_cpu_us_per_request\":{cpu:.2},\"upstream_cpu_us_per_request\":{upstream_cpu:.2},\"e2e_rounds\":{},\"e2e_p50_ms\":{:.3},\"e2e_p99_ms\":{:.3}}}",
        json_str(&target),
        messages as f64 / read_secs,
        bytes_read as f64 / read_secs / 1e6,
        lats.len(),
        percentile(&lats, 0.5),
        percentile(&lats, 0.99)
    );
}
