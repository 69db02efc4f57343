//! Proxy mode end to end: `corral proxy` in front of three kinds of upstream — corral in broker
//! mode, librdkafka's mock cluster with three brokers (which can move leaders and take brokers
//! down), and a scripted fake upstream for the answers no real broker gives on demand (KIP-951
//! endpoints, broken responses, unreachable brokers). Clients are real (librdkafka through the
//! rdkafka crate) or our raw client where the bytes themselves are the point.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{RawClient, TestProxy, TestServer};
use corral_testkit::records::{Rec, record_batch};
use corral_testkit::{ServerProcess, s};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECOND: Duration = Duration::from_secs(1);

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

async fn api_versions(c: &mut RawClient) -> ApiVersionsResponse {
    c.send(3, &ApiVersionsRequest::default().with_client_software_name(s("test")).with_client_software_version(s("1"))).await
}

fn range(r: &ApiVersionsResponse, key: ApiKey) -> Option<(i16, i16)> {
    r.api_keys.iter().find(|a| a.api_key == key as i16).map(|a| (a.min_version, a.max_version))
}

// ------------------------------------------------------------------------------------------
// corral (broker mode) as the upstream
// ------------------------------------------------------------------------------------------

async fn produce_values(bootstrap: &str, topic: &str, partitions: i32, n: usize) {
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", bootstrap).set("enable.idempotence", "true").create().unwrap();
    let mut sends = Vec::new();
    for i in 0..n {
        let v = format!("v{i}");
        let k = format!("k{i}");
        sends.push(producer.send_result(FutureRecord::to(topic).partition(i as i32 % partitions).key(&k).payload(&v)).unwrap());
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
}

/// Consumes every value of `topic` in `group`, committing at the end.
fn consume_all(bootstrap: &str, group: &str, topic: &str, want: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + 60 * SECOND;
    while got.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string());
        }
    }
    c.commit_consumer_state(CommitMode::Sync).unwrap();
    got
}

