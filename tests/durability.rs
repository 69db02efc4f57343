//! The `corral` binary across real restarts on one data dir: graceful and `kill -9`, with a
//! real librdkafka; and what damaged or foreign data dirs do at start-up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_testkit::ServerProcess;
use corral_testkit::process::run_to_exit;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

const TIMEOUT: Duration = Duration::from_secs(30);

/// What a first start listens on: a port the kernel picks, which corral reports on its start
/// line. A restart listens on the address the previous run reported.
const ANY_PORT: &str = "127.0.0.1:0";

/// Starts the binary on `dir`, listening on `listen` ([`ANY_PORT`], or the address of an
/// earlier run on the same dir), and waits (off the runtime's workers) for its start line,
/// `corral VERSION MODE listening on ADDR, ...`. Its stderr is kept; it is killed if dropped
/// (a failed test leaves no process behind).
async fn start(dir: &Path, listen: &str) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--listen", listen, "--data-dir"]).arg(dir).env("RUST_LOG", "info");
    tokio::task::spawn_blocking(move || ServerProcess::spawn_logged(&mut cmd, TIMEOUT))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("no start line naming the address: {e}"))
}

/// Waits until corral has written `needle` to stderr; its stderr so far if it has not within
/// [`TIMEOUT`], or closed stderr (exited) first.
async fn logged(corral: &ServerProcess, needle: &'static str) -> Result<(), String> {
    let stderr = corral.stderr();
    tokio::task::spawn_blocking(move || stderr.wait_for_line(needle, TIMEOUT)).await.unwrap()
}

/// SIGKILL, and waits until the process is gone.
async fn kill9(mut corral: ServerProcess) {
    tokio::task::spawn_blocking(move || corral.kill()).await.unwrap().expect("a SIGKILLed corral exits");
}

/// SIGTERM; returns how long the exit took and the exit status.
async fn stop(mut corral: ServerProcess) -> (Duration, ExitStatus) {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let status = corral.terminate_within(TIMEOUT).unwrap().expect("corral exits on SIGTERM");
        (started.elapsed(), status)
    })
    .await
    .unwrap()
}

/// Runs the binary on a data dir expecting it to stop with an error within 15 s; returns its
/// stderr.
async fn refused(dir: &Path) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--listen", ANY_PORT, "--data-dir"]).arg(dir).stdout(Stdio::null());
    let (status, stderr) = tokio::task::spawn_blocking(move || run_to_exit(&mut cmd, Duration::from_secs(15))).await.unwrap().unwrap();
    let Some(status) = status else {
        panic!("corral kept running on a damaged data dir {}: {stderr}", dir.display());
    };
    assert!(!status.success(), "corral exited 0 on a damaged data dir");
    stderr
}

fn admin(b: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", b).create().unwrap()
}

fn consumer(b: &str, group: &str) -> BaseConsumer {
    ClientConfig::new().set("bootstrap.servers", b).set("group.id", group).set("enable.auto.commit", "false").create().unwrap()
}

async fn produce(b: &str, topic: &str, n: usize, acks: &str) -> Vec<(i32, i64, String)> {
    let p: FutureProducer = ClientConfig::new().set("bootstrap.servers", b).set("acks", acks).set("linger.ms", "2").create().unwrap();
    let mut sends = Vec::new();
    for i in 0..n {
        let v = format!("m{i}");
        let k = format!("k{}", i % 7);
        sends.push((v.clone(), p.send_result(FutureRecord::to(topic).key(&k).payload(&v)).unwrap()));
    }
    let mut acked = Vec::new();
    for (v, s) in sends {
        let d = s.await.unwrap().unwrap();
        acked.push((d.partition, d.offset, v));
    }
    acked
}

/// Reads every message of a topic: (partition, offset) → value.
fn read_all(b: &str, topic: &str, partitions: i32, expect: usize) -> HashMap<(i32, i64), String> {
    let c = consumer(b, "reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got = HashMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < expect && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            got.insert((m.partition(), m.offset()), String::from_utf8_lossy(m.payload().unwrap()).to_string());
        }
    }
    got
}

