//! The `produce` scenario: closed-loop Produce over C connections, one partition each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::args::Args;
use crate::kafka::{batch, connect, ensure_topic, leader_addr, produce_frame};
use crate::measure::{cpu_per_op, cpu_seconds, finish_run, json_str, percentile};

/// Where the error code of the first partition of a Produce v7 response to one topic and one
/// partition sits: correlation id, topics count, topic name, partitions count, partition index.
fn produce_error_at(topic: &str) -> usize {
    4 + 4 + 2 + topic.len() + 4 + 4
}

/// Closed-loop produce over C connections; each request carries one batch of N records.
/// Connection `p` writes partition `p`, at the address of its leader in Metadata (through a
/// proxy, the listener of the upstream broker leading it), except with `--raw` (the echo
/// server answers no Metadata). `--pid` is the server's process, whose CPU is counted per
/// request; `--upstream-pid`, behind a proxy, the upstream broker's.
pub async fn run(a: &Args) {
    let target = a.str("target");
    let acks: i16 = a.get("acks", 1);
    let per_batch: usize = a.get("records-per-batch", 1);
    let value_len: usize = a.get("value-bytes", 100);
    let connections: usize = a.get("connections", 4);
    let seconds: f64 = a.get("seconds", 5.0);
    let pid: Option<u32> = a.opt("pid");
    let upstream_pid: Option<u32> = a.opt("upstream-pid");
    let raw = a.flag("raw");
    let topic = format!("produce-{per_batch}-{acks}");
    let leader_override: Option<String> = a.opt("leader-addr");
    let mut addrs = vec![leader_override.clone().unwrap_or_else(|| target.clone()); connections];
    if !raw {
        ensure_topic(&target, &topic, connections as i32).await;
        for (p, addr) in addrs.iter_mut().enumerate().filter(|_| leader_override.is_none()) {
            match leader_addr(&target, &topic, p as i32).await {
                Ok(a) => *addr = a,
                Err(e) => {
                    println!(
                        "{{\"scenario\":\"produce\",\"raw\":{raw},\"acks\":{acks},\"records_per_batch\":{per_batch},\"connections\":{connections},\"error\":{}}}",
                        json_str(&format!("finding the partition leader: {e}"))
                    );
                    return;
                }
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    // responses with a non-zero error code, and the last such code
    let errors = Arc::new(AtomicU64::new(0));
    let error_code = Arc::new(AtomicU64::new(0));
    let error_at = produce_error_at(&topic);
    let mut tasks = Vec::new();
    let cpu0 = pid.map(cpu_seconds);
    let upstream_cpu0 = upstream_pid.map(cpu_seconds);
    let started = Instant::now();
    for (p, addr) in addrs.iter().enumerate() {
        let (addr, topic, stop, requests, errors, error_code) =
            (addr.clone(), topic.clone(), stop.clone(), requests.clone(), errors.clone(), error_code.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await.expect("connect");
            let frame = produce_frame(&mut c, &topic, p as i32, acks, batch(per_batch, value_len, -1, 0));
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let Ok(resp) = c.round_trip(&frame).await else {
                    break;
                };
                lat.push(t.elapsed().as_micros() as u64);
                requests.fetch_add(1, Ordering::Relaxed);
                if !raw {
                    let code = resp.get(error_at..error_at + 2).map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
                    if code != 0 {
                        errors.fetch_add(1, Ordering::Relaxed);
                        error_code.store(code as u16 as u64, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let (elapsed, cpu, upstream_cpu, lat) =
        finish_run(seconds, &stop, started, pid.zip(cpu0), upstream_pid.zip(upstream_cpu0), tasks).await;
    let total = requests.load(Ordering::Relaxed);
    let cpu = cpu_per_op(cpu, total);
    let upstream_cpu = cpu_per_op(upstream_cpu, total);
    let errors = errors.load(Ordering::Relaxed);
    let mut distinct: Vec<&String> = addrs.iter().collect();
    distinct.sort();
    distinct.dedup();
    let addrs_json = distinct.iter().map(|a| json_str(a)).collect::<Vec<_>>().join(",");
    let failed = if errors > 0 {
        format!(
            ",\"error\":{}",
            json_str(&format!(
                "{errors} of {total} responses carried an error code (last: {})",
                error_code.load(Ordering::Relaxed) as u16 as i16
            ))
        )
    } else {
        String::new()
    };
    println!(
        "{{\"scenario\":\"produce\",\"raw\":{raw},\"acks\":{acks},\"records_per_batch\":{per_batch},\"connections\":{connections},\"addresses\":[{addrs_json}],\"requests_per_sec\":{:.0},\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"server_cpu_us_per_request\":{cpu:.2},\"upstream_cpu_us_per_request\":{upstream_cpu:.2},\"errors\":{errors}{failed}}}",
        total as f64 / elapsed,
        (total * per_batch as u64) as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}