/// A consumer's committed offsets for `group` as a cluster reports them (assign-only client).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, 10 * SECOND).unwrap();
    got.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_served_by_corral_while_data_goes_upstream_and_commits_are_mirrored() {
    let upstream = TestServer::start().await;
    let proxy = TestProxy::start(&upstream.bootstrap()).await;
    let b = proxy.bootstrap();

    // topic administration is forwarded
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &b).create().unwrap();
    let r = admin.create_topics(&[NewTopic::new("orders", 3, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = admin.inner().fetch_metadata(None, 10 * SECOND).unwrap();
    let brokers: BTreeSet<(i32, u16)> = md.brokers().iter().map(|b| (b.id(), b.port() as u16)).collect();
    assert_eq!(brokers.len(), 2, "the upstream broker and corral's own node: {brokers:?}");
    assert!(brokers.contains(&(1_000_000_000, proxy.addr.port())), "{brokers:?}");
    assert!(brokers.iter().all(|(_, port)| *port != upstream.addr.port()), "an upstream port reached the client: {brokers:?}");
    assert!(md.topics().iter().any(|t| t.name() == "orders" && t.partitions().len() == 3));

    // data through the proxy lands upstream
    produce_values(&b, "orders", 3, 300).await;
    let (b2, d2) = (b.clone(), upstream.bootstrap());
    let got = tokio::task::spawn_blocking(move || consume_all(&b2, "g-orders", "orders", 300)).await.unwrap();
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!((got.len(), distinct.len()), (300, 300));

    // the group lives in corral: listed once (librdkafka asks every broker), and its offsets
    // are committed through corral's coordinator
    let b3 = b.clone();
    let groups = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &b3).create().unwrap();
        c.fetch_group_list(None, 10 * SECOND).unwrap().groups().iter().map(|g| g.name().to_string()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert_eq!(groups.iter().filter(|g| *g == "g-orders").count(), 1, "{groups:?}");
    let b4 = b.clone();
    let through_proxy = tokio::task::spawn_blocking(move || committed(&b4, "g-orders", "orders", 3)).await.unwrap();
    assert_eq!(through_proxy.iter().sum::<i64>(), 300, "{through_proxy:?}");

    // ...and mirrored upstream, where tools pointed at the cluster see them
    let start = Instant::now();
    loop {
        let d = d2.clone();
        let mirrored = tokio::task::spawn_blocking(move || committed(&d, "g-orders", "orders", 3)).await.unwrap();
        if mirrored == through_proxy {
            break;
        }
        assert!(start.elapsed() < 15 * SECOND, "mirrored offsets {mirrored:?}, corral's {through_proxy:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.stop().await.unwrap();
    upstream.stop().await;
}

/// Starts corral in broker mode advertising itself as `localhost` (so its address is easy to
/// spot in bytes), with a proxy in front that advertises 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_response_a_client_receives_carries_an_upstream_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up_port = listener.local_addr().unwrap().port();
    let config = corral::Config {
        ephemeral: true,
        advertised: Some(corral::config::HostPort { host: "localhost".into(), port: up_port }),
        ..corral::Config::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let upstream = tokio::spawn(corral::run(listener, config, async move {
        let _ = rx.await;
    }));
    let proxy = TestProxy::start(&format!("127.0.0.1:{up_port}")).await;
    let mut c = RawClient::connect(proxy.addr).await;
    let versions = api_versions(&mut c).await;
    let leaks = |frame: &[u8]| frame.windows(9).any(|w| w == b"localhost") || frame.windows(4).any(|w| w == (up_port as i32).to_be_bytes());
    // every Metadata version the proxy serves, for all topics and for named ones
    let (lo, hi) = range(&versions, ApiKey::Metadata).unwrap();
    let mut checked = 0;
    for v in lo..=hi {
        for topics in [None, Some(vec![MetadataRequestTopic::default().with_name(Some(name("leak-check")))])] {
            if v == 0 && topics.is_none() {
                continue; // v0 has no null topics
            }
            let req = MetadataRequest::default().with_topics(topics);
            let frame = c.frame(v, &req);
            c.write_raw(&frame).await;
            let raw = c.read_frame().await.expect("a Metadata response");
            assert!(!leaks(&raw), "Metadata v{v} carries the upstream address");
            let mut body = raw.clone();
            ResponseHeader::decode(&mut body, MetadataResponse::header_version(v)).unwrap();
            let r = MetadataResponse::decode(&mut body, v).unwrap();
            assert!(r.brokers.iter().all(|b| b.host.as_str() == "127.0.0.1" && b.port != up_port as i32), "v{v}: {:?}", r.brokers);
            assert!(r.brokers.iter().any(|b| b.node_id.0 == 1_000_000_000), "v{v}: corral's node is listed");
            checked += 1;
        }
    }
    if let Some((lo, hi)) = range(&versions, ApiKey::DescribeCluster) {
        for v in lo..=hi {
            let mut req = DescribeClusterRequest::default();
            if v >= 1 {
                req.endpoint_type = 1;
            }
            let frame = c.frame(v, &req);
            c.write_raw(&frame).await;
            let raw = c.read_frame().await.unwrap();
            assert!(!leaks(&raw), "DescribeCluster v{v} carries the upstream address");
            checked += 1;
        }
    }
    // FindCoordinator for a transaction is the upstream's to answer (here: corral in broker
    // mode, which refuses transactions), and for a group corral's own node
    let (lo, hi) = range(&versions, ApiKey::FindCoordinator).unwrap();
    for v in lo.max(1)..=hi {
        for key_type in [0i8, 1] {
            let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
            if v >= 4 {
                req.coordinator_keys = vec![s("k")];
            } else {
                req.key = s("k");
            }
            let frame = c.frame(v, &req);
            c.write_raw(&frame).await;
            let raw = c.read_frame().await.unwrap();
            assert!(!leaks(&raw), "FindCoordinator v{v} key type {key_type} carries the upstream address");
            checked += 1;
        }
    }
    // produce and fetch responses (no leader change here: the endpoints test below makes one)
    let frame = c.frame(
        9,
        &ProduceRequest::default().with_acks(1).with_timeout_ms(5000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("leak-check"))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(one_record_batch()))]),
        ]),
    );
    c.write_raw(&frame).await;
    assert!(!leaks(&c.read_frame().await.unwrap()));
    eprintln!("{checked} responses checked");
    assert!(checked > 20);
    proxy.stop().await.unwrap();
    let _ = tx.send(());
    upstream.await.unwrap().unwrap();
}

fn one_record_batch() -> Bytes {
    record_batch([Rec { key: None, value: Some(Bytes::from_static(b"hello")), timestamp: 1_700_000_000_000 }], -1, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_bad_input_gets_the_same_guard_as_in_broker_mode() {
    let upstream = TestServer::start().await;
    let proxy = TestProxy::start(&upstream.bootstrap()).await;
    // a Metadata v9 body claiming i32::MAX topics: closed, nothing allocated
    let mut body = BytesMut::new();
    body.put_i16(3);
    body.put_i16(9);
    body.put_i32(7);
    body.put_i16(-1);
    body.put_u8(0); // header tagged fields
    body.put_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]); // compact array count i32::MAX + 1
    let mut c = RawClient::connect(proxy.addr).await;
    let mut framed = (body.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&body);
    c.write_raw(&framed).await;
    assert!(c.closed_by_server().await);
    // a forwarded Produce whose body runs short: closed before it reaches the upstream
    let mut c = RawClient::connect(proxy.addr).await;
    let frame = c.frame(
        7,
        &ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name("t"))
                .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(one_record_batch()))]),
        ]),
    );
    let mut cut = frame.to_vec();
    cut.truncate(cut.len() - 10);
    let n = (cut.len() - 4) as i32;
    cut[..4].copy_from_slice(&n.to_be_bytes());
    c.write_raw(&cut).await;
    assert!(c.closed_by_server().await);
    // everyone else is still served
    let mut c = RawClient::connect(proxy.addr).await;
    assert_eq!(api_versions(&mut c).await.error_code, 0);
    let md: MetadataResponse = c.send(9, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    assert_eq!(md.brokers.len(), 2);
    proxy.stop().await.unwrap();
    upstream.stop().await;
}

