//! Transactions end to end with a real librdkafka (the rdkafka crate): commit and abort as
//! read_committed and read_uncommitted consumers see them, the last stable offset,
//! `send_offsets_to_transaction`, fencing, the timeout abort, and transactions across a
//! `kill -9` of the corral binary on a data dir.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use corral_testkit::ServerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let r = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        )
        .await
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
}

fn txn_producer(bootstrap: &str, id: &str, timeout_ms: u32) -> BaseProducer {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "0")
        .create()
        .unwrap();
    p.init_transactions(TIMEOUT).unwrap();
    p
}

/// Sends `keys` (one record each, value = key) round-robin over `partitions` and waits for
/// their acknowledgements.
fn send(p: &BaseProducer, topic: &str, partitions: i32, keys: &[String]) {
    for (i, k) in keys.iter().enumerate() {
        p.send(BaseRecord::to(topic).key(k).payload(k).partition(i as i32 % partitions)).unwrap();
    }
    p.flush(TIMEOUT).unwrap();
}

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn consumer(bootstrap: &str, isolation: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap()
}

/// Every key a consumer with `isolation` reads from the start of `topic` until `settle` passes
/// without a new record.
fn read_all(bootstrap: &str, isolation: &str, topic: &str, partitions: i32, settle: Duration) -> BTreeSet<String> {
    let c = consumer(bootstrap, isolation, "reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = BTreeSet::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + TIMEOUT;
    while quiet_since.elapsed() < settle && Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.insert(String::from_utf8(m.key().unwrap().to_vec()).unwrap());
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_are_read_and_aborted_ones_are_not() {
    let server = TestServer::start().await;
    let bs = server.bootstrap();
    create_topic(&bs, "tx", 3).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let p = txn_producer(&bs2, "tx-1", 60_000);
        let (a, b, c) = (keys("a", 9), keys("b", 9), keys("c", 6));
        p.begin_transaction().unwrap();
        send(&p, "tx", 3, &a);
        p.commit_transaction(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "tx", 3, &b);
        p.abort_transaction(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "tx", 3, &c);
        p.commit_transaction(TIMEOUT).unwrap();
        let committed = read_all(&bs2, "read_committed", "tx", 3, Duration::from_secs(2));
        assert_eq!(committed, set(&a).union(&set(&c)).cloned().collect());
        let everything = read_all(&bs2, "read_uncommitted", "tx", 3, Duration::from_secs(2));
        assert_eq!(everything, set(&a).union(&set(&b)).chain(set(&c).iter()).cloned().collect());
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_the_last_stable_offset() {
    let server = TestServer::start().await;
    let bs = server.bootstrap();
    create_topic(&bs, "lso", 1).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let plain: BaseProducer = ClientConfig::new().set("bootstrap.servers", &bs2).create().unwrap();
        send(&plain, "lso", 1, &keys("before", 3)); // offsets 0..=2
        let p = txn_producer(&bs2, "lso-1", 60_000);
        p.begin_transaction().unwrap();
        send(&p, "lso", 1, &keys("open", 2)); // offsets 3..=4, undecided
        send(&plain, "lso", 1, &keys("after", 2)); // offsets 5..=6, behind the open transaction
        let committed = consumer(&bs2, "read_committed", "w1");
        let uncommitted = consumer(&bs2, "read_uncommitted", "w2");
        assert_eq!(committed.fetch_watermarks("lso", 0, TIMEOUT).unwrap(), (0, 3), "read_committed: LATEST is the LSO");
        assert_eq!(uncommitted.fetch_watermarks("lso", 0, TIMEOUT).unwrap(), (0, 7));
        assert_eq!(read_all(&bs2, "read_committed", "lso", 1, Duration::from_secs(1)), set(&keys("before", 3)));
        p.commit_transaction(TIMEOUT).unwrap(); // marker at 7
        assert_eq!(committed.fetch_watermarks("lso", 0, TIMEOUT).unwrap(), (0, 8));
        let all: BTreeSet<String> = keys("before", 3).into_iter().chain(keys("open", 2)).chain(keys("after", 2)).collect();
        assert_eq!(read_all(&bs2, "read_committed", "lso", 1, Duration::from_secs(1)), all);
    })
    .await
    .unwrap();
    server.stop().await;
}

/// The committed offsets of `group` on `topic` partitions 0..n, as a fresh consumer sees them.
fn committed_offsets(bootstrap: &str, group: &str, topic: &str, n: i32) -> Vec<i64> {
    let c = consumer(bootstrap, "read_committed", group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, TIMEOUT).unwrap();
    (0..n).map(|p| got.find_partition(topic, p).unwrap().offset().to_raw().unwrap_or(-1001)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_are_committed_with_it_and_only_then() {
    let server = TestServer::start().await;
    let bs = server.bootstrap();
    create_topic(&bs, "src", 2).await;
    create_topic(&bs, "dst", 2).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let plain: BaseProducer = ClientConfig::new().set("bootstrap.servers", &bs2).create().unwrap();
        send(&plain, "src", 2, &keys("in", 10));
        let input = consumer(&bs2, "read_committed", "ctp");
        let p = txn_producer(&bs2, "ctp-1", 60_000);
        let meta = || input.group_metadata().unwrap();
        let mut positions = TopicPartitionList::new();
        positions.add_partition_offset("src", 0, Offset::Offset(3)).unwrap();
        positions.add_partition_offset("src", 1, Offset::Offset(2)).unwrap();
        p.begin_transaction().unwrap();
        send(&p, "dst", 2, &keys("out", 5));
        p.send_offsets_to_transaction(&positions, &meta(), TIMEOUT).unwrap();
        p.abort_transaction(TIMEOUT).unwrap();
        assert_eq!(committed_offsets(&bs2, "ctp", "src", 2), vec![-1001, -1001], "an aborted transaction commits no offsets");
        p.begin_transaction().unwrap();
        send(&p, "dst", 2, &keys("out", 5));
        p.send_offsets_to_transaction(&positions, &meta(), TIMEOUT).unwrap();
        p.commit_transaction(TIMEOUT).unwrap();
        assert_eq!(committed_offsets(&bs2, "ctp", "src", 2), vec![3, 2]);
    })
    .await
    .unwrap();
    server.stop().await;
}

fn is_fenced(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_fences_the_first_whose_transaction_is_aborted() {
    let server = TestServer::start().await;
    let bs = server.bootstrap();
    create_topic(&bs, "fence", 2).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let zombie = txn_producer(&bs2, "same-id", 60_000);
        zombie.begin_transaction().unwrap();
        send(&zombie, "fence", 2, &keys("zombie", 4));
        let fresh = txn_producer(&bs2, "same-id", 60_000);
        // the zombie's open transaction was aborted by the new instance's init
        assert!(read_all(&bs2, "read_committed", "fence", 2, Duration::from_secs(1)).is_empty());
        let e = zombie.commit_transaction(TIMEOUT).expect_err("the zombie's commit must fail");
        assert!(is_fenced(&e), "{e:?}");
        fresh.begin_transaction().unwrap();
        send(&fresh, "fence", 2, &keys("fresh", 4));
        fresh.commit_transaction(TIMEOUT).unwrap();
        assert_eq!(read_all(&bs2, "read_committed", "fence", 2, Duration::from_secs(1)), set(&keys("fresh", 4)));
    })
    .await
    .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let server = TestServer::start_with(|c| c.transaction_abort_timed_out_transaction_cleanup_interval_ms = 100).await;
    let bs = server.bootstrap();
    create_topic(&bs, "slow", 1).await;
    let bs2 = bs.clone();
    tokio::task::spawn_blocking(move || {
        let p = txn_producer(&bs2, "slow-1", 1_000);
        p.begin_transaction().unwrap();
        send(&p, "slow", 1, &keys("late", 3));
        let c = consumer(&bs2, "read_committed", "w");
        assert_eq!(c.fetch_watermarks("slow", 0, TIMEOUT).unwrap(), (0, 0));
        // the timer aborts it: the ABORT marker moves the last stable offset past it
        let deadline = Instant::now() + TIMEOUT;
        while c.fetch_watermarks("slow", 0, TIMEOUT).unwrap().1 != 4 {
            assert!(Instant::now() < deadline, "the timed-out transaction was not aborted");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(read_all(&bs2, "read_committed", "slow", 1, Duration::from_secs(1)).is_empty());
        assert!(p.commit_transaction(TIMEOUT).is_err(), "a commit after the timeout abort must fail");
    })
    .await
    .unwrap();
    server.stop().await;
}

// ------------------------------------------------------------------ across kill -9

async fn start(dir: &Path, listen: &str) -> ServerProcess {
    let config = dir.with_extension("toml");
    std::fs::write(&config, "\"transaction.abort.timed.out.transaction.cleanup.interval.ms\" = 200\n").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--listen", listen, "--config"]).arg(&config).arg("--data-dir").arg(dir).env("RUST_LOG", "info");
    tokio::task::spawn_blocking(move || ServerProcess::spawn_logged(&mut cmd, TIMEOUT)).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_committed_transactions_are_whole_and_open_ones_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut corral = start(&data, "127.0.0.1:0").await;
    let addr = corral.addr().to_string();
    create_topic(&addr, "k9", 3).await;
    let bs = addr.clone();
    tokio::task::spawn_blocking(move || {
        let p = txn_producer(&bs, "k9-committed", 60_000);
        p.begin_transaction().unwrap();
        send(&p, "k9", 3, &keys("kept", 9));
        p.commit_transaction(TIMEOUT).unwrap();
        // left open at the kill, with a short timeout: aborted after the restart
        let open = txn_producer(&bs, "k9-open", 2_000);
        open.begin_transaction().unwrap();
        send(&open, "k9", 3, &keys("open", 6));
        std::mem::forget(open); // no abort on drop: the kill comes first
    })
    .await
    .unwrap();
    tokio::task::spawn_blocking(move || corral.kill()).await.unwrap().unwrap();
    let corral = start(&data, &addr).await;
    let bs = addr.clone();
    tokio::task::spawn_blocking(move || {
        let c = consumer(&bs, "read_committed", "w");
        // the open transaction holds the LSO until its timeout aborts it
        let deadline = Instant::now() + TIMEOUT;
        let end = c.fetch_watermarks("k9", 0, TIMEOUT).unwrap().1;
        let high = consumer(&bs, "read_uncommitted", "w2").fetch_watermarks("k9", 0, TIMEOUT).unwrap().1;
        assert!(end < high, "an open transaction survives the restart: LSO {end} < high watermark {high}");
        while c.fetch_watermarks("k9", 0, TIMEOUT).unwrap().1 < high {
            assert!(Instant::now() < deadline, "the open transaction was not aborted after the restart");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(read_all(&bs, "read_committed", "k9", 3, Duration::from_secs(1)), set(&keys("kept", 9)));
        // the same transactional ids work again
        let p = txn_producer(&bs, "k9-open", 60_000);
        p.begin_transaction().unwrap();
        send(&p, "k9", 3, &keys("again", 3));
        p.commit_transaction(TIMEOUT).unwrap();
        let want: BTreeSet<String> = keys("kept", 9).into_iter().chain(keys("again", 3)).collect();
        assert_eq!(read_all(&bs, "read_committed", "k9", 3, Duration::from_secs(1)), want);
    })
    .await
    .unwrap();
    drop(corral);
}

// ------------------------------------------------------------------ the wire, request by request

use common::RawClient;
use corral_testkit::s;
use kafka_protocol::messages::*;

fn add_partitions(id: &str, pid: i64, epoch: i16, topic: &str, parts: Vec<i32>) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(TopicName(s(topic))).with_partitions(parts),
        ])
}