fn committed(b: &str, group: &str, topic: &str, partitions: i32) -> Vec<Offset> {
    let c = consumer(b, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // the coordinator may still be loading right after a restart: librdkafka retries
    let r = c.committed_offsets(tpl, TIMEOUT).unwrap();
    r.elements().iter().map(|e| e.offset()).collect()
}

fn commit(b: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let c = consumer(b, group);
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o)).unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_keeps_topics_messages_offsets_and_configs() {
    let dir = tempfile::tempdir().unwrap();
    let corral = start(dir.path(), ANY_PORT).await;
    let b = corral.addr().to_string();
    let r = admin(&b)
        .create_topics(&[NewTopic::new("kept", 3, TopicReplication::Fixed(1)).set("retention.ms", "123456789")], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let acked = produce(&b, "kept", 600, "all").await;
    let bc = b.clone();
    tokio::task::spawn_blocking(move || commit(&bc, "g", "kept", &[(0, 5), (1, 6), (2, 7)])).await.unwrap();
    let bc = b.clone();
    let (md_before, marks_before) = tokio::task::spawn_blocking(move || {
        let c = consumer(&bc, "x");
        let md = c.fetch_metadata(Some("kept"), TIMEOUT).unwrap().topics()[0].partitions().len();
        let marks: Vec<(i64, i64)> = (0..3).map(|p| c.fetch_watermarks("kept", p, TIMEOUT).unwrap()).collect();
        (md, marks)
    })
    .await
    .unwrap();
    let (took, status) = stop(corral).await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    eprintln!("graceful stop took {took:?}");

    let corral = start(dir.path(), &b).await;
    let b = corral.addr().to_string();
    let bc = b.clone();
    let (md, marks, got, offsets) = tokio::task::spawn_blocking(move || {
        let c = consumer(&bc, "x");
        let md = c.fetch_metadata(Some("kept"), TIMEOUT).unwrap().topics()[0].partitions().len();
        let marks: Vec<(i64, i64)> = (0..3).map(|p| c.fetch_watermarks("kept", p, TIMEOUT).unwrap()).collect();
        let got = read_all(&bc, "kept", 3, 600);
        (md, marks, got, committed(&bc, "g", "kept", 3))
    })
    .await
    .unwrap();
    assert_eq!(md, md_before);
    assert_eq!(marks, marks_before);
    for (p, o, v) in &acked {
        assert_eq!(got.get(&(*p, *o)), Some(v), "message at {p}/{o}");
    }
    assert_eq!(offsets, vec![Offset::Offset(5), Offset::Offset(6), Offset::Offset(7)]);
    let configs = admin(&b).describe_configs(&[ResourceSpecifier::Topic("kept")], &AdminOptions::new()).await.unwrap();
    let cfg = configs[0].as_ref().unwrap();
    assert_eq!(cfg.get("retention.ms").and_then(|e| e.value.clone()).as_deref(), Some("123456789"));
    drop(corral);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_message_or_commit() {
    let dir = tempfile::tempdir().unwrap();
    let corral = start(dir.path(), ANY_PORT).await;
    let b = corral.addr().to_string();
    admin(&b).create_topics(&[NewTopic::new("k9", 2, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    let acked = produce(&b, "k9", 500, "1").await;
    let bc = b.clone();
    tokio::task::spawn_blocking(move || commit(&bc, "g9", "k9", &[(0, 100), (1, 200)])).await.unwrap();
    kill9(corral).await;
    let corral = start(dir.path(), &b).await;
    let b = corral.addr().to_string();
    let bc = b.clone();
    let (got, offsets) = tokio::task::spawn_blocking(move || (read_all(&bc, "k9", 2, 500), committed(&bc, "g9", "k9", 2))).await.unwrap();
    for (p, o, v) in &acked {
        assert_eq!(got.get(&(*p, *o)), Some(v), "acknowledged message {p}/{o} lost");
    }
    assert_eq!(offsets, vec![Offset::Offset(100), Offset::Offset(200)]);
    drop(corral);
}

type Member = (BaseConsumer<Events>, Arc<Mutex<Seen>>);

/// What a member's callbacks saw: its rebalance events, and how many Heartbeat requests it
/// has sent (librdkafka's statistics, served by `poll`).
#[derive(Default)]
struct Seen {
    events: Vec<String>,
    heartbeats: i64,
}

struct Events(Arc<Mutex<Seen>>);
impl ClientContext for Events {
    fn stats(&self, stats: Statistics) {
        let sent: i64 = stats.brokers.values().filter_map(|b| b.req.get("Heartbeat")).sum();
        let mut seen = self.0.lock().unwrap();
        seen.heartbeats = seen.heartbeats.max(sent);
    }
}
impl ConsumerContext for Events {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let e = match r {
            Rebalance::Assign(t) => format!("assign {:?}", t.elements().iter().map(|e| e.partition()).collect::<Vec<_>>()),
            Rebalance::Revoke(t) => format!("revoke {:?}", t.elements().iter().map(|e| e.partition()).collect::<Vec<_>>()),
            Rebalance::Error(e) => format!("error {e}"),
        };
        self.0.lock().unwrap().events.push(e);
    }
}

/// Each member's (rebalance events seen, heartbeats sent).
fn marks(members: &[Member]) -> Vec<(usize, i64)> {
    members.iter().map(|(_, s)| s.lock().map(|s| (s.events.len(), s.heartbeats)).unwrap()).collect()
}

/// Polls every member (serving its callbacks) until `cond` holds; panics after [`TIMEOUT`].
fn poll_until(members: &[Member], what: &str, mut cond: impl FnMut(&[Member]) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond(members) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        for (c, _) in members {
            let _ = c.poll(Duration::from_millis(20));
        }
    }
}

/// Heartbeats that show the coordinator content with a member: with one in flight when
/// counting began, at least two were answered without an error (librdkafka sends one at a
/// time, and stops heartbeating to rejoin). A rebalance the coordinator wanted, or a member it
/// did not know, would have been the answer to one of them, and a rebalance event.
const CONTENT_HEARTBEATS: i64 = 3;

/// Polls until every member has sent `more` heartbeats beyond `from`, or one of them has seen
/// a rebalance event since `from`.
fn poll_heartbeats(members: &[Member], from: &[(usize, i64)], more: i64, what: &str) {
    poll_until(members, what, |ms| {
        let now = marks(ms);
        now.iter().zip(from).any(|(n, f)| n.0 != f.0) || now.iter().zip(from).all(|(n, f)| n.1 >= f.1 + more)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_group_survives_a_restart_without_rebalancing() {
    let dir = tempfile::tempdir().unwrap();
    let corral = start(dir.path(), ANY_PORT).await;
    let b = corral.addr().to_string();
    admin(&b).create_topics(&[NewTopic::new("st", 4, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    let bc = b.clone();
    // The members poll on a blocking thread, each step of the test in one closure.
    let (members, before) = tokio::task::spawn_blocking(move || {
        let mut members: Vec<Member> = Vec::new();
        for _ in 0..2 {
            let seen = Arc::new(Mutex::new(Seen::default()));
            let c: BaseConsumer<Events> = ClientConfig::new()
                .set("bootstrap.servers", &bc)
                .set("group.id", "survivors")
                .set("session.timeout.ms", "10000")
                .set("heartbeat.interval.ms", "500")
                .set("statistics.interval.ms", "100")
                .create_with_context(Events(seen.clone()))
                .unwrap();
            c.subscribe(&["st"]).unwrap();
            members.push((c, seen));
        }
        poll_until(&members, "two partitions each", |ms| ms.iter().all(|(c, _)| c.assignment().unwrap().count() == 2));
        // Settled: the coordinator answered heartbeats from both with no rebalance between.
        loop {
            let from = marks(&members);
            poll_heartbeats(&members, &from, CONTENT_HEARTBEATS, "a settled group");
            let now = marks(&members);
            if now.iter().zip(&from).all(|(n, f)| n.0 == f.0) {
                return (members, now);
            }
        }
    })
    .await
    .unwrap();
    kill9(corral).await;
    let corral = start(dir.path(), &b).await;
    let members = tokio::task::spawn_blocking(move || {
        // The restarted corral answers heartbeats as the group's coordinator (one more than
        // CONTENT_HEARTBEATS: the last statistics before the kill may have missed one sent to
        // the old process), or a rebalance event shows it lost the group.
        poll_heartbeats(&members, &before, CONTENT_HEARTBEATS + 1, "heartbeats to the restarted corral");
        let events: Vec<Vec<String>> = members.iter().map(|(_, s)| s.lock().unwrap().events.clone()).collect();
        let after = marks(&members);
        assert!(after.iter().zip(&before).all(|(a, b)| a.0 == b.0), "a rebalance happened across the restart: {events:?}");
        assert!(members.iter().all(|(c, _)| c.assignment().unwrap().count() == 2));
        members
    })
    .await
    .unwrap();
    // Closing waits for LeaveGroup answers: off the runtime's workers too.
    tokio::task::spawn_blocking(move || drop(members)).await.unwrap();
    drop(corral);
}

fn find(dir: &Path, suffix: &str, under: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(suffix) && p.to_string_lossy().contains(under) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_foreign_data_dirs_get_the_documented_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let corral = start(dir.path(), ANY_PORT).await;
    let b = corral.addr().to_string();
    admin(&b).create_topics(&[NewTopic::new("dmg", 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    for _ in 0..5 {
        // separate rounds: separate batches, so a torn tail leaves the earlier ones
        produce(&b, "dmg", 10, "1").await;
    }
    let bc = b.clone();
    tokio::task::spawn_blocking(move || {
        // two entries in the group's offsets log, so damage to the first is not its tail
        commit(&bc, "gd", "dmg", &[(0, 5)]);
        commit(&bc, "gd", "dmg", &[(0, 10)]);
    })
    .await
    .unwrap();
    let (_, status) = stop(corral).await;
    assert!(status.success(), "exit status {status:?}");
    let segment = find(dir.path(), ".log", "partitions").pop().expect("a partition segment");
    let pristine = std::fs::read(&segment).unwrap();

    // A torn tail (the last bytes cut) is cut off with a warning; the server starts.
    std::fs::write(&segment, &pristine[..pristine.len() - 5]).unwrap();
    let corral = start(dir.path(), ANY_PORT).await;
    if let Err(stderr) = logged(&corral, "torn tail").await {
        panic!("no torn-tail warning: {stderr}");
    }
    let (_, status) = stop(corral).await;
    assert!(status.success(), "exit status {status:?}");

    // A flipped byte before the tail stops start-up, naming the file and the offset.
    let mut flipped = std::fs::read(&segment).unwrap();
    flipped[80] ^= 0x10;
    std::fs::write(&segment, &flipped).unwrap();
    let err = refused(dir.path()).await;
    assert!(
        err.contains("corrupt") && err.contains(&*segment.file_name().unwrap().to_string_lossy()) && err.contains("at byte 0"),
        "{err}"
    );
    std::fs::write(&segment, &pristine[..pristine.len() - 5]).unwrap();

    // A corrupt offsets log also stops the server, once its shard loads.
    let shard_log = find(dir.path(), ".log", "coordinator").into_iter().find(|p| std::fs::metadata(p).unwrap().len() > 0).unwrap();
    let good = std::fs::read(&shard_log).unwrap();
    let mut bad = good.clone();
    bad[9] ^= 0x01;
    std::fs::write(&shard_log, &bad).unwrap();
    let err = refused(dir.path()).await;
    assert!(err.contains("coordinator") && err.contains("corrupt"), "{err}");
    std::fs::write(&shard_log, &good).unwrap();

    // An unknown format version is refused with a clear message.
    let meta = dir.path().join("meta.properties");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("format.version=1", "format.version=7")).unwrap();
    let err = refused(dir.path()).await;
    assert!(err.contains("format version 7"), "{err}");
    std::fs::write(&meta, text).unwrap();

    // A data dir that cannot be written is an error naming it.
    let err = refused(Path::new("/proc/corral-cannot-write-here")).await;
    assert!(err.contains("/proc/corral-cannot-write-here"), "{err}");

    // And the repaired dir starts again with everything in place.
    let corral = start(dir.path(), ANY_PORT).await;
    let bc = corral.addr().to_string();
    let offsets = tokio::task::spawn_blocking(move || committed(&bc, "gd", "dmg", 1)).await.unwrap();
    assert_eq!(offsets, vec![Offset::Offset(10)]);
    drop(corral);
}