// ------------------------------------------------------------------------------------------
// A scripted upstream
// ------------------------------------------------------------------------------------------

/// What the fake upstream does with one request.
#[allow(clippy::large_enum_variant)] // a test script's answer, made once per request
enum Action {
    Respond(ResponseKind),
    /// Writes these bytes exactly (size prefix included), whatever they are.
    Raw(Vec<u8>),
    /// Writes these bytes, then closes the connection.
    RawThenClose(Vec<u8>),
    /// Closes the connection without answering.
    Close,
}

type Script = Arc<dyn Fn(ApiKey, i16, i32, &RequestKind) -> Option<Action> + Send + Sync>;

/// A broker that answers ApiVersions and Metadata itself (node 1 is itself; node 2 is wherever
/// `node2` says) and everything else as the script says.
struct Fake {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<(ApiKey, i16)>>>,
}

fn fake_versions() -> Vec<ApiVersion> {
    [
        (ApiKey::Produce, 3, 11),
        (ApiKey::Fetch, 4, 17),
        (ApiKey::ListOffsets, 1, 8),
        (ApiKey::Metadata, 0, 12),
        (ApiKey::FindCoordinator, 0, 4),
        (ApiKey::ApiVersions, 0, 3),
        (ApiKey::InitProducerId, 0, 4),
        (ApiKey::AddOffsetsToTxn, 0, 3),
        (ApiKey::TxnOffsetCommit, 0, 3),
        (ApiKey::SaslHandshake, 0, 1),
        (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    ]
    .into_iter()
    .map(|(k, min, max)| ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max))
    .collect()
}

impl Fake {
    async fn start(node2: SocketAddr, script: Script) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (script, seen) = (script.clone(), seen.clone());
                tokio::spawn(fake_connection(stream, addr, node2, script, seen));
            }
        });
        Fake { addr, requests }
    }

    fn saw(&self, key: ApiKey) -> usize {
        self.requests.lock().unwrap().iter().filter(|(k, _)| *k == key).count()
    }
}

fn fake_metadata(me: SocketAddr, node2: SocketAddr) -> MetadataResponse {
    let broker = |id: i32, a: SocketAddr| {
        MetadataResponseBroker::default().with_node_id(BrokerId(id)).with_host(s("127.0.0.1")).with_port(a.port() as i32)
    };
    MetadataResponse::default()
        .with_brokers(vec![broker(1, me), broker(2, node2)])
        .with_cluster_id(Some(s("fake-cluster")))
        .with_controller_id(BrokerId(1))
        .with_topics(vec![MetadataResponseTopic::default().with_name(Some(name("t"))).with_partitions(vec![
                MetadataResponsePartition::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(1))
                    .with_replica_nodes(vec![BrokerId(1)])
                    .with_isr_nodes(vec![BrokerId(1)]),
                MetadataResponsePartition::default()
                    .with_partition_index(1)
                    .with_leader_id(BrokerId(2))
                    .with_replica_nodes(vec![BrokerId(2)])
                    .with_isr_nodes(vec![BrokerId(2)]),
            ])])
}

/// One connection to the fake: requests decoded with the crate, answered in order.
async fn fake_connection(mut stream: TcpStream, me: SocketAddr, node2: SocketAddr, script: Script, seen: Arc<Mutex<Vec<(ApiKey, i16)>>>) {
    let mut buf = BytesMut::new();
    loop {
        while buf.len() < 4 || buf.len() < 4 + i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        buf.advance(4);
        let mut frame = buf.split_to(size).freeze();
        let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).unwrap();
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let header = RequestHeader::decode(&mut frame, key.request_header_version(version)).unwrap();
        let req = RequestKind::decode(key, &mut frame, version).unwrap();
        seen.lock().unwrap().push((key, version));
        let action = script(key, version, header.correlation_id, &req).unwrap_or_else(|| match &req {
            RequestKind::ApiVersions(_) => {
                Action::Respond(ResponseKind::ApiVersions(ApiVersionsResponse::default().with_api_keys(fake_versions())))
            }
            RequestKind::Metadata(_) => Action::Respond(ResponseKind::Metadata(fake_metadata(me, node2))),
            _ => Action::Close,
        });
        let out = match action {
            Action::Respond(body) => {
                let mut out = BytesMut::new();
                out.put_i32(0);
                ResponseHeader::default()
                    .with_correlation_id(header.correlation_id)
                    .encode(&mut out, body.header_version(version))
                    .unwrap();
                body.encode(&mut out, version).unwrap();
                let n = (out.len() - 4) as i32;
                out[..4].copy_from_slice(&n.to_be_bytes());
                out.to_vec()
            }
            Action::Raw(bytes) => bytes,
            Action::RawThenClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                return;
            }
            Action::Close => return,
        };
        if stream.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A proxy over `fake` keeping its offsets in memory (the fake has no offsets topic).