fn partition_codes(r: &AddPartitionsToTxnResponse) -> Vec<i16> {
    r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)).collect()
}

fn end(id: &str, pid: i64, epoch: i16, commit: bool) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit)
}

fn init(id: &str, timeout_ms: i32) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_apis_answer_kafkas_errors_at_each_version() {
    let server = TestServer::start_with(|c| c.transaction_max_timeout_ms = 60_000).await;
    create_topic(&server.bootstrap(), "w", 2).await;
    let mut c = RawClient::connect(server.addr).await;
    // FindCoordinator for a transactional id names us; an empty one is refused
    let f = c.send(3, &FindCoordinatorRequest::default().with_key(s("w-1")).with_key_type(1)).await;
    assert_eq!((f.error_code, f.port), (0, server.addr.port() as i32));
    let f = c.send(3, &FindCoordinatorRequest::default().with_key(s("")).with_key_type(1)).await;
    assert_eq!(f.error_code, 42, "INVALID_REQUEST");
    // InitProducerId: a timeout above transaction.max.timeout.ms; then epoch 0, then 1
    assert_eq!(c.send(4, &init("w-1", 60_001)).await.error_code, 50, "INVALID_TRANSACTION_TIMEOUT");
    let first = c.send(4, &init("w-1", 10_000)).await;
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    let pid = first.producer_id.0;
    let second = c.send(4, &init("w-1", 10_000)).await;
    assert_eq!((second.error_code, second.producer_id.0, second.producer_epoch), (0, pid, 1));
    // the old epoch is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before
    assert_eq!(partition_codes(&c.send(1, &add_partitions("w-1", pid, 0, "w", vec![0])).await), vec![47]);
    assert_eq!(partition_codes(&c.send(2, &add_partitions("w-1", pid, 0, "w", vec![0])).await), vec![90]);
    assert_eq!(c.send(1, &end("w-1", pid, 0, true)).await.error_code, 47);
    assert_eq!(c.send(2, &end("w-1", pid, 0, true)).await.error_code, 90);
    // another producer id: INVALID_PRODUCER_ID_MAPPING; an unknown partition: UNKNOWN_TOPIC_OR_PARTITION,
    // the rest OPERATION_NOT_ATTEMPTED
    assert_eq!(partition_codes(&c.send(3, &add_partitions("w-1", pid + 1, 1, "w", vec![0])).await), vec![49]);
    assert_eq!(partition_codes(&c.send(3, &add_partitions("w-1", pid, 1, "w", vec![0, 7])).await), vec![55, 3]);
    // EndTxn with nothing ongoing: INVALID_TXN_STATE
    assert_eq!(c.send(3, &end("w-1", pid, 1, true)).await.error_code, 48);
    // a transaction: add, produce, commit; a retried commit succeeds, an abort after it does not
    assert_eq!(partition_codes(&c.send(3, &add_partitions("w-1", pid, 1, "w", vec![0, 1])).await), vec![0, 0]);
    let d = c
        .send(
            0,
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s("w-1")), TransactionalId(s("nope"))]),
        )
        .await;
    assert_eq!(d.transaction_states[0].transaction_state.as_str(), "Ongoing");
    assert_eq!(d.transaction_states[0].topics[0].partitions, vec![0, 1]);
    assert_eq!(d.transaction_states[1].error_code, 105, "TRANSACTIONAL_ID_NOT_FOUND");
    let l =
        c.send(1, &ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]).with_duration_filter(-1)).await;
    assert_eq!(l.transaction_states.iter().map(|t| t.transactional_id.as_str()).collect::<Vec<_>>(), vec!["w-1"]);
    assert_eq!(l.unknown_state_filters, vec![s("Bogus")]);
    assert_eq!(c.send(3, &end("w-1", pid, 1, true)).await.error_code, 0);
    assert_eq!(c.send(3, &end("w-1", pid, 1, true)).await.error_code, 0, "a retried commit");
    assert_eq!(c.send(3, &end("w-1", pid, 1, false)).await.error_code, 48);
    let d = c.send(0, &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s("w-1"))])).await;
    assert_eq!(d.transaction_states[0].transaction_state.as_str(), "CompleteCommit");
    // DescribeProducers: the markers left the producer's state in both partitions, no open transaction
    let p = c
        .send(
            0,
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default().with_name(TopicName(s("w"))).with_partition_indexes(vec![0, 1]),
            ]),
        )
        .await;
    for part in &p.topics[0].partitions {
        assert_eq!(part.error_code, 0);
        assert_eq!(
            part.active_producers.iter().map(|x| (x.producer_id.0, x.producer_epoch, x.current_txn_start_offset)).collect::<Vec<_>>(),
            vec![(pid, 1, -1)]
        );
    }
    // a transactional batch for a partition that was not added: INVALID_TXN_STATE
    let batch = corral_testkit::records::producer_batch(
        [corral_testkit::records::Rec { key: None, value: Some(bytes::Bytes::from_static(b"v")), timestamp: 1 }],
        pid,
        1,
        0,
        true,
    );
    let produce = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("w-1"))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("w")))
                .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
        ]);
    let r = c.send(9, &produce).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 48);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_list_offsets_limits_only_latest_and_timestamps() {
    let server = TestServer::start().await;
    create_topic(&server.bootstrap(), "lo", 1).await;
    let mut c = RawClient::connect(server.addr).await;
    let list = |ts: i64| {
        ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_isolation_level(1).with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s("lo")))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(ts)]),
        ])
    };
    let offset = |r: ListOffsetsResponse| r.topics[0].partitions[0].offset;
    // an empty partition: EARLIEST and LATEST are both 0 (EARLIEST is not limited by the LSO)
    assert_eq!(offset(c.send(9, &list(-2)).await), 0);
    assert_eq!(offset(c.send(9, &list(-1)).await), 0);
    // an open transaction's records: LATEST stops before them, a timestamp lookup finds nothing
    let first = c.send(4, &init("lo-1", 60_000)).await;
    let (pid, epoch) = (first.producer_id.0, first.producer_epoch);
    assert_eq!(partition_codes(&c.send(3, &add_partitions("lo-1", pid, epoch, "lo", vec![0])).await), vec![0]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let batch = corral_testkit::records::producer_batch(
        [corral_testkit::records::Rec { key: None, value: Some(bytes::Bytes::from_static(b"v")), timestamp: now }],
        pid,
        epoch,
        0,
        true,
    );
    let produce = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("lo-1"))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(s("lo")))
                .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch))]),
        ]);
    assert_eq!(c.send(9, &produce).await.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(offset(c.send(9, &list(-2)).await), 0);
    assert_eq!(offset(c.send(9, &list(-1)).await), 0, "LATEST is the last stable offset");
    assert_eq!(offset(c.send(9, &list(now - 1000)).await), -1, "the open transaction's record is not stable");
    assert_eq!(c.send(3, &end("lo-1", pid, epoch, true)).await.error_code, 0);
    assert_eq!(offset(c.send(9, &list(-1)).await), 2, "after the record and its marker");
    assert_eq!(offset(c.send(9, &list(now - 1000)).await), 0);
    server.stop().await;
}
