//! Micro-benchmarks of the hot paths: request decode and response encode, one shard handling
//! a heartbeat and a commit, a 1,000-member join + sync, and an offsets-log append with its
//! group commit.
//!
//!     cargo bench --bench hot_paths
//!     cargo bench --bench hot_paths -- --quick      # one short pass (CI)

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, Request, StrBytes};

use corral::coordinator::group::Protocol;
use corral::coordinator::shard::{
    CommitInput, CommitPartition, HeartbeatInput, IdSource, JoinInput, JoinResult, Output, Reply, Shard, ShardConfig, SyncInput, TimerKey,
    TimerOp,
};
use corral::error::ErrorCode;
use corral::log::keyed::{KeyedConfig, KeyedLog};
use corral::log::storage::{FileStorage, Storage};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A request frame body (no size prefix), as `decode_request` takes it.
fn frame<R: Request + Encodable + HeaderVersion>(version: i16, req: &R) -> Bytes {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("bench")))
        .encode(&mut b, R::header_version(version))
        .expect("header");
    req.encode(&mut b, version).expect("body");
    b.freeze()
}

fn protocol(c: &mut Criterion) {
    let table = corral::protocol::VersionTable::broker();
    let hb =
        frame(4, &HeartbeatRequest::default().with_group_id(GroupId(s("group-1"))).with_member_id(s("member-1")).with_generation_id(3));
    let commit = frame(
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s("group-1")))
            .with_generation_id_or_member_epoch(3)
            .with_member_id(s("member-1"))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("orders"))).with_partitions(
                    (0..4)
                        .map(|p| {
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(1000)
                        })
                        .collect(),
                ),
            ]),
    );
    c.bench_function("decode Heartbeat v4", |b| {
        b.iter(|| corral::protocol::decode_request(black_box(hb.clone()), &table).expect("decodes"))
    });
    c.bench_function("decode OffsetCommit v8 (4 partitions)", |b| {
        b.iter(|| corral::protocol::decode_request(black_box(commit.clone()), &table).expect("decodes"))
    });
    let hb_resp = ResponseKind::Heartbeat(HeartbeatResponse::default());
    let commit_resp = ResponseKind::OffsetCommit(OffsetCommitResponse::default().with_topics(vec![
        offset_commit_response::OffsetCommitResponseTopic::default().with_name(TopicName(s("orders"))).with_partitions(
            (0..4).map(|p| offset_commit_response::OffsetCommitResponsePartition::default().with_partition_index(p)).collect(),
        ),
    ]));
    let mut out = BytesMut::with_capacity(4096);
    c.bench_function("encode Heartbeat v4 response", |b| {
        b.iter(|| {
            out.clear();
            corral::protocol::encode_response(&mut out, ApiKey::Heartbeat, 4, 7, black_box(&hb_resp)).expect("encodes");
        })
    });
    c.bench_function("encode OffsetCommit v8 response (4 partitions)", |b| {
        b.iter(|| {
            out.clear();
            corral::protocol::encode_response(&mut out, ApiKey::OffsetCommit, 8, 7, black_box(&commit_resp)).expect("encodes");
        })
    });
}

/// The shard settings of a default corral.
fn config() -> ShardConfig {
    ShardConfig::from_config(&corral::config::Config::default())
}

fn join_input(group: &str, member_id: &str) -> JoinInput {
    JoinInput {
        group_id: group.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "bench".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"subscription") }],
        version: 5,
    }
}

/// A shard with the runtime's part: timers that fall due at `now` fire at once (the join phase
/// of a new group ends after an initial delay of 0).
struct Driver {
    shard: Shard,
    timers: std::collections::BTreeMap<TimerKey, i64>,
    now: i64,
    req: u64,
}

impl Driver {
    /// Takes an output's timers, fires the due ones, and returns every reply.
    fn settle(&mut self, out: Output) -> Vec<Reply> {
        let mut replies: Vec<Reply> = Vec::new();
        let mut pending = vec![out];
        while let Some(out) = pending.pop() {
            replies.extend(out.replies.into_iter().map(|(_, r)| r));
            for t in out.timers {
                match t {
                    TimerOp::Set(k, at) => {
                        self.timers.insert(k, at);
                    }
                    TimerOp::Cancel(k) => {
                        self.timers.remove(&k);
                    }
                }
            }
            let due: Vec<TimerKey> = self.timers.iter().filter(|(_, at)| **at <= self.now).map(|(k, _)| k.clone()).collect();
            for k in due {
                self.timers.remove(&k);
                pending.push(self.shard.on_timer(self.now, &k));
            }
        }
        replies
    }

    fn join(&mut self, group: &str, member_id: &str) -> Vec<JoinResult> {
        self.req += 1;
        let out = self.shard.join(self.now, self.req, join_input(group, member_id));
        self.settle(out).into_iter().filter_map(|r| if let Reply::Join(j) = r { Some(j) } else { None }).collect()
    }
}

