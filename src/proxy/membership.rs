//! Several proxies, one coordinator (`--cluster-name`): each proxy of a deployment is a member
//! of a consumer group on the upstream cluster, `__corral-<cluster name>`, subscribed to the
//! offsets topic. The partitions the group assigns to a proxy are the coordinator shards it
//! serves, the way a Kafka broker serves the `__consumer_offsets` partitions it leads; no
//! cluster protocol of corral's own is involved.
//!
//! ```text
//! proxy ─► FindCoordinator(__corral-<name>) ─► JoinGroup (protocol type "consumer": a
//!          subscription to the offsets topic, its own address as user data, the shards it owns)
//!       ◄─ the leader (one of the proxies) assigns: sticky and cooperative (below)
//!       ─► SyncGroup ◄─ its shards, and the whole shard → proxy map as user data
//!       ─► shards lost: unloaded at once; shards gained: fenced, read, served
//!       ─► Heartbeat every session/3; a rebalance, an eviction or a fenced shard: join again
//! ```
//!
//! **Cooperative.** A shard moves in two rebalances: the leader takes it from its owner in the
//! first (which unloads it and joins again) and gives it to its new owner in the second, so no
//! shard is ever assigned to two proxies in one generation. Shards stay where they are unless
//! the balance needs them elsewhere.
//!
//! **Fencing.** The group's assignment alone cannot stop a proxy that was paused or cut off
//! and has not noticed it lost a shard. The offsets store does: before a proxy reads a shard it
//! gains, it bumps the epoch of the shard's own producer (InitProducerId with the transactional
//! id `__corral-<name>-<shard>`) and writes a fence record with it; from then on the upstream
//! refuses the previous owner's appends (INVALID_PRODUCER_EPOCH), so everything the previous
//! owner had acknowledged is in what the new owner reads, and nothing it appends later lands.
//! A proxy whose append is refused that way unloads the shard and joins again.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;
use tokio_util::sync::CancellationToken;

use super::upstream::UpstreamConn;
use super::{Proxy, call_on};
use crate::coordinator::Coordinator;
use crate::error::ErrorCode;
use crate::plane::NodeAddr;

/// The assignment protocol every corral proxy names in its JoinGroup.
const PROTOCOL: &str = "corral-cooperative-sticky";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The settings of a shared coordinator.
#[derive(Debug, Clone)]
pub struct Sharing {
    /// The upstream group: `__corral-<cluster name>`.
    pub group: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
}

impl Sharing {
    pub fn new(cluster_name: &str, session_timeout_ms: i32) -> Sharing {
        Sharing { group: format!("__corral-{cluster_name}"), session_timeout_ms, rebalance_timeout_ms: session_timeout_ms.max(10_000) }
    }

    /// The transactional id of shard `shard`'s producer (its epoch fences the previous owner).
    pub fn shard_producer(&self, shard: usize) -> String {
        format!("{}-{shard}", self.group)
    }
}

// ---------------------------------------------------------------------- the shard map

/// Who serves each shard, as the last assignment said; shared with the request handlers
/// (FindCoordinator names the owner; Metadata lists every proxy).
#[derive(Debug)]
pub struct ShardMap {
    me: NodeAddr,
    inner: RwLock<MapState>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MapState {
    /// Every proxy of the deployment, as of the last assignment.
    pub instances: Vec<NodeAddr>,
    /// Per shard, its owner's index in `instances` (`None`: moving, or not assigned yet).
    pub owners: Vec<Option<usize>>,
}

impl ShardMap {
    pub fn new(me: NodeAddr) -> ShardMap {
        ShardMap { me, inner: RwLock::new(MapState::default()) }
    }

    /// The proxy serving `shard`, if the last assignment named one.
    pub fn owner(&self, shard: usize) -> Option<NodeAddr> {
        let m = self.inner.read().expect("shard map lock");
        m.owners.get(shard).copied().flatten().and_then(|i| m.instances.get(i)).cloned()
    }

    /// Every other proxy of the deployment (clients must know the nodes FindCoordinator names).
    pub fn peers(&self) -> Vec<NodeAddr> {
        let m = self.inner.read().expect("shard map lock");
        m.instances.iter().filter(|n| n.id != self.me.id).cloned().collect()
    }

