//! The `corral` binary across real restarts on one data dir: graceful and `kill -9`, with a
//! real librdkafka; and what damaged or foreign data dirs do at start-up.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A corral process on a fixed port and data dir.
struct Corral {
    child: Child,
    port: u16,
    stderr: Arc<Mutex<String>>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Corral {
    fn start(dir: &Path, port: u16) -> Corral {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(first.contains("listening on"), "unexpected start line {first:?}; stderr: {}", stderr.lock().unwrap());
        Corral { child, port, stderr }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns how long the exit took and the exit status.
    fn stop(mut self) -> (Duration, std::process::ExitStatus) {
        let started = Instant::now();
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let status = self.child.wait().unwrap();
        (started.elapsed(), status)
    }
}

impl Drop for Corral {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary on a data dir expecting it to stop with an error within 15 s; returns its
/// stderr.
fn refused(dir: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("corral kept running on a damaged data dir {}: {err}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "corral exited 0 on a damaged data dir");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

fn admin(b: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", b).create().unwrap()
}

fn consumer(b: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
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
    let port = free_port();
    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
    let r = admin(&b)
        .create_topics(&[NewTopic::new("kept", 3, TopicReplication::Fixed(1)).set("retention.ms", "123456789")], &AdminOptions::new())
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let acked = produce(&b, "kept", 600, "all").await;
    commit(&b, "g", "kept", &[(0, 5), (1, 6), (2, 7)]);
    let bc = b.clone();
    let (md_before, marks_before) = tokio::task::spawn_blocking(move || {
        let c = consumer(&bc, "x");
        let md = c.fetch_metadata(Some("kept"), TIMEOUT).unwrap().topics()[0].partitions().len();
        let marks: Vec<(i64, i64)> = (0..3).map(|p| c.fetch_watermarks("kept", p, TIMEOUT).unwrap()).collect();
        (md, marks)
    })
    .await
    .unwrap();
    let (took, status) = corral.stop();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?}");
    eprintln!("graceful stop took {took:?}");

    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
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
    let port = free_port();
    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
    admin(&b).create_topics(&[NewTopic::new("k9", 2, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    let acked = produce(&b, "k9", 500, "1").await;
    let bc = b.clone();
    tokio::task::spawn_blocking(move || commit(&bc, "g9", "k9", &[(0, 100), (1, 200)])).await.unwrap();
    corral.kill9();
    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
    let bc = b.clone();
    let (got, offsets) = tokio::task::spawn_blocking(move || (read_all(&bc, "k9", 2, 500), committed(&bc, "g9", "k9", 2)))
        .await
        .unwrap();
    for (p, o, v) in &acked {
        assert_eq!(got.get(&(*p, *o)), Some(v), "acknowledged message {p}/{o} lost");
    }
    assert_eq!(offsets, vec![Offset::Offset(100), Offset::Offset(200)]);
    drop(corral);
}

type Member = (BaseConsumer<Events>, Arc<Mutex<Vec<String>>>);

struct Events(Arc<Mutex<Vec<String>>>);
impl ClientContext for Events {}
impl ConsumerContext for Events {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let e = match r {
            Rebalance::Assign(t) => format!("assign {:?}", t.elements().iter().map(|e| e.partition()).collect::<Vec<_>>()),
            Rebalance::Revoke(t) => format!("revoke {:?}", t.elements().iter().map(|e| e.partition()).collect::<Vec<_>>()),
            Rebalance::Error(e) => format!("error {e}"),
        };
        self.0.lock().unwrap().push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stable_group_survives_a_restart_without_rebalancing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
    admin(&b).create_topics(&[NewTopic::new("st", 4, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..2 {
        let events = Arc::new(Mutex::new(Vec::new()));
        let c: BaseConsumer<Events> = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "survivors")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "500")
            .create_with_context(Events(events.clone()))
            .unwrap();
        c.subscribe(&["st"]).unwrap();
        members.push((c, events));
    }
    let poll_for = |members: &[Member], d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            for (c, _) in members {
                let _ = c.poll(Duration::from_millis(20));
            }
        }
    };
    let deadline = Instant::now() + TIMEOUT;
    while members.iter().any(|(c, _)| c.assignment().unwrap().count() != 2) {
        assert!(Instant::now() < deadline, "no stable assignment");
        poll_for(&members, Duration::from_millis(100));
    }
    poll_for(&members, Duration::from_secs(2));
    let before: Vec<usize> = members.iter().map(|(_, e)| e.lock().unwrap().len()).collect();
    corral.kill9();
    let corral = Corral::start(dir.path(), port);
    // keep polling (heartbeats reconnect) well past the rebalance that would follow a loss
    poll_for(&members, Duration::from_secs(6));
    let after: Vec<usize> = members.iter().map(|(_, e)| e.lock().unwrap().len()).collect();
    assert_eq!(before, after, "a rebalance happened across the restart: {:?}", members.iter().map(|(_, e)| e.lock().unwrap().clone()).collect::<Vec<_>>());
    assert!(members.iter().all(|(c, _)| c.assignment().unwrap().count() == 2));
    drop(members);
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
    let port = free_port();
    let corral = Corral::start(dir.path(), port);
    let b = corral.bootstrap();
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
    corral.stop();
    let segment = find(dir.path(), ".log", "partitions").pop().expect("a partition segment");
    let pristine = std::fs::read(&segment).unwrap();

    // A torn tail (the last bytes cut) is cut off with a warning; the server starts.
    std::fs::write(&segment, &pristine[..pristine.len() - 5]).unwrap();
    let corral = Corral::start(dir.path(), port);
    std::thread::sleep(Duration::from_millis(300));
    assert!(corral.stderr.lock().unwrap().contains("torn tail"), "{}", corral.stderr.lock().unwrap());
    corral.stop();

    // A flipped byte before the tail stops start-up, naming the file and the offset.
    let mut flipped = std::fs::read(&segment).unwrap();
    flipped[80] ^= 0x10;
    std::fs::write(&segment, &flipped).unwrap();
    let err = refused(dir.path());
    assert!(err.contains("corrupt") && err.contains(&*segment.file_name().unwrap().to_string_lossy()) && err.contains("at byte 0"), "{err}");
    std::fs::write(&segment, &pristine[..pristine.len() - 5]).unwrap();

    // A corrupt offsets log also stops the server, once its shard loads.
    let shard_log = find(dir.path(), ".log", "coordinator").into_iter().find(|p| std::fs::metadata(p).unwrap().len() > 0).unwrap();
    let good = std::fs::read(&shard_log).unwrap();
    let mut bad = good.clone();
    bad[9] ^= 0x01;
    std::fs::write(&shard_log, &bad).unwrap();
    let err = refused(dir.path());
    assert!(err.contains("coordinator") && err.contains("corrupt"), "{err}");
    std::fs::write(&shard_log, &good).unwrap();

    // An unknown format version is refused with a clear message.
    let meta = dir.path().join("meta.properties");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, text.replace("format.version=1", "format.version=7")).unwrap();
    let err = refused(dir.path());
    assert!(err.contains("format version 7"), "{err}");
    std::fs::write(&meta, text).unwrap();

    // A data dir that cannot be written is an error naming it.
    let err = refused(Path::new("/proc/corral-cannot-write-here"));
    assert!(err.contains("/proc/corral-cannot-write-here"), "{err}");

    // And the repaired dir starts again with everything in place.
    let corral = Corral::start(dir.path(), port);
    let bc = corral.bootstrap();
    let offsets = tokio::task::spawn_blocking(move || committed(&bc, "gd", "dmg", 1)).await.unwrap();
    assert_eq!(offsets, vec![Offset::Offset(10)]);
    drop(corral);
}
