//! Mirroring committed offsets to the upstream cluster (`mirror.offsets`, on by default), so
//! that tools pointed at the upstream (kafka-consumer-groups, lag exporters) see every group's
//! progress.
//!
//! [`Mirrored`] wraps the offsets store: every OffsetCommit record appended (and every offset
//! or group tombstone) is noted per group, newest value per partition. A task sends the notes
//! once the records they came from are durable: a member-less ("simple") OffsetCommit to the
//! group's upstream coordinator, OffsetDelete for deleted offsets, DeleteGroups for deleted
//! groups. The upstream accepts member-less commits only while its own group of that id is
//! Empty, which holds as long as no client joins the group directly on the upstream cluster.
//! The mirror is best effort and asynchronous: corral's own store is the truth; a failed mirror
//! commit is retried while it is retriable and logged otherwise, and a newer commit of the same
//! partition replaces an older one still waiting.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::{DeleteGroupsRequest, FindCoordinatorRequest, GroupId, OffsetCommitRequest, OffsetDeleteRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Proxy;
use super::upstream::kafka_retriable;
use crate::coordinator::log::{BoxFuture, OffsetsStore, Replay};
use crate::coordinator::record::{RawRecord, Record};
use crate::error::ErrorCode;
use crate::log::LogError;

/// What to tell the upstream about one group.
#[derive(Debug, Default)]
struct Changes {
    shard: usize,
    /// The store position after the newest record noted.
    position: i64,
    /// The group was deleted (before the offsets below were committed again).
    delete_first: bool,
    /// `(topic, partition)` → the newest commit, or `None` to delete the offset.
    offsets: BTreeMap<(String, i32), Option<Commit>>,
}

/// One committed offset to mirror.
#[derive(Debug, Clone)]
struct Commit {
    offset: i64,
    leader_epoch: i32,
    metadata: String,
}

#[derive(Debug, Default)]
struct Notes {
    groups: Mutex<HashMap<String, Changes>>,
    wake: Notify,
}

/// An offsets store whose offset changes are mirrored upstream.
#[derive(Debug)]
pub struct Mirrored {
    inner: Arc<dyn OffsetsStore>,
    notes: Arc<Notes>,
}

impl Mirrored {
    pub fn new(inner: Arc<dyn OffsetsStore>, proxy: Arc<Proxy>, shutdown: CancellationToken) -> Self {
        let notes = Arc::new(Notes::default());
        tokio::spawn(run(notes.clone(), inner.clone(), proxy, shutdown));
        Mirrored { inner, notes }
    }

    fn note(&self, shard: usize, position: i64, records: &[RawRecord]) {
        let mut groups = None;
        for r in records {
            // only offset records and group tombstones matter: look at the key version first
            let kind = r.key.get(..2).map(|b| i16::from_be_bytes([b[0], b[1]]));
            let wanted = matches!(kind, Some(0) | Some(1)) || (kind == Some(2) && r.value.is_none());
            if !wanted {
                continue;
            }
            let Ok(record) = Record::decode(r) else { continue };
            let groups = groups.get_or_insert_with(|| self.notes.groups.lock().expect("mirror lock"));
            match record {
                Record::Offset { group, topic, partition, value } => {
                    let c = groups.entry(group).or_default();
                    c.shard = shard;
                    c.position = position;
                    c.offsets.insert(
                        (topic, partition),
                        value.map(|v| Commit { offset: v.offset, leader_epoch: v.leader_epoch, metadata: v.metadata }),
                    );
                }
                Record::Group { group, value: None } => {
                    let c = groups.entry(group).or_default();
                    c.shard = shard;
                    c.position = position;
                    c.delete_first = true;
                    c.offsets.clear();
                }
                _ => {}
            }
        }
        if groups.is_some() {
            self.notes.wake.notify_one();
        }
    }
}

impl OffsetsStore for Mirrored {
    fn load(&self, shard: usize, each: &mut Replay<'_>) -> Result<(), LogError> {
        self.inner.load(shard, each)
    }