async fn proxy_over(fake: &Fake, connect_timeout_ms: u64) -> TestProxy {
    TestProxy::start_with(&fake.addr.to_string(), |c| {
        c.offsets_store = corral::config::OffsetsStoreKind::Local;
        c.mirror_offsets = false;
        c.upstream_connect_timeout_ms = connect_timeout_ms;
    })
    .await
}

/// The proxy's listener for upstream node `id`, from its Metadata.
async fn node_listener(proxy: &TestProxy, id: i32) -> SocketAddr {
    let mut c = RawClient::connect(proxy.addr).await;
    let md: MetadataResponse = c.send(12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    let b = md.brokers.iter().find(|b| b.node_id.0 == id).unwrap_or_else(|| panic!("node {id} in {:?}", md.brokers));
    format!("{}:{}", b.host.as_str(), b.port).parse().unwrap()
}

async fn dead_address() -> SocketAddr {
    // a port nobody listens on
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_are_corrals_for_groups_and_the_intersection_for_the_rest() {
    let fake = Fake::start(dead_address().await, Arc::new(|_, _, _, _| None)).await;
    let proxy = proxy_over(&fake, 2000).await;
    let mut c = RawClient::connect(proxy.addr).await;
    let v = api_versions(&mut c).await;
    // forwarded: what both sides handle
    assert_eq!(range(&v, ApiKey::Produce), Some((3, 11)));
    assert_eq!(range(&v, ApiKey::ListOffsets), Some((1, 8)));
    assert_eq!(range(&v, ApiKey::InitProducerId), Some((0, 4)));
    assert_eq!(range(&v, ApiKey::Metadata), Some((0, 12)));
    // the group apis are corral's whatever the upstream serves
    assert_eq!(range(&v, ApiKey::JoinGroup), Some((0, 9)));
    assert_eq!(range(&v, ApiKey::OffsetCommit), Some((2, 9)));
    // FindCoordinator is corral's (groups); transaction keys are asked upstream at the
    // versions it has (see transaction_coordinators_are_found_upstream_at_every_version)
    assert_eq!(range(&v, ApiKey::FindCoordinator), Some((0, 6)));
    // what the upstream does not serve, or corral does not forward, is not advertised
    assert_eq!(range(&v, ApiKey::DescribeConfigs), None);
    assert_eq!(range(&v, ApiKey::SaslHandshake), None);
    assert_eq!(range(&v, ApiKey::ConsumerGroupHeartbeat), None);
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip_951_endpoints_are_rewritten_to_corral_listeners() {
    let node2 = dead_address().await;
    let script: Script = Arc::new(move |key, version, _, req| {
        let endpoint = |id: i32| (id, "upstream.invalid", 9999);
        match (key, req) {
            (ApiKey::Produce, RequestKind::Produce(r)) if version >= 10 => {
                let mut resp = ProduceResponse::default().with_responses(
                    r.topic_data
                        .iter()
                        .map(|t| {
                            produce_response::TopicProduceResponse::default().with_name(t.name.clone()).with_partition_responses(vec![
                                produce_response::PartitionProduceResponse::default()
                                    .with_index(0)
                                    .with_error_code(6)
                                    .with_base_offset(-1)
                                    .with_current_leader(
                                        produce_response::LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)).with_leader_epoch(5),
                                    ),
                            ])
                        })
                        .collect(),
                );
                resp.node_endpoints = [endpoint(2), endpoint(7)]
                    .into_iter()
                    .map(|(id, h, p)| produce_response::NodeEndpoint::default().with_node_id(BrokerId(id)).with_host(s(h)).with_port(p))
                    .collect();
                Some(Action::Respond(ResponseKind::Produce(resp)))
            }
            (ApiKey::Fetch, RequestKind::Fetch(_)) if version >= 16 => {
                let mut resp = FetchResponse::default().with_responses(vec![
                    fetch_response::FetchableTopicResponse::default().with_topic_id(uuid::Uuid::from_u128(7)).with_partitions(vec![
                        fetch_response::PartitionData::default()
                            .with_partition_index(0)
                            .with_error_code(6)
                            .with_current_leader(
                                fetch_response::LeaderIdAndEpoch::default().with_leader_id(BrokerId(2)).with_leader_epoch(5),
                            )
                            .with_records(None),
                    ]),
                ]);
                resp.node_endpoints = vec![
                    fetch_response::NodeEndpoint::default().with_node_id(BrokerId(2)).with_host(s("upstream.invalid")).with_port(9999),
                ];
                Some(Action::Respond(ResponseKind::Fetch(resp)))
            }
            _ => None,
        }
    });
    let fake = Fake::start(node2, script).await;
    let proxy = proxy_over(&fake, 2000).await;
    let n2 = node_listener(&proxy, 2).await;
    let n1 = node_listener(&proxy, 1).await;
    let mut c = RawClient::connect(n1).await;
    let produce = ProduceRequest::default().with_acks(1).with_timeout_ms(1000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(name("t"))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(one_record_batch()))]),
    ]);
    let frame = c.frame(11, &produce);
    c.write_raw(&frame).await;
    let raw = c.read_frame().await.unwrap();
    assert!(!raw.windows(16).any(|w| w == b"upstream.invalid"), "an upstream host reached the client");
    let mut body = raw.clone();
    ResponseHeader::decode(&mut body, ProduceResponse::header_version(11)).unwrap();
    let r = ProduceResponse::decode(&mut body, 11).unwrap();
    assert_eq!(r.responses[0].partition_responses[0].current_leader.leader_id.0, 2, "node ids are kept");
    assert_eq!(r.node_endpoints.len(), 1, "an endpoint for a node corral has no listener for is dropped: {:?}", r.node_endpoints);
    assert_eq!(
        (r.node_endpoints[0].node_id.0, r.node_endpoints[0].host.as_str(), r.node_endpoints[0].port),
        (2, "127.0.0.1", n2.port() as i32)
    );
    let fetch = FetchRequest::default().with_max_wait_ms(10).with_topics(vec![
        FetchTopic::default()
            .with_topic_id(uuid::Uuid::from_u128(7))
            .with_partitions(vec![FetchPartition::default().with_partition(0).with_partition_max_bytes(1024)]),
    ]);
    let frame = c.frame(16, &fetch);
    c.write_raw(&frame).await;
    let raw = c.read_frame().await.unwrap();
    assert!(!raw.windows(16).any(|w| w == b"upstream.invalid"));
    let mut body = raw.clone();
    ResponseHeader::decode(&mut body, FetchResponse::header_version(16)).unwrap();
    let r = FetchResponse::decode(&mut body, 16).unwrap();
    assert_eq!((r.node_endpoints[0].node_id.0, r.node_endpoints[0].port), (2, n2.port() as i32));
    proxy.stop().await.unwrap();
}