    /// Whether the last assignment left shards to nobody (they move in the next rebalance).
    fn moving(&self) -> bool {
        self.inner.read().expect("shard map lock").owners.iter().any(Option::is_none)
    }

    fn set(&self, state: MapState) {
        *self.inner.write().expect("shard map lock") = state;
    }
}

// ---------------------------------------------------------------------- encodings

/// A bounds-checked reader of the big-endian encodings below: nothing is sized from a claimed
/// count before the bytes are there.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.i32()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?))
    }
    /// An array's count, if it can be that many elements of at least `min` bytes each.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.i32()?).ok()?;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }
}

fn put_str(b: &mut BytesMut, v: &str) {
    b.put_i16(v.len() as i16);
    b.put_slice(v.as_bytes());
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn put_node(b: &mut BytesMut, n: &NodeAddr) {
    b.put_i32(n.id);
    put_str(b, n.host.as_str());
    b.put_i32(n.port);
}

fn read_node(r: &mut Reader<'_>) -> Option<NodeAddr> {
    Some(NodeAddr { id: r.i32()?, host: s(&r.str()?), port: r.i32()? })
}

/// `(topic, partitions)` lists, as both ConsumerProtocol messages carry them.
fn put_partitions(b: &mut BytesMut, topic: &str, partitions: &[i32]) {
    b.put_i32(1);
    put_str(b, topic);
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
}

fn read_partitions(r: &mut Reader<'_>, topic: &str) -> Option<Vec<i32>> {
    let mut out = Vec::new();
    for _ in 0..r.count(6)? {
        let t = r.str()?;
        let n = r.count(4)?;
        let ps = (0..n).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
        if t == topic {
            out.extend(ps);
        }
    }
    Some(out)
}

/// A JoinGroup's metadata: a ConsumerProtocol subscription (version 1) to the offsets topic,
/// with the proxy's address as user data and the shards it owns as its owned partitions.
pub(crate) fn encode_subscription(topic: &str, me: &NodeAddr, owned: &[i32]) -> Bytes {
    let mut user = BytesMut::new();
    user.put_i16(0);
    put_node(&mut user, me);
    let mut b = BytesMut::new();
    b.put_i16(1);
    b.put_i32(1);
    put_str(&mut b, topic);
    put_bytes(&mut b, &user);
    put_partitions(&mut b, topic, owned);
    b.freeze()
}

/// A member's subscription: its address and the shards it owns. `None` if it is not a corral
/// proxy's.
pub(crate) fn decode_subscription(meta: &[u8], topic: &str) -> Option<(NodeAddr, Vec<i32>)> {
    let mut r = Reader(meta);
    let version = r.i16()?;
    if version < 1 {
        return None;
    }
    for _ in 0..r.count(2)? {
        r.str()?;
    }
    let mut u = Reader(r.bytes()??);
    if u.i16()? != 0 {
        return None;
    }
    let node = read_node(&mut u)?;
    let owned = read_partitions(&mut r, topic)?;
    Some((node, owned))
}

/// A member's SyncGroup assignment: a ConsumerProtocol assignment (version 0) of its shards,
/// with the whole map as user data.
pub(crate) fn encode_assignment(topic: &str, shards: &[i32], map: &MapState) -> Bytes {
    let mut user = BytesMut::new();
    user.put_i16(0);
    user.put_i32(map.instances.len() as i32);
    for n in &map.instances {
        put_node(&mut user, n);
    }
    user.put_i32(map.owners.len() as i32);
    for o in &map.owners {
        user.put_i32(o.map_or(-1, |i| i as i32));
    }
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_partitions(&mut b, topic, shards);
    put_bytes(&mut b, &user);
    b.freeze()
}

/// A SyncGroup assignment: this proxy's shards and the map. `None` if it does not parse (an
/// empty assignment, which a coordinator gives a member the leader left out, is no shards and
/// no map).
pub(crate) fn decode_assignment(bytes: &[u8], topic: &str) -> Option<(Vec<i32>, MapState)> {
    if bytes.is_empty() {
        return Some((Vec::new(), MapState::default()));
    }
    let mut r = Reader(bytes);
    r.i16()?;
    let shards = read_partitions(&mut r, topic)?;
    let Some(user) = r.bytes()? else { return Some((shards, MapState::default())) };
    let mut u = Reader(user);
    if u.i16()? != 0 {
        return None;
    }
    let instances = (0..u.count(10)?).map(|_| read_node(&mut u)).collect::<Option<Vec<_>>>()?;
    let owners =
        (0..u.count(4)?).map(|_| u.i32().map(|i| usize::try_from(i).ok().filter(|i| *i < instances.len()))).collect::<Option<Vec<_>>>()?;
    Some((shards, MapState { instances, owners }))
}

// ---------------------------------------------------------------------- the assignor

/// One member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub member_id: String,
    pub instance: NodeAddr,
    /// The shards it says it owns.
    pub owned: Vec<i32>,
}

