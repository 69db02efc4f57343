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
    // --protocol consumer: members of the next-generation protocol (KIP-848), heartbeating
    // with ConsumerGroupHeartbeat v1 and committing with OffsetCommit v9 at their member epoch
    let modern = a.get("protocol", "classic".to_string()) == "consumer";
    let pid: Option<u32> = a.opt("pid");
    let mut conns: Vec<(Client, Bytes, Bytes)> = Vec::new();
    let mut join_time = 0.0;
    if modern {
        // the topic the members subscribe to and commit to (auto-created by Metadata)
        create_topic(&target).await;
        let limit = Duration::from_secs_f64(a.get("limit-seconds", 120.0));
        match converge_consumer(&target, groups, members, limit).await {
            Ok((ms, took)) => {
                join_time = took.as_secs_f64();
                for (mut c, group, member, epoch) in ms {
                    let (hb, cm) = consumer_op_frames(&mut c, &group, &member, epoch);
                    conns.push((c, hb, cm));
                }
            }
            Err(e) => {
                println!(
                    "{{\"scenario\":\"coordinator\",\"protocol\":\"consumer\",\"groups\":{groups},\"members\":{members},\"error\":\"{e}\"}}"
                );
                return;
            }
        }
    } else if raw {
        for g in 0..groups {
            for m in 0..members {
                let mut c = connect(&target).await.expect("connect");
                let (hb, cm) = op_frames(&mut c, &group_name(g), &format!("m-{m}"), 1);
                conns.push((c, hb, cm));
            }
        }
    } else {
        // the topic the commits name
        create_topic(&target).await;
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
                        // the heartbeat's error code, after the correlation id (and the tagged
                        // fields of a flexible header) and the throttle time; non-zero = error
                        let at = if modern { 9 } else { 8 };
                        if !raw && i.is_multiple_of(2) && resp.len() >= at + 2 && resp[at..at + 2] != [0, 0] {
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
        "{{\"scenario\":\"coordinator\",\"protocol\":\"{}\",\"raw\":{raw},\"groups\":{groups},\"members\":{members},\"join_seconds\":{join_time:.3},\"ops_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"errors\":{},\"server_cpu_us_per_op\":{:.2}}}",
        if modern { "consumer" } else { "classic" },
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
    let cm = commit_frame(c, 7, group, member, generation);
    (hb, cm)
}

/// Creates the topic the members commit to (Metadata auto-creates it).
async fn create_topic(target: &str) {
    let mut admin = connect(target).await.expect("connect");
    admin
        .call(
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))))])),
        )
        .await
        .expect("metadata");
}

/// A member's OffsetCommit of offset 42 to partition 0 of the topic, at `version`;
/// `generation` is the generation (classic) or the member epoch (consumer protocol).
fn commit_frame(c: &mut Client, version: i16, group: &str, member: &str, generation: i32) -> Bytes {
    c.frame(
        version,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(
                vec![offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42)],
            )]),
    )
}

/// The prebuilt steady-state ConsumerGroupHeartbeat (v1: member and epoch only, every other
/// field null, "unchanged") and OffsetCommit (v9, at the member epoch) frames of one member.
fn consumer_op_frames(c: &mut Client, group: &str, member: &str, epoch: i32) -> (Bytes, Bytes) {
    let hb = c.frame(
        1,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1),
    );
    let cm = commit_frame(c, 9, group, member, epoch);
    (hb, cm)
}

/// A consumer-protocol member while its group converges.
struct Modern {
    conn: Client,
    group: String,
    member: String,
    epoch: i32,
    owned: Vec<consumer_group_heartbeat_request::TopicPartitions>,
}

/// Every member joins with ConsumerGroupHeartbeat (epoch 0), then all heartbeat, each
/// reporting what it was last given, pass after pass, until a whole pass changes no member's
/// epoch or assignment. Returns each member's connection, group, id and epoch, and the time.
async fn converge_consumer(
    target: &str,
    groups: usize,
    members: usize,
    limit: Duration,
) -> std::io::Result<(Vec<(Client, String, String, i32)>, Duration)> {
    let started = Instant::now();
    let deadline = started + limit;
    let mut ms = Vec::with_capacity(groups * members);
    for g in 0..groups {
        for m in 0..members {
            ms.push(Modern {
                conn: connect(target).await?,
                group: group_name(g),
                member: format!("m-{g}-{m}"),
                epoch: 0,
                owned: Vec::new(),
            });
        }
    }
    let mut first = true;
    loop {
        let tasks: Vec<_> = ms.into_iter().map(|m| tokio::spawn(beat(m, first))).collect();
        let mut next = Vec::with_capacity(tasks.len());
        let mut any_changed = false;
        for t in tasks {
            let (m, changed) = t.await.map_err(std::io::Error::other)??;
            any_changed |= changed;
            next.push(m);
        }
        ms = next;
        if !first && !any_changed {
            break;
        }
        first = false;
        if Instant::now() > deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the consumer groups did not settle"));
        }
    }
    Ok((ms.into_iter().map(|m| (m.conn, m.group, m.member, m.epoch)).collect(), started.elapsed()))
}

/// One heartbeat of a converging member (the join when `join`); whether it changed anything.
async fn beat(mut m: Modern, join: bool) -> std::io::Result<(Modern, bool)> {
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&m.group)))
        .with_member_id(s(&m.member))
        .with_member_epoch(m.epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(m.owned.clone()));
    if join {
        req = req.with_rebalance_timeout_ms(60_000).with_subscribed_topic_names(Some(vec![TopicName(s(TOPIC))]));
    }
    let r = m.conn.call(1, &req).await?;
    if r.error_code != 0 {
        return Err(std::io::Error::other(format!("ConsumerGroupHeartbeat of {} answered error {}", m.member, r.error_code)));
    }
    let mut changed = r.member_epoch != m.epoch;
    m.epoch = r.member_epoch;
    if let Some(a) = r.assignment {
        let owned: Vec<_> = a
            .topic_partitions
            .into_iter()
            .map(|tp| {
                consumer_group_heartbeat_request::TopicPartitions::default().with_topic_id(tp.topic_id).with_partitions(tp.partitions)
            })
            .collect();
        changed |= owned != m.owned;
        m.owned = owned;
    }
    Ok((m, changed))
}
