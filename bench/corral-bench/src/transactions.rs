//! The `transactions` scenario: P producers, each on its own connection and partition, in a
//! closed loop of transactions of N records — AddPartitionsToTxn (as a client does at the
//! start of each transaction),
//! transactional Produce (acks -1), EndTxn(commit), whose reply comes after its records are
//! durable and its markers written — or, with `--idempotent`, the same batches produced by
//! idempotent producers without transactions (the baseline for the transactions' overhead).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use corral_testkit::records::{Rec, producer_batch};
use corral_testkit::{Client, s};
use kafka_protocol::messages::*;

use crate::args::Args;
use crate::kafka::{connect, ensure_topic};
use crate::measure::{cpu_per_op, cpu_seconds, finish_run, json_str, now_ms, percentile};

/// The producer id and epoch InitProducerId hands out (with a transactional id, or without).
async fn init(c: &mut Client, transactional_id: Option<&str>) -> Result<(i64, i16), String> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = c.call(4, &req).await.map_err(|e| format!("InitProducerId: {e}"))?;
    if r.error_code != 0 {
        return Err(format!("InitProducerId: error code {}", r.error_code));
    }
    Ok((r.producer_id.0, r.producer_epoch))
}

fn produce(c: &mut Client, topic: &str, partition: i32, transactional_id: Option<&str>, records: Bytes) -> Bytes {
    c.frame(
        7,
        &ProduceRequest::default()
            .with_transactional_id(transactional_id.map(|t| TransactionalId(s(t))))
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records)),
            ])]),
    )
}

/// Error code of the one partition of a Produce v7 response.
fn produce_error(resp: &[u8], topic: &str) -> i16 {
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    resp.get(at..at + 2).map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]))
}

/// What every producer of a run shares: the load's shape and its counters.
struct Run {
    target: String,
    topic: String,
    per_txn: usize,
    idempotent: bool,
    stop: AtomicBool,
    /// Transactions (or batches) acknowledged.
    done: AtomicU64,
    /// AddPartitionsToTxn answered with an error (the transaction is not counted).
    errors: AtomicU64,
}

/// Producer `p`'s loop; its latencies (µs per transaction, or per batch when idempotent).
async fn producer(run: Arc<Run>, p: i32) -> Result<Vec<u64>, String> {
    let Run { target, topic, per_txn, idempotent, stop, done, errors } = &*run;
    let (per_txn, idempotent) = (*per_txn, *idempotent);
    let topic = topic.as_str();
    let mut c = connect(target).await.map_err(|e| format!("connect: {e}"))?;
    let txn_id = format!("bench-{topic}-{p}");
    let tid = (!idempotent).then_some(txn_id.as_str());
    let (pid, epoch) = init(&mut c, tid).await?;
    let value = Bytes::from(vec![b'x'; 100]);
    let mut sequence = 0i32;
    let mut lat = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if let Some(t) = tid {
            let add = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(t)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(vec![p]),
                ]);
            let r = c.call(1, &add).await.map_err(|e| format!("AddPartitionsToTxn: {e}"))?;
            if r.results_by_topic_v3_and_below.iter().any(|t| t.results_by_partition.iter().any(|x| x.partition_error_code != 0)) {
                errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        }
        let now = now_ms();
        let batch = producer_batch(
            (0..per_txn).map(|_| Rec { key: None, value: Some(value.clone()), timestamp: now }),
            pid,
            epoch,
            sequence,
            tid.is_some(),
        );
        sequence = sequence.wrapping_add(per_txn as i32);
        let frame = produce(&mut c, topic, p, tid, batch);
        let resp = c.round_trip(&frame).await.map_err(|e| format!("Produce: {e}"))?;
        if produce_error(&resp, topic) != 0 {
            return Err(format!("Produce: error code {}", produce_error(&resp, topic)));
        }
        if let Some(t) = tid {
            let end = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(t)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(true);
            let r = c.call(1, &end).await.map_err(|e| format!("EndTxn: {e}"))?;
            if r.error_code != 0 {
                return Err(format!("EndTxn: error code {}", r.error_code));
            }
        }
        lat.push(t.elapsed().as_micros() as u64);
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(lat)
}

pub async fn run(a: &Args) {
    let target = a.str("target");
    let producers: usize = a.get("producers", 10);
    let per_txn: usize = a.get("records-per-txn", 1);
    let seconds: f64 = a.get("seconds", 5.0);
    let idempotent = a.flag("idempotent");
    let pid: Option<u32> = a.opt("pid");
    let mode = if idempotent { "idempotent" } else { "transactional" };
    let topic = format!("txn-{per_txn}-{mode}");
    // --no-create: the topic exists (a peer without CreateTopics, such as the mock cluster)
    if !a.flag("no-create") {
        ensure_topic(&target, &topic, producers as i32).await;
    }

    let run = Arc::new(Run {
        target,
        topic,
        per_txn,
        idempotent,
        stop: AtomicBool::new(false),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let cpu0 = pid.map(cpu_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (run, failure) = (run.clone(), failure.clone());
        tasks.push(tokio::spawn(async move {
            match producer(run, p as i32).await {
                Ok(lat) => lat,
                Err(e) => {
                    failure.lock().expect("failure").get_or_insert(e);
                    Vec::new()
                }
            }
        }));
    }
    let (elapsed, cpu, _, lat) = finish_run(seconds, &run.stop, started, pid.zip(cpu0), None, tasks).await;
    let total = run.done.load(Ordering::Relaxed);
    let failed = failure.lock().expect("failure").clone().map_or(String::new(), |e| format!(",\"error\":{}", json_str(&e)));
    println!(
        "{{\"scenario\":\"transactions\",\"mode\":\"{mode}\",\"producers\":{producers},\"records_per_txn\":{per_txn},\"per_sec\":{:.0},\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"server_cpu_us_per_op\":{:.2},\"retried\":{}{failed}}}",
        total as f64 / elapsed,
        (total * per_txn as u64) as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu_per_op(cpu, total),
        run.errors.load(Ordering::Relaxed),
    );
}