/// The leader's assignment of `shards` shards to `members`: per member (in the given order)
/// its shards, and per shard the index of its owner this generation.
///
/// Sticky and cooperative: every member gets `shards / n` shards, some one more (those that
/// own the most now, so the fewest move); a member keeps what it owns up to its share; a
/// shard that a member must give up is assigned to nobody this generation (its owner drops it
/// and joins again, and the next rebalance hands it on), so no shard ever has two owners in
/// one generation. A shard two members claim (a stale claim) stays with the first by member id.
pub(crate) fn assign(shards: usize, members: &[Candidate]) -> (Vec<Vec<i32>>, Vec<Option<usize>>) {
    let n = members.len();
    let mut out: Vec<Vec<i32>> = vec![Vec::new(); n];
    let mut owners: Vec<Option<usize>> = vec![None; shards];
    if n == 0 {
        return (out, owners);
    }
    let mut by_id: Vec<usize> = (0..n).collect();
    by_id.sort_by(|a, b| members[*a].member_id.cmp(&members[*b].member_id));
    // valid claims: in range, first claimant by member id
    let mut claimed: Vec<Option<usize>> = vec![None; shards];
    let mut claims: Vec<Vec<i32>> = vec![Vec::new(); n];
    for &m in &by_id {
        let mut own: Vec<i32> = members[m].owned.clone();
        own.sort_unstable();
        own.dedup();
        for sh in own {
            if let Some(c) = usize::try_from(sh).ok().and_then(|i| claimed.get_mut(i))
                && c.is_none()
            {
                *c = Some(m);
                claims[m].push(sh);
            }
        }
    }
    // shares: the members that own the most get the extra shards
    let (base, extra) = (shards / n, shards % n);
    let mut by_claims = by_id.clone();
    by_claims.sort_by(|a, b| claims[*b].len().cmp(&claims[*a].len()).then(members[*a].member_id.cmp(&members[*b].member_id)));
    let mut quota = vec![base; n];
    for &m in by_claims.iter().take(extra) {
        quota[m] += 1;
    }
    // keep what is owned, up to the share; the rest is revoked (assigned to nobody this time)
    for &m in &by_id {
        for &sh in claims[m].iter().take(quota[m]) {
            out[m].push(sh);
            owners[sh as usize] = Some(m);
        }
    }
    // shards nobody owned go to members below their share, in member id order
    let mut free = (0..shards).filter(|i| claimed[*i].is_none());
    for &m in &by_id {
        while out[m].len() < quota[m] {
            let Some(sh) = free.next() else { break };
            out[m].push(sh as i32);
            owners[sh] = Some(m);
        }
    }
    for o in &mut out {
        o.sort_unstable();
    }
    (out, owners)
}

// ---------------------------------------------------------------------- the member

/// What ends one stretch of membership.
#[derive(Debug)]
enum Next {
    /// Join again (a rebalance, shards given up, a fenced shard).
    Rejoin,
    /// Find the group coordinator again (it moved, or the link broke).
    Rediscover(String),
    /// The group no longer knows this member: every shard is lost; join as a new member.
    Reset(String),
}

/// This proxy as a member of the upstream group.
#[derive(Debug)]
pub struct Membership {
    proxy: Arc<Proxy>,
    coordinator: Arc<Coordinator>,
    map: Arc<ShardMap>,
    sharing: Sharing,
    topic: String,
    shards: usize,
    /// The member id and the group coordinator's node, for the LeaveGroup at shutdown.
    last: Mutex<(String, Option<i32>)>,
}