/// A ListOffsets v7 request for partition `p` of "t".
fn list_offsets(c: &mut RawClient, p: i32) -> Bytes {
    c.frame(
        7,
        &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(p).with_timestamp(-1)]),
        ]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_upstream_responses_close_that_link_and_harm_nothing_else() {
    // ListOffsets for partition N gets misbehaviour N; everything else is answered properly
    let script: Script = Arc::new(|key, _version, corr, req| {
        let RequestKind::ListOffsets(r) = req else { return None };
        let _ = key;
        let p = r.topics[0].partitions[0].partition_index;
        let framed = |body: &[u8]| {
            let mut v = ((body.len() + 4) as i32).to_be_bytes().to_vec();
            v.extend_from_slice(&corr.to_be_bytes());
            v.extend_from_slice(body);
            v
        };
        Some(match p {
            // a body claiming i32::MAX topics
            1 => Action::Raw(framed(&[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff])),
            // the wrong correlation id
            2 => {
                let mut v = framed(&[0, 0, 0, 0, 0, 0, 0, 0]);
                v[4..8].copy_from_slice(&(corr + 1000).to_be_bytes());
                Action::Raw(v)
            }
            // a truncated frame, then the connection closes
            3 => Action::RawThenClose(vec![0, 0, 0, 100, 0, 0, 0, 1, 2, 3]),
            // a frame claiming 2 GiB
            4 => Action::Raw(vec![0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
            // garbage of the right length
            5 => Action::Raw(framed(&[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xff])),
            _ => Action::Respond(ResponseKind::ListOffsets(ListOffsetsResponse::default().with_topics(vec![
                list_offsets_response::ListOffsetsTopicResponse::default().with_name(name("t")).with_partitions(vec![
                    list_offsets_response::ListOffsetsPartitionResponse::default().with_partition_index(p).with_offset(42),
                ]),
            ]))),
        })
    });
    let fake = Fake::start(dead_address().await, script).await;
    let proxy = proxy_over(&fake, 2000).await;
    let n1 = node_listener(&proxy, 1).await;
    for p in 1..=5 {
        let mut c = RawClient::connect(n1).await;
        let frame = list_offsets(&mut c, p);
        c.write_raw(&frame).await;
        let started = Instant::now();
        let got = tokio::time::timeout(5 * SECOND, c.read_frame()).await.expect("no hang");
        assert!(got.is_none(), "misbehaviour {p}: the client got a response instead of a closed connection");
        assert!(started.elapsed() < 5 * SECOND);
        // the proxy goes on: a fresh connection's request is forwarded and answered
        let mut c = RawClient::connect(n1).await;
        let frame = list_offsets(&mut c, 0);
        c.write_raw(&frame).await;
        let mut raw = c.read_frame().await.expect("served after misbehaviour");
        ResponseHeader::decode(&mut raw, ListOffsetsResponse::header_version(7)).unwrap();
        let r = ListOffsetsResponse::decode(&mut raw, 7).unwrap();
        assert_eq!(r.topics[0].partitions[0].offset, 42, "after misbehaviour {p}");
    }
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_broker_fails_fast_instead_of_hanging() {
    // node 2 is a port nobody listens on; node 3... is a broker that accepts and never answers
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h2 = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            h2.lock().unwrap().push(s);
        }
    });
    for (node2, what) in [(dead_address().await, "refused"), (silent_addr, "silent")] {
        let fake = Fake::start(node2, Arc::new(|_, _, _, _| None)).await;
        let proxy = proxy_over(&fake, 1000).await;
        let n2 = node_listener(&proxy, 2).await;
        let mut c = RawClient::connect(n2).await;
        // ApiVersions is corral's own: answered even though the broker is away
        assert_eq!(api_versions(&mut c).await.error_code, 0);
        let frame = list_offsets(&mut c, 1);
        c.write_raw(&frame).await;
        let started = Instant::now();
        let got = tokio::time::timeout(10 * SECOND, c.read_frame()).await.expect("the proxy hung");
        assert!(got.is_none(), "{what}: a response came from nowhere");
        let took = started.elapsed();
        eprintln!("{what} upstream broker: client connection closed after {took:?}");
        assert!(took < 3 * SECOND, "{what}: closed only after {took:?}");
        proxy.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_offset_commits_are_refused_clearly() {
    let fake = Fake::start(dead_address().await, Arc::new(|_, _, _, _| None)).await;
    let proxy = proxy_over(&fake, 2000).await;
    let mut c = RawClient::connect(proxy.addr).await;
    for v in 0..=3 {
        let r: AddOffsetsToTxnResponse = c
            .send(v, &AddOffsetsToTxnRequest::default().with_transactional_id(TransactionalId(s("tx"))).with_group_id(GroupId(s("g"))))
            .await;
        assert_eq!(r.error_code, 42, "v{v}: INVALID_REQUEST");
        let r: TxnOffsetCommitResponse = c
            .send(
                v,
                &TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(s("tx")))
                    .with_group_id(GroupId(s("g")))
                    .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(name("t")).with_partitions(vec![
                        TxnOffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(5),
                    ])]),
            )
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 42, "v{v}");
    }
    // refused by corral itself: the upstream never saw them
    assert_eq!(fake.saw(ApiKey::AddOffsetsToTxn) + fake.saw(ApiKey::TxnOffsetCommit), 0);
    proxy.stop().await.unwrap();
}