/// Joins `n` members into `group` (the v4+ two-step join, one member after the other, as
/// clients arrive) and syncs them; returns the shard, the member ids and the generation.
fn join_and_sync(n: usize, group: &str) -> (Shard, Vec<String>, i32) {
    let mut d = Driver { shard: Shard::new(config(), IdSource::Counter(1)), timers: Default::default(), now: 1_000, req: 0 };
    let mut ids = Vec::with_capacity(n);
    let mut answers = Vec::new();
    for _ in 0..n {
        let first = d.join(group, "");
        let id = first[0].member_id.clone();
        answers.extend(d.join(group, &id));
        ids.push(id);
    }
    // the first member completed a generation alone; the others' joins started the next
    // rebalance, which completes when it rejoins
    answers.extend(d.join(group, &ids[0].clone()));
    let last = answers.last().expect("answers");
    let (generation, leader) = (last.generation_id, last.leader.clone());
    d.now += 1;
    // the leader's SyncGroup carries every assignment; the others' complete with it
    let assignments: Vec<(String, Bytes)> = ids.iter().map(|m| (m.clone(), Bytes::from_static(b"assignment"))).collect();
    for id in ids.iter().filter(|id| **id != leader).chain(std::iter::once(&leader)) {
        d.req += 1;
        let sync = SyncInput {
            group_id: group.into(),
            member_id: id.clone(),
            group_instance_id: None,
            generation_id: generation,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: if *id == leader { assignments.clone() } else { Vec::new() },
        };
        let out = d.shard.sync(d.now, d.req, sync, 5);
        black_box(d.settle(out));
    }
    (d.shard, ids, generation)
}

fn shard(c: &mut Criterion) {
    let (mut shard, ids, generation) = join_and_sync(10, "g");
    assert_eq!(generation, 2, "the group formed");
    let member = ids[0].clone();
    let mut now = 10_000i64;
    let mut req = 1_000_000u64;
    c.bench_function("shard: heartbeat of a stable member", |b| {
        b.iter(|| {
            now += 1;
            req += 1;
            let out = shard.heartbeat(
                now,
                req,
                HeartbeatInput { group_id: "g".into(), member_id: member.clone(), group_instance_id: None, generation_id: generation },
            );
            assert!(matches!(out.replies[0].1, Reply::Heartbeat(ErrorCode::NONE)));
            out
        })
    });
    c.bench_function("shard: commit of 4 partitions by a member", |b| {
        b.iter(|| {
            now += 1;
            req += 1;
            shard.commit(
                now,
                req,
                CommitInput {
                    group_id: "g".into(),
                    generation_id: generation,
                    member_id: member.clone(),
                    group_instance_id: None,
                    retention_time_ms: -1,
                    version: 8,
                    partitions: (0..4)
                        .map(|p| CommitPartition { topic: "orders".into(), partition: p, offset: now, leader_epoch: -1, metadata: None })
                        .collect(),
                    producer_id: None,
                },
            )
        })
    });
    let mut group = c.benchmark_group("shard: join + sync");
    group.sample_size(10);
    group.bench_function("1,000 members", |b| b.iter(|| join_and_sync(1000, "big")));
    group.finish();
}

fn log_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("corral-bench-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let storage: Arc<dyn Storage> = Arc::new(FileStorage::open(&dir).expect("storage"));
    let log = KeyedLog::open("bench", storage, KeyedConfig::default(), |_| {}).expect("log");
    let shutdown = tokio_util::sync::CancellationToken::new();
    rt.spawn(log.clone().run_flusher(shutdown.clone()));
    let entry = (Bytes::from_static(b"\x00\x01\x00\x05group\x00\x06orders\x00\x00\x00\x01"), Some(Bytes::from(vec![7u8; 40])));
    let mut group = c.benchmark_group("offsets log");
    group.bench_function("append one record, wait until durable (fsync)", |b| {
        b.iter(|| {
            let end = log.append(std::slice::from_ref(&entry), 1).expect("append");
            rt.block_on(log.wait_durable(end)).expect("durable");
        })
    });
    group.bench_function("64 concurrent appenders, each waiting until durable (group commit)", |b| {
        b.iter_batched(
            || (),
            |_| {
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for _ in 0..64 {
                        let (log, entry) = (log.clone(), entry.clone());
                        tasks.push(tokio::spawn(async move {
                            let end = log.append(std::slice::from_ref(&entry), 1).expect("append");
                            log.wait_durable(end).await.expect("durable");
                        }));
                    }
                    for t in tasks {
                        t.await.expect("task");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
    shutdown.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, protocol, shard, log_append);
criterion_main!(benches);