impl Membership {
    pub fn new(proxy: Arc<Proxy>, coordinator: Arc<Coordinator>, map: Arc<ShardMap>, sharing: Sharing, topic: &str) -> Arc<Self> {
        let shards = coordinator.partitions();
        Arc::new(Membership { proxy, coordinator, map, sharing, topic: topic.to_string(), shards, last: Mutex::new((String::new(), None)) })
    }

    /// The upstream group's name.
    pub fn group(&self) -> &str {
        &self.sharing.group
    }

    fn session(&self) -> Duration {
        Duration::from_millis(self.sharing.session_timeout_ms.max(1) as u64)
    }

    /// Stays a member until `shutdown`, then gives up every shard and leaves the group (so
    /// its shards move at once rather than after the session timeout).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut member_id = String::new();
        let mut owned: BTreeSet<i32> = BTreeSet::new();
        let mut last_ok = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => break,
                n = self.stretch(&mut member_id, &mut owned, &mut last_ok) => n,
            };
            match next {
                Next::Rejoin => {
                    delay = Duration::from_millis(100);
                    continue;
                }
                Next::Rediscover(why) => {
                    tracing::warn!(group = %self.sharing.group, "shared coordinator: {why}; finding the group coordinator again")
                }
                Next::Reset(why) => {
                    tracing::warn!(group = %self.sharing.group, "shared coordinator: {why}; every shard is given up and the proxy joins as a new member");
                    self.give_up(&mut owned);
                    member_id.clear();
                }
            }
            // a member that could not heartbeat for a whole session has been evicted: its
            // shards are someone else's now
            if !owned.is_empty() && last_ok.elapsed() > self.session() {
                tracing::warn!(group = %self.sharing.group, "no heartbeat got through for a whole session: giving up every shard");
                self.give_up(&mut owned);
                member_id.clear();
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        self.give_up(&mut owned);
        self.leave(&member_id).await;
    }

    /// Unloads every shard this proxy owns.
    fn give_up(&self, owned: &mut BTreeSet<i32>) {
        for sh in std::mem::take(owned) {
            self.coordinator.lose(sh as usize);
        }
        self.map.set(MapState::default());
    }

    /// Finds the group coordinator, then joins, syncs and heartbeats until something ends it.
    async fn stretch(&self, member_id: &mut String, owned: &mut BTreeSet<i32>, last_ok: &mut Instant) -> Next {
        let node = match self.find_coordinator().await {
            Ok(n) => n,
            Err(e) => return Next::Rediscover(e),
        };
        let Some(addr) = self.proxy.cluster.upstream_addr(node) else {
            return Next::Rediscover(format!("the group coordinator, node {node}, is not a known broker"));
        };
        let conn = match self.proxy.pool.connect(node, &addr).await {
            Ok(c) => c,
            Err(e) => return Next::Rediscover(format!("connecting to the group coordinator: {e}")),
        };
        self.last.lock().expect("membership lock").1 = Some(node);
        loop {
            match self.join_and_sync(&conn, member_id, owned).await {
                Ok(generation) => {
                    *last_ok = Instant::now();
                    self.last.lock().expect("membership lock").0 = member_id.clone();
                    match self.heartbeat(&conn, member_id, generation, owned, last_ok, self.map.moving()).await {
                        Next::Rejoin => continue,
                        other => return other,
                    }
                }
                Err(Next::Rejoin) => continue,
                Err(other) => return other,
            }
        }
    }

    async fn find_coordinator(&self) -> Result<i32, String> {
        let (resp, _) = self
            .proxy
            .call_any(3, |_| FindCoordinatorRequest::default().with_key(s(&self.sharing.group)).with_key_type(0))
            .await
            .map_err(|e| format!("FindCoordinator: {e}"))?;
        match ErrorCode::from(resp.error_code) {
            ErrorCode::NONE => Ok(resp.node_id.0),
            code => Err(format!("FindCoordinator answered {code}")),
        }
    }

    /// One JoinGroup (and the member-id handshake) and SyncGroup; applies the assignment.
    /// Returns the generation.
    async fn join_and_sync(&self, conn: &UpstreamConn, member_id: &mut String, owned: &mut BTreeSet<i32>) -> Result<i32, Next> {
        let me = self.proxy.me();
        let wait = Duration::from_millis(self.sharing.rebalance_timeout_ms as u64) + Duration::from_secs(5);
        let join = loop {
            let claims: Vec<i32> = owned.iter().copied().collect();
            let metadata = encode_subscription(&self.topic, &me, &claims);
            let request = |v: i16| {
                let r = JoinGroupRequest::default()
                    .with_group_id(GroupId(s(&self.sharing.group)))
                    .with_session_timeout_ms(self.sharing.session_timeout_ms)
                    .with_member_id(s(member_id))
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(s(PROTOCOL)).with_metadata(metadata.clone())]);
                if v >= 1 { r.with_rebalance_timeout_ms(self.sharing.rebalance_timeout_ms) } else { r }
            };
            let resp = match tokio::time::timeout(wait, call_on(conn, 7, request)).await {
                Ok(Ok((resp, _))) => resp,
                Ok(Err(e)) => return Err(Next::Rediscover(format!("JoinGroup: {e}"))),
                Err(_) => return Err(Next::Rediscover("JoinGroup got no answer".into())),
            };
            match ErrorCode::from(resp.error_code) {
                ErrorCode::NONE => break resp,
                ErrorCode::MEMBER_ID_REQUIRED => *member_id = resp.member_id.to_string(),
                ErrorCode::UNKNOWN_MEMBER_ID => return Err(Next::Reset("JoinGroup: the member id is unknown".into())),
                ErrorCode::REBALANCE_IN_PROGRESS | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                code => return Err(Next::Rediscover(format!("JoinGroup answered {code}"))),
            }
        };
        *member_id = join.member_id.to_string();
        let generation = join.generation_id;
        let assignments = if join.leader == join.member_id {
            let mut candidates = Vec::new();
            for m in &join.members {
                match decode_subscription(&m.metadata, &self.topic) {
                    Some((instance, owned)) => candidates.push(Candidate { member_id: m.member_id.to_string(), instance, owned }),
                    None => {
                        tracing::warn!(member = %m.member_id, "a member of the shared coordinator's group is not a corral proxy: it gets no shard")
                    }
                }
            }
            let (per_member, owners) = assign(self.shards, &candidates);
            let map = MapState { instances: candidates.iter().map(|c| c.instance.clone()).collect(), owners };
            tracing::info!(
                group = %self.sharing.group,
                generation,
                members = candidates.len(),
                moving = map.owners.iter().filter(|o| o.is_none()).count(),
                "assigned the coordinator shards"
            );
            candidates
                .iter()
                .zip(per_member)
                .map(|(c, shards)| {
                    SyncGroupRequestAssignment::default().with_member_id(s(&c.member_id)).with_assignment(encode_assignment(
                        &self.topic,
                        &shards,
                        &map,
                    ))
                })
                .collect()
        } else {
            Vec::new()
        };
        let request = |v: i16| {
            let r = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&self.sharing.group)))
                .with_generation_id(generation)
                .with_member_id(s(member_id))
                .with_assignments(assignments.clone());
            if v >= 5 { r.with_protocol_type(Some(s("consumer"))).with_protocol_name(Some(s(PROTOCOL))) } else { r }
        };
        let sync = match tokio::time::timeout(wait, call_on(conn, 5, request)).await {
            Ok(Ok((resp, _))) => resp,
            Ok(Err(e)) => return Err(Next::Rediscover(format!("SyncGroup: {e}"))),
            Err(_) => return Err(Next::Rediscover("SyncGroup got no answer".into())),
        };
        match ErrorCode::from(sync.error_code) {
            ErrorCode::NONE => {}
            ErrorCode::REBALANCE_IN_PROGRESS => return Err(Next::Rejoin),
            c @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION | ErrorCode::FENCED_INSTANCE_ID) => {
                return Err(Next::Reset(format!("SyncGroup answered {c}")));
            }
            code => return Err(Next::Rediscover(format!("SyncGroup answered {code}"))),
        }
        let Some((mine, map)) = decode_assignment(&sync.assignment, &self.topic) else {
            return Err(Next::Reset("the assignment does not parse".into()));
        };
        let mine: BTreeSet<i32> = mine.into_iter().filter(|s| usize::try_from(*s).is_ok_and(|s| s < self.shards)).collect();
        let lost: Vec<i32> = owned.difference(&mine).copied().collect();
        let gained: Vec<i32> = mine.difference(owned).copied().collect();
        for sh in &lost {
            self.coordinator.lose(*sh as usize);
        }
        self.map.set(map);
        for sh in &gained {
            self.coordinator.gain(*sh as usize);
        }
        if !lost.is_empty() || !gained.is_empty() {
            tracing::info!(group = %self.sharing.group, generation, ?gained, ?lost, owned = mine.len(), "coordinator shards changed hands");
        }
        *owned = mine;
        if !lost.is_empty() {
            // the shards given up go to their new owners in the next rebalance
            return Err(Next::Rejoin);
        }
        Ok(generation)
    }

    /// Heartbeats until the group rebalances, forgets this member, or the link fails; a shard
    /// found fenced meanwhile makes it join again.
    /// While shards are moving (given up by their owner, not yet handed on), it heartbeats
    /// every 100 ms rather than every third of the session, to join the rebalance that hands
    /// them on at once.
    async fn heartbeat(
        &self,
        conn: &UpstreamConn,
        member_id: &str,
        generation: i32,
        owned: &mut BTreeSet<i32>,
        last_ok: &mut Instant,
        moving: bool,
    ) -> Next {
        let every = if moving { Duration::from_millis(100) } else { self.session() / 3 };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.coordinator.fenced.notified() => {
                    owned.retain(|sh| self.coordinator.owns(*sh as usize));
                    return Next::Rejoin;
                }
            }
            if last_ok.elapsed() > self.session() {
                // paused past the session timeout (a stopped process, a starved runtime): the
                // group has moved on; stop serving before anything else
                return Next::Reset("no heartbeat for a whole session".into());
            }
            let request = |_| {
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s(&self.sharing.group)))
                    .with_generation_id(generation)
                    .with_member_id(s(member_id))
            };
            let resp = match tokio::time::timeout(self.session(), call_on(conn, 4, request)).await {
                Ok(Ok((resp, _))) => resp,
                Ok(Err(e)) => return Next::Rediscover(format!("Heartbeat: {e}")),
                Err(_) => return Next::Rediscover("Heartbeat got no answer".into()),
            };
            match ErrorCode::from(resp.error_code) {
                ErrorCode::NONE => *last_ok = Instant::now(),
                ErrorCode::REBALANCE_IN_PROGRESS => return Next::Rejoin,
                c @ (ErrorCode::UNKNOWN_MEMBER_ID | ErrorCode::ILLEGAL_GENERATION | ErrorCode::FENCED_INSTANCE_ID) => {
                    return Next::Reset(format!("Heartbeat answered {c}"));
                }
                code => return Next::Rediscover(format!("Heartbeat answered {code}")),
            }
        }
    }

    /// LeaveGroup, best effort and bounded (shutdown).
    async fn leave(&self, member_id: &str) {
        let node = self.last.lock().expect("membership lock").1;
        let (Some(node), false) = (node, member_id.is_empty()) else { return };
        let request = |v: i16| {
            let r = LeaveGroupRequest::default().with_group_id(GroupId(s(&self.sharing.group)));
            if v >= 3 {
                r.with_members(vec![MemberIdentity::default().with_member_id(s(member_id))])
            } else {
                r.with_member_id(s(member_id))
            }
        };
        match tokio::time::timeout(Duration::from_secs(2), self.proxy.call(node, 4, request)).await {
            Ok(Ok(_)) => tracing::info!(group = %self.sharing.group, "left the shared coordinator's group"),
            Ok(Err(e)) => tracing::warn!(group = %self.sharing.group, "leaving the shared coordinator's group: {e}"),
            Err(_) => tracing::warn!(group = %self.sharing.group, "leaving the shared coordinator's group: no answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: i32) -> NodeAddr {
        NodeAddr { id, host: s("127.0.0.1"), port: 9000 + id }
    }

    fn member(id: &str, owned: &[i32]) -> Candidate {
        let n = id.bytes().map(i32::from).sum();
        Candidate { member_id: id.into(), instance: node(n), owned: owned.to_vec() }
    }

    fn every_shard_once(per: &[Vec<i32>], owners: &[Option<usize>]) {
        for (m, shards) in per.iter().enumerate() {
            for sh in shards {
                assert_eq!(owners[*sh as usize], Some(m), "shard {sh}");
            }
        }
        let total: usize = per.iter().map(Vec::len).sum();
        assert_eq!(total, owners.iter().filter(|o| o.is_some()).count());
    }

    #[test]
    fn a_fresh_group_gets_every_shard_balanced() {
        let members = [member("a", &[]), member("b", &[]), member("c", &[])];
        let (per, owners) = assign(50, &members);
        every_shard_once(&per, &owners);
        assert!(owners.iter().all(Option::is_some));
        let sizes: Vec<usize> = per.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.iter().all(|n| *n == 16 || *n == 17), "{sizes:?}");
    }

    #[test]
    fn a_member_joining_takes_shards_in_two_rounds_and_nothing_else_moves() {
        // round 0: a and b share 10 shards
        let (per, _) = assign(10, &[member("a", &[]), member("b", &[])]);
        let (a0, b0) = (per[0].clone(), per[1].clone());
        // c joins: a and b keep up to their share; what they give up goes to nobody yet
        let members = [member("a", &a0), member("b", &b0), member("c", &[])];
        let (per, owners) = assign(10, &members);
        every_shard_once(&per, &owners);
        assert!(per[0].iter().all(|s| a0.contains(s)) && per[1].iter().all(|s| b0.contains(s)), "kept shards stay put");
        assert!(per[2].is_empty(), "revoked shards are not handed on in the same generation: {per:?}");
        let revoked = owners.iter().filter(|o| o.is_none()).count();
        assert_eq!(revoked, 10 - per[0].len() - per[1].len());
        assert!(revoked >= 3);
        // round 2: a and b rejoin without them; c gets them, nothing else moves
        let members = [member("a", &per[0]), member("b", &per[1]), member("c", &[])];
        let (per2, owners) = assign(10, &members);
        every_shard_once(&per2, &owners);
        assert_eq!((&per2[0], &per2[1]), (&per[0], &per[1]));
        assert_eq!(per2[2].len(), revoked);
        assert!(owners.iter().all(Option::is_some));
    }

    #[test]
    fn a_member_leaving_hands_its_shards_to_the_rest_at_once() {
        let (per, _) = assign(9, &[member("a", &[]), member("b", &[]), member("c", &[])]);
        let members = [member("a", &per[0]), member("c", &per[2])];
        let (after, owners) = assign(9, &members);
        every_shard_once(&after, &owners);
        assert!(owners.iter().all(Option::is_some));
        assert!(per[0].iter().all(|s| after[0].contains(s)) && per[2].iter().all(|s| after[1].contains(s)));
    }

    #[test]
    fn a_shard_claimed_twice_stays_with_one_member_and_out_of_range_claims_are_ignored() {
        let members = [member("b", &[0, 1, 99, -1]), member("a", &[1, 2])];
        let (per, owners) = assign(4, &members);
        every_shard_once(&per, &owners);
        assert_eq!(owners[1], Some(1), "the first claimant by member id keeps it");
        assert!(!per[0].contains(&1));
    }

    #[test]
    fn subscriptions_and_assignments_read_back_and_bad_bytes_do_not_parse() {
        let me = node(7);
        let sub = encode_subscription("__corral_offsets", &me, &[3, 1]);
        assert_eq!(decode_subscription(&sub, "__corral_offsets"), Some((me.clone(), vec![3, 1])));
        let map = MapState { instances: vec![node(1), node(2)], owners: vec![Some(0), None, Some(1)] };
        let a = encode_assignment("__corral_offsets", &[0], &map);
        assert_eq!(decode_assignment(&a, "__corral_offsets"), Some((vec![0], map)));
        assert_eq!(decode_assignment(&[], "t"), Some((Vec::new(), MapState::default())));
        for cut in 1..sub.len() {
            assert!(decode_subscription(&sub[..cut], "__corral_offsets").is_none(), "cut at {cut}");
        }
        for cut in 1..a.len() {
            assert!(decode_assignment(&a[..cut], "__corral_offsets").is_none(), "cut at {cut}");
        }
        // a claimed count far past the bytes is refused without allocating for it
        let mut huge = BytesMut::new();
        huge.put_i16(1);
        huge.put_i32(i32::MAX);
        assert!(decode_subscription(&huge, "t").is_none());
    }
}
