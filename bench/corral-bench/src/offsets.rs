//! The offsets-log scenarios: `offsets-replay` (a corral start until every shard has loaded a
//! large offsets log) and `compaction` (disk bytes against the live set under steady commits).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use corral::log::keyed::{KeyedConfig, KeyedLog};
use kafka_protocol::messages::ListGroupsRequest;

use crate::args::Args;
use crate::kafka::connect;
use crate::measure::median;
use crate::server::{dir_size, first_metadata, spawn_corral, tempdir};

/// One committed offset of topic "topic" as the offsets log stores it (key, value).
fn offset_record(group: String, partition: i32, offset: i64) -> (Bytes, Option<Bytes>) {
    use corral::coordinator::record::{OffsetValue, Record};
    let value = OffsetValue { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp: 1, expire_timestamp: None };
    let r = Record::Offset { group, topic: "topic".into(), partition, value: Some(value) }.encode();
    (r.key, r.value)
}

/// Writes `records` OffsetCommit records straight into a fresh data dir's offsets logs, then
/// times a corral start until every shard has loaded (ListGroups stops answering
/// COORDINATOR_LOAD_IN_PROGRESS).
pub async fn replay(a: &Args) {
    let bin = a.str("bin");
    let records: usize = a.get("records", 10_000_000);
    // --dir keeps the data dir (and reuses one written before) for profiling runs
    let keep: Option<PathBuf> = a.opt("dir");
    let dir = keep.clone().unwrap_or_else(tempdir);
    let reuse = keep.is_some() && dir.join("coordinator").exists();
    let meta = corral::log::datadir::Meta { cluster_id: "bench".into(), node_id: 1, offsets_partitions: 50 };
    let (data, _) = corral::log::datadir::DataDir::open(&dir, meta).expect("data dir");
    let write_started = Instant::now();
    let per_shard = if reuse { 0 } else { records / 50 };
    for shard in (0..50usize).filter(|_| per_shard > 0) {
        let storage = data.storage(&format!("coordinator/{shard:02}")).expect("storage");
        let log = KeyedLog::open("bench", storage, KeyedConfig::default(), |_| {}).expect("log");
        let mut chunk = Vec::with_capacity(10_000);
        for i in 0..per_shard {
            chunk.push(offset_record(format!("group-{shard}-{}", i % 1000), (i % 100) as i32, i as i64));
            if chunk.len() == 10_000 {
                log.append(&chunk, 1).expect("append");
                chunk.clear();
            }
        }
        log.append(&chunk, 1).expect("append");
        log.sync_now().expect("sync");
    }
    drop(data);
    let write_secs = write_started.elapsed().as_secs_f64();
    let size: u64 = dir_size(&dir);
    let mut runs = Vec::new();
    // each run starts from a copy: a loaded server compacts its logs, the next run must
    // replay every record again
    let work = dir.with_extension("run");
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&work);
        let copied = std::process::Command::new("cp").arg("-a").arg(&dir).arg(&work).status().expect("cp");
        assert!(copied.success(), "copying the data dir failed");
        let since = Instant::now();
        let server = spawn_corral(&bin, &work).await;
        let addr = server.addr().to_string();
        first_metadata(&addr, since).await;
        let mut c = connect(&addr).await.expect("connect");
        loop {
            let r = c.call(4, &ListGroupsRequest::default()).await.expect("list groups");
            if r.error_code == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        runs.push(since.elapsed().as_secs_f64());
        drop(server);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "{{\"scenario\":\"offsets-replay\",\"records\":{records},\"log_mb\":{:.0},\"write_seconds\":{write_secs:.1},\"load_seconds_median\":{:.3}}}",
        size as f64 / 1e6,
        median(&mut runs)
    );
}

/// 10M commits over 10k keys into one offsets log, compacted as the server does (whenever
/// more than half of it is superseded); reports disk bytes against the live set.
pub async fn compaction(a: &Args) {
    let commits: usize = a.get("commits", 10_000_000);
    let keys: usize = a.get("keys", 10_000);
    let dir = tempdir();
    let storage: Arc<dyn corral::log::storage::Storage> = Arc::new(corral::log::storage::FileStorage::open(&dir).expect("storage"));
    let config = KeyedConfig { segment_bytes: 100 << 20, delete_retention_ms: 86_400_000, min_compaction_bytes: 1 << 20 };
    let log = KeyedLog::open("bench", storage, config, |_| {}).expect("log");
    let started = Instant::now();
    let mut max_disk = 0u64;
    let mut compactions = 0;
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..commits {
        chunk.push(offset_record(format!("group-{}", (i % keys) / 10), (i % 10) as i32, i as i64));
        if chunk.len() == 10_000 {
            log.append(&chunk, 1).expect("append");
            chunk.clear();
            max_disk = max_disk.max(dir_size(&dir));
            if log.needs_compaction() {
                log.compact(2).expect("compact");
                compactions += 1;
            }
        }
    }
    log.append(&chunk, 1).expect("append");
    log.sync_now().expect("sync");
    if log.needs_compaction() {
        log.compact(2).expect("compact");
        compactions += 1;
    }
    let (_, live) = log.sizes();
    let disk = dir_size(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{{\"scenario\":\"compaction\",\"commits\":{commits},\"keys\":{keys},\"live_bytes\":{live},\"disk_bytes_after\":{disk},\"disk_bytes_max\":{max_disk},\"ratio_after\":{:.2},\"ratio_max\":{:.2},\"compactions\":{compactions},\"seconds\":{:.1}}}",
        disk as f64 / live as f64,
        max_disk as f64 / live as f64,
        started.elapsed().as_secs_f64()
    );
}