// ------------------------------------------------------------------------------------------
// librdkafka's mock cluster (three brokers) as the upstream
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_a_leader_moves_and_a_broker_goes_down_and_up() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("moving", 3, 3).unwrap();
    mock.partition_leader("moving", 0, Some(1)).unwrap();
    mock.partition_leader("moving", 1, Some(2)).unwrap();
    mock.partition_leader("moving", 2, Some(3)).unwrap();
    let proxy = TestProxy::start(&mock.bootstrap_servers()).await;
    let b = proxy.bootstrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .unwrap();
    const N: usize = 3000;
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut sends = Vec::new();
    for i in 0..N {
        let v = format!("m{i}");
        let f = producer.send_result(FutureRecord::to("moving").partition((i % 3) as i32).key(&v).payload(&v)).unwrap();
        let d = delivered.clone();
        sends.push(tokio::spawn(async move {
            let r = f.await.unwrap();
            d.fetch_add(1, Ordering::Relaxed);
            r.map(|_| ()).map_err(|(e, _)| e.to_string())
        }));
        match i {
            500 => mock.partition_leader("moving", 0, Some(2)).unwrap(),
            1000 => mock.broker_down(3).unwrap(),
            1500 => mock.partition_leader("moving", 2, Some(1)).unwrap(), // as a controller would
            2000 => mock.broker_up(3).unwrap(),
            2500 => mock.partition_leader("moving", 1, Some(3)).unwrap(),
            _ => {}
        }
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    assert_eq!(delivered.load(Ordering::Relaxed), N);
    let b2 = b.clone();
    let got = tokio::task::spawn_blocking(move || consume_all(&b2, "g-moving", "moving", N)).await.unwrap();
    let distinct: BTreeSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), N, "every acknowledged message comes back ({} read)", got.len());
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_group_gets_its_assignment_at_once_through_the_proxy() {
    // the mock's own coordinator would wait its 3 s initial rebalance delay
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("fresh", 4, 3).unwrap();
    let proxy = TestProxy::start(&mock.bootstrap_servers()).await;
    let b = proxy.bootstrap();
    produce_values(&b, "fresh", 4, 8).await;
    let took = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let got = consume_all(&b, "g-fresh", "fresh", 8);
        assert_eq!(got.len(), 8);
        started.elapsed()
    })
    .await
    .unwrap();
    eprintln!("first 8 messages of a fresh group through the proxy after {took:?}");
    assert!(took < 2500 * Duration::from_millis(1), "took {took:?}: no initial rebalance delay in corral");
    proxy.stop().await.unwrap();
}

