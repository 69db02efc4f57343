//! The coordinator scenarios: `coordinator` (closed-loop Heartbeat + OffsetCommit from every
//! member of settled groups) and `join-storm` (how long until every member of many groups
//! holds an assignment).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral_testkit::{Client, s};
use kafka_protocol::messages::*;

use crate::args::Args;
use crate::groups::{converge, group_name};
use crate::kafka::{TOPIC, connect};
use crate::measure::{cpu_per_op, cpu_seconds, finish_run, percentile};

pub async fn join_storm(a: &Args) {
    let target = a.str("target");
    let groups: usize = a.get("groups", 100);
    let members: usize = a.get("members", 10);
    let limit = Duration::from_secs_f64(a.get("limit-seconds", 120.0));
    match converge(&target, groups, members, false, limit).await {
        Ok((_, took)) => println!(
            "{{\"scenario\":\"join-storm\",\"groups\":{groups},\"members\":{members},\"seconds_until_all_assigned\":{:.3}}}",
            took.as_secs_f64()
        ),
        Err(e) => println!("{{\"scenario\":\"join-storm\",\"groups\":{groups},\"members\":{members},\"error\":\"{e}\"}}"),
    }
}

/// Closed-loop heartbeat and commit from every member; or, with `--raw` against the echo
/// server, the same frames at the same concurrency.
pub async fn run(a: &Args) {
    let target = a.str("target");
    let groups: usize = a.get("groups", 1000);
    let members: usize = a.get("members", 10);
    let seconds: f64 = a.get("seconds", 10.0);
    let raw = a.flag("raw");
    let pid: Option<u32> = a.opt("pid");
    let mut conns: Vec<(Client, Bytes, Bytes)> = Vec::new();
    let mut join_time = 0.0;
    if raw {
        for g in 0..groups {
            for m in 0..members {
                let mut c = connect(&target).await.expect("connect");
                let (hb, cm) = op_frames(&mut c, &group_name(g), &format!("m-{m}"), 1);
                conns.push((c, hb, cm));
            }
        }
    } else {
        // the topic the commits name
        let mut admin = connect(&target).await.expect("connect");
        admin
            .call(
                9,
                &MetadataRequest::default()
                    .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))))])),
            )
            .await
            .expect("metadata");
        let limit = Duration::from_secs_f64(a.get("limit-seconds", 120.0));
        // --find-coordinator: several proxies share the coordinator; each member connects to its
        // group's coordinator, as a client does
        let (ms, took) = match converge(&target, groups, members, a.flag("find-coordinator"), limit).await {
            Ok(r) => r,
            Err(e) => {
                println!("{{\"scenario\":\"coordinator\",\"groups\":{groups},\"members\":{members},\"error\":\"{e}\"}}");
                return;
            }
        };
        join_time = took.as_secs_f64();
        for mut m in ms {
            let (hb, cm) = op_frames(&mut m.conn, &m.group, &m.member_id, m.generation);
            conns.push((m.conn, hb, cm));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = pid.map(cpu_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, hb, cm) in conns {
        let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let frame = if i.is_multiple_of(2) { &hb } else { &cm };
                let t = Instant::now();
                match c.round_trip(frame).await {
                    Ok(resp) => {
                        // an error code shows where a response carries one, non-zero = error
                        if !raw && i.is_multiple_of(2) && resp.len() >= 10 && resp[8..10] != [0, 0] {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => return lat,
                }
                lat.push(t.elapsed().as_micros() as u64);
                ops.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            lat
        }));
    }
    let (elapsed, cpu, _, lat) = finish_run(seconds, &stop, started, pid.zip(cpu0), None, tasks).await;
    let total = ops.load(Ordering::Relaxed);
    println!(
        "{{\"scenario\":\"coordinator\",\"raw\":{raw},\"groups\":{groups},\"members\":{members},\"join_seconds\":{join_time:.3},\"ops_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"errors\":{},\"server_cpu_us_per_op\":{:.2}}}",
        total as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        errors.load(Ordering::Relaxed),
        cpu_per_op(cpu, total)
    );
}

/// The prebuilt Heartbeat (v3) and OffsetCommit (v7) frames of one member.
fn op_frames(c: &mut Client, group: &str, member: &str, generation: i32) -> (Bytes, Bytes) {
    let hb =
        c.frame(3, &HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(member)).with_generation_id(generation));
    let cm = c.frame(
        7,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(
                vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42)],
            )]),
    );
    (hb, cm)
}