    fn append(&self, shard: usize, records: &[RawRecord]) -> io::Result<i64> {
        let position = self.inner.append(shard, records)?;
        self.note(shard, position, records);
        Ok(position)
    }

    fn appended(&self, shard: usize) -> i64 {
        self.inner.appended(shard)
    }

    fn wait_durable(&self, shard: usize, position: i64) -> BoxFuture<'_, io::Result<()>> {
        self.inner.wait_durable(shard, position)
    }

    fn start(self: Arc<Self>, shard: usize, shutdown: CancellationToken) {
        self.inner.clone().start(shard, shutdown);
    }

    fn reset(&self, shard: usize) -> Result<(), LogError> {
        self.inner.reset(shard)
    }

    fn sync_all(&self) {
        self.inner.sync_all();
    }

    fn fenced(&self, shard: usize) -> bool {
        self.inner.fenced(shard)
    }

    /// Also forgets the shard's notes not mirrored yet: their positions belong to a writer
    /// that has stopped.
    fn release(&self, shard: usize) {
        self.inner.release(shard);
        self.notes.groups.lock().expect("mirror lock").retain(|_, c| c.shard != shard);
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The mirror task.
async fn run(notes: Arc<Notes>, store: Arc<dyn OffsetsStore>, proxy: Arc<Proxy>, shutdown: CancellationToken) {
    let mut coordinators: HashMap<String, i32> = HashMap::new();
    let mut unsupported = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = notes.wake.notified() => {}
        }
        let batch: Vec<(String, Changes)> = notes.groups.lock().expect("mirror lock").drain().collect();
        let mut retry = Vec::new();
        for (group, changes) in batch {
            if store.wait_durable(changes.shard, changes.position).await.is_err() {
                continue; // never acknowledged: nothing to mirror
            }
            match mirror_group(&proxy, &mut coordinators, &group, &changes).await {
                Ok(()) => metrics::counter!("corral_proxy_mirror_total", "result" => "ok").increment(1),
                Err(Failure::Retry(why)) => {
                    tracing::debug!(group, "mirroring offsets upstream: {why}; retrying");
                    retry.push((group, changes));
                }
                Err(Failure::Give(why)) => {
                    metrics::counter!("corral_proxy_mirror_total", "result" => "failed").increment(1);
                    tracing::warn!(group, "mirroring offsets upstream failed: {why}");
                }
                Err(Failure::Unsupported(why)) => {
                    metrics::counter!("corral_proxy_mirror_total", "result" => "unsupported").increment(1);
                    if unsupported.insert(why.clone()) {
                        tracing::info!(group, "not mirrored: {why}");
                    }
                }
            }
        }
        if !retry.is_empty() {
            {
                let mut groups = notes.groups.lock().expect("mirror lock");
                for (group, old) in retry {
                    let c = groups.entry(group).or_default();
                    // newer notes win; the old ones fill in what is not newer
                    if c.offsets.is_empty() && !c.delete_first {
                        c.shard = old.shard;
                        c.position = old.position;
                    }
                    if !c.delete_first {
                        c.delete_first = old.delete_first;
                        for (k, v) in old.offsets {
                            c.offsets.entry(k).or_insert(v);
                        }
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            notes.wake.notify_one();
        }
    }
}

enum Failure {
    Retry(String),
    Give(String),
    /// The upstream does not serve an api the mirror needs (librdkafka's mock cluster has no
    /// DeleteGroups): said once, then ignored.
    Unsupported(String),
}

fn from_code(what: &str, code: ErrorCode) -> Failure {
    let m = format!("{what} answered with error {code}");
    if kafka_retriable(code) { Failure::Retry(m) } else { Failure::Give(m) }
}

/// The upstream coordinator of `group` (cached; dropped from the cache when it moves).
async fn coordinator(proxy: &Proxy, cache: &mut HashMap<String, i32>, group: &str) -> Result<i32, Failure> {
    if let Some(n) = cache.get(group) {
        return Ok(*n);
    }
    let (resp, version) = proxy
        .call_any(3, |_| FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0))
        .await
        .map_err(|e| if e.is_retriable() { Failure::Retry(e.to_string()) } else { Failure::Give(e.to_string()) })?;
    let _ = version;
    let code = ErrorCode::from(resp.error_code);
    if code != ErrorCode::NONE {
        return Err(from_code("FindCoordinator", code));
    }
    cache.insert(group.to_string(), resp.node_id.0);
    Ok(resp.node_id.0)
}

async fn mirror_group(proxy: &Proxy, cache: &mut HashMap<String, i32>, group: &str, c: &Changes) -> Result<(), Failure> {
    let node = coordinator(proxy, cache, group).await?;
    let result = send(proxy, node, group, c).await;
    if let Err(Failure::Retry(_)) = &result {
        cache.remove(group);
    }
    result
}

async fn send(proxy: &Proxy, node: i32, group: &str, c: &Changes) -> Result<(), Failure> {
    let up = |e: super::upstream::UpstreamError| match e {
        super::upstream::UpstreamError::Unsupported { .. } => Failure::Unsupported(e.to_string()),
        e if e.is_retriable() => Failure::Retry(e.to_string()),
        e => Failure::Give(e.to_string()),
    };
    if c.delete_first {
        let (resp, _) =
            proxy.call(node, 2, |_| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))])).await.map_err(up)?;
        match resp.results.first().map(|r| ErrorCode::from(r.error_code)) {
            Some(ErrorCode::NONE) | Some(ErrorCode::GROUP_ID_NOT_FOUND) | None => {}
            Some(code) => return Err(from_code("DeleteGroups", code)),
        }
    }
    let mut commits: BTreeMap<&str, Vec<(i32, &Commit)>> = BTreeMap::new();
    let mut deletes: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for ((topic, partition), v) in &c.offsets {
        match v {
            Some(commit) => commits.entry(topic).or_default().push((*partition, commit)),
            None => deletes.entry(topic).or_default().push(*partition),
        }
    }
    if !commits.is_empty() {
        let (resp, _) = proxy
            .call(node, 8, |version| {
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id_or_member_epoch(-1)
                    .with_member_id(StrBytes::default())
                    .with_topics(
                        commits
                            .iter()
                            .map(|(topic, parts)| {
                                OffsetCommitRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(
                                    parts
                                        .iter()
                                        .map(|(p, commit)| {
                                            let mut e = OffsetCommitRequestPartition::default()
                                                .with_partition_index(*p)
                                                .with_committed_offset(commit.offset)
                                                .with_committed_metadata(Some(s(&commit.metadata)));
                                            if version >= 6 {
                                                e.committed_leader_epoch = commit.leader_epoch;
                                            }
                                            e
                                        })
                                        .collect(),
                                )
                            })
                            .collect(),
                    )
            })
            .await
            .map_err(up)?;
        let worst =
            resp.topics.iter().flat_map(|t| t.partitions.iter()).map(|p| ErrorCode::from(p.error_code)).find(|e| *e != ErrorCode::NONE);
        if let Some(code) = worst {
            return Err(from_code("OffsetCommit", code));
        }
    }
    if !deletes.is_empty() {
        let (resp, _) = proxy
            .call(node, 0, |_| {
                OffsetDeleteRequest::default().with_group_id(GroupId(s(group))).with_topics(
                    deletes
                        .iter()
                        .map(|(topic, parts)| {
                            OffsetDeleteRequestTopic::default().with_name(TopicName(s(topic))).with_partitions(
                                parts.iter().map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p)).collect(),
                            )
                        })
                        .collect(),
                )
            })
            .await
            .map_err(up)?;
        let code = ErrorCode::from(resp.error_code);
        if code != ErrorCode::NONE && code != ErrorCode::GROUP_ID_NOT_FOUND {
            return Err(from_code("OffsetDelete", code));
        }
    }
    Ok(())
}