// ------------------------------------------------------------------------------------------
// The proxy binary, killed and restarted without a data dir
// ------------------------------------------------------------------------------------------

fn spawn_proxy(upstream: &str, port: u16, cwd: &std::path::Path) -> ServerProcess {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["proxy", "--upstream", upstream, "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(cwd)
        .stderr(std::process::Stdio::null());
    let proxy = ServerProcess::spawn(&mut cmd).unwrap();
    let line = proxy.first_line();
    assert!(line.contains("proxy listening on"), "{line}");
    assert!(line.contains("offsets store upstream topic __corral_offsets"), "{line}");
    proxy
}

/// The consumer of "resume" in g-resume that the restart test reads with.
fn resume_consumer(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", "g-resume")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_killed_and_restarted_without_a_data_dir_resumes_groups_from_upstream() {
    let upstream = TestServer::start().await;
    let up = upstream.bootstrap();
    let cwd = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let b = format!("127.0.0.1:{port}");
    let proxy = spawn_proxy(&up, port, cwd.path());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", &b).create().unwrap();
    admin.create_topics(&[NewTopic::new("resume", 1, TopicReplication::Fixed(1))], &AdminOptions::new()).await.unwrap();
    produce_values(&b, "resume", 1, 100).await;
    let bs = b.clone();
    let first =
        tokio::task::spawn_blocking(move || common::consume_committing(&resume_consumer(&bs), "resume", 100, Some(40))).await.unwrap();
    assert_eq!((first.first(), first.len()), (Some(&0), 40));
    drop(proxy); // SIGKILL
    let proxy = spawn_proxy(&up, port, cwd.path());
    let bs = b.clone();
    let second = tokio::task::spawn_blocking(move || common::consume_committing(&resume_consumer(&bs), "resume", 60, None)).await.unwrap();
    assert_eq!(second.first(), Some(&40), "resumes right after the offset committed before the kill");
    assert_eq!(second.len(), 60);
    assert!(std::fs::read_dir(cwd.path()).unwrap().next().is_none(), "the proxy wrote to its working directory");
    drop(proxy);
    upstream.stop().await;
}

/// A fake whose Metadata lists brokers `ids` (all served by the fake itself).
async fn fake_with_brokers(ids: Arc<Mutex<Vec<i32>>>) -> Fake {
    let me: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
    let m2 = me.clone();
    let script: Script = Arc::new(move |_, _, _, req| match req {
        RequestKind::Metadata(_) => {
            let addr = m2.lock().unwrap().expect("the fake's address is set before anyone connects");
            let brokers = ids
                .lock()
                .unwrap()
                .iter()
                .map(|id| {
                    MetadataResponseBroker::default().with_node_id(BrokerId(*id)).with_host(s("127.0.0.1")).with_port(addr.port() as i32)
                })
                .collect();
            Some(Action::Respond(ResponseKind::Metadata(
                // controller 0, no listed broker (as librdkafka's mock cluster reports it)
                MetadataResponse::default().with_brokers(brokers).with_cluster_id(Some(s("fake-cluster"))).with_controller_id(BrokerId(0)),
            )))
        }
        _ => None,
    });
    let fake = Fake::start(dead_address().await, script).await;
    *me.lock().unwrap() = Some(fake.addr);
    fake
}

async fn listed(proxy: SocketAddr) -> Vec<(i32, u16)> {
    let mut c = RawClient::connect(proxy).await;
    let md: MetadataResponse = c.send(12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    let mut v: Vec<(i32, u16)> = md.brokers.iter().map(|b| (b.node_id.0, b.port as u16)).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_that_join_get_a_listener_and_brokers_that_leave_lose_it() {
    let ids = Arc::new(Mutex::new(vec![1, 2]));
    let fake = fake_with_brokers(ids.clone()).await;
    let proxy = proxy_over(&fake, 2000).await;
    let before = listed(proxy.addr).await;
    assert_eq!(before.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1, 2, 1_000_000_000]);
    // the upstream names a controller that is no listed broker: clients get one they can reach
    let mut c = RawClient::connect(proxy.addr).await;
    let md: MetadataResponse = c.send(12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    assert!(md.brokers.iter().any(|b| b.node_id == md.controller_id && b.node_id.0 != 1_000_000_000), "controller {:?}", md.controller_id);
    ids.lock().unwrap().push(3);
    let after_join = listed(proxy.addr).await;
    let node3 = after_join.iter().find(|(id, _)| *id == 3).expect("node 3 is listed once metadata shows it").1;
    let mut c = RawClient::connect(SocketAddr::from(([127, 0, 0, 1], node3))).await;
    assert_eq!(api_versions(&mut c).await.error_code, 0, "node 3's listener serves");
    // node 2 leaves
    let node2 = before.iter().find(|(id, _)| *id == 2).unwrap().1;
    *ids.lock().unwrap() = vec![1, 3];
    let after_leave = listed(proxy.addr).await;
    assert!(!after_leave.iter().any(|(id, _)| *id == 2), "{after_leave:?}");
    let start = Instant::now();
    while TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], node2))).await.is_ok() {
        assert!(start.elapsed() < 5 * SECOND, "node 2's listener still accepts after it left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_ports_follow_the_listen_port_unless_fixed() {
    let ids = Arc::new(Mutex::new(vec![1, 2]));
    let fake = fake_with_brokers(ids).await;
    let fixed = dead_address().await.port();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().port();
    let mut config = corral::Config {
        mode: corral::config::Mode::Proxy,
        ephemeral: true,
        listen: format!("127.0.0.1:{base}"),
        upstream: corral::config::parse_upstream(&fake.addr.to_string()).unwrap(),
        offsets_store: corral::config::OffsetsStoreKind::Local,
        mirror_offsets: false,
        ..corral::Config::default()
    };
    config.proxy_node_ports.insert(2, fixed);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(corral::run(listener, config, async move {
        let _ = rx.await;
    }));
    let got = listed(SocketAddr::from(([127, 0, 0, 1], base))).await;
    assert_eq!(got, vec![(1, base + 2), (2, fixed), (1_000_000_000, base)], "node N at listen port + 1 + N; node 2 fixed");
    let mut c = RawClient::connect(SocketAddr::from(([127, 0, 0, 1], fixed))).await;
    assert_eq!(api_versions(&mut c).await.error_code, 0);
    let _ = tx.send(());
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_coordinators_are_found_upstream_at_every_version() {
    // the fake serves FindCoordinator up to v4 and names node 1 (itself) for every key
    let script: Script = Arc::new(|_, version, _, req| {
        let RequestKind::FindCoordinator(r) = req else { return None };
        assert_eq!(r.key_type, 1, "group keys are corral's");
        let entry = |key: &StrBytes| {
            find_coordinator_response::Coordinator::default()
                .with_key(key.clone())
                .with_node_id(BrokerId(1))
                .with_host(s("127.0.0.1"))
                .with_port(1)
        };
        let resp = if version >= 4 {
            FindCoordinatorResponse::default().with_coordinators(r.coordinator_keys.iter().map(entry).collect())
        } else {
            FindCoordinatorResponse::default().with_node_id(BrokerId(1)).with_host(s("127.0.0.1")).with_port(1)
        };
        Some(Action::Respond(ResponseKind::FindCoordinator(resp)))
    });
    let fake = Fake::start(dead_address().await, script).await;
    let proxy = proxy_over(&fake, 2000).await;
    let n1 = node_listener(&proxy, 1).await;
    let mut c = RawClient::connect(proxy.addr).await;
    for v in 1..=6 {
        let mut req = FindCoordinatorRequest::default().with_key_type(1);
        if v >= 4 {
            req.coordinator_keys = vec![s("tx-a"), s("tx-b")];
        } else {
            req.key = s("tx-a");
        }
        let r: FindCoordinatorResponse = c.send(v, &req).await;
        let found: Vec<(i32, String, i32, i16)> = if v >= 4 {
            r.coordinators.iter().map(|e| (e.node_id.0, e.host.to_string(), e.port, e.error_code)).collect()
        } else {
            vec![(r.node_id.0, r.host.to_string(), r.port, r.error_code)]
        };
        let want = (1, "127.0.0.1".to_string(), n1.port() as i32, 0);
        assert!(found.iter().all(|f| *f == want), "v{v}: {found:?}");
        assert_eq!(found.len(), if v >= 4 { 2 } else { 1 });
    }
    // v5 and v6 went upstream as v4 (the upstream's newest)
    assert!(fake.requests.lock().unwrap().iter().filter(|(k, _)| *k == ApiKey::FindCoordinator).all(|(_, v)| *v <= 4));
    proxy.stop().await.unwrap();
}
