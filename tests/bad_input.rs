//! Bad input gets what Kafka gives: an error code, or a closed connection for a broken frame
//! (its task ended, not left behind), and the server goes on serving everyone else.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Connections, RawClient, TestServer};
use corral_testkit::records::{Rec, record_batch};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The server still answers ApiVersions on a fresh connection.
async fn still_serving(server: &TestServer) {
    let mut c = RawClient::connect(server.addr).await;
    let r = c
        .send(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("test"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .await;
    assert_eq!(r.error_code, 0);
    assert!(!r.api_keys.is_empty());
}

/// Sends `bytes` on a fresh connection: the server must close it, and the connection's task must
/// end, though the client still holds its end open. `conns` watches `server`.
async fn closes_the_connection(server: &TestServer, conns: &Connections, bytes: &[u8]) {
    conns.wait_for(0, "connections of earlier steps still open").await;
    let mut c = RawClient::connect(server.addr).await;
    conns.wait_for(1, "the server to take the connection").await;
    c.write_raw(bytes).await;
    assert!(c.closed_by_server().await, "the connection is still open");
    conns.wait_for(0, "the connection's task to end").await;
}

fn header(api_key: i16, version: i16) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(7); // correlation id
    b.put_i16(-1); // null client id
    b
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn batch(n: i32) -> Bytes {
    record_batch((0..n).map(|i| Rec { key: None, value: Some(Bytes::from(format!("v{i}"))), timestamp: 1 }), -1, 0)
}

fn produce(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(records))]),
    ])
}

async fn create_topic(c: &mut RawClient, topic: &str) {
    let r = c
        .send(
            5,
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default().with_name(name(topic)).with_num_partitions(1).with_replication_factor(1)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
}

#[tokio::test]
async fn oversize_frame_closes_the_connection() {
    let conns = Connections::watch();
    let server = TestServer::start_with(|c| c.socket_request_max_bytes = 1000).await;
    closes_the_connection(&server, &conns, &1001i32.to_be_bytes()).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn negative_size_closes_the_connection() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    closes_the_connection(&server, &conns, &(-5i32).to_be_bytes()).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn truncated_body_closes_the_connection() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    let mut b = header(3, 4);
    b.put_i32(2); // two topics claimed, none present
    b.put_i16(3);
    closes_the_connection(&server, &conns, &framed(&b)).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn unknown_api_key_closes_the_connection() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    closes_the_connection(&server, &conns, &framed(&header(999, 0))).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn unsupported_version_closes_the_connection() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    // Produce v2 is below Kafka 4's floor.
    let mut b = header(0, 2);
    b.put_i16(1);
    b.put_i32(1000);
    b.put_i32(0);
    closes_the_connection(&server, &conns, &framed(&b)).await;
    still_serving(&server).await;
}

#[tokio::test]
async fn too_new_api_versions_gets_the_v0_fallback() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let mut b = header(18, 99);
    b.put_u8(0); // whatever a v99 body holds
    c.write_raw(&framed(&b)).await;
    let mut resp = c.read_frame().await.expect("a fallback response");
    let corr = bytes::Buf::get_i32(&mut resp);
    assert_eq!(corr, 7);
    let r = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(r.error_code, 35);
    let apiv = r.api_keys.iter().find(|k| k.api_key == 18).unwrap();
    assert_eq!((apiv.min_version, apiv.max_version), (0, 4));
}

#[tokio::test]
async fn a_metadata_request_claiming_i32_max_topics_does_not_take_the_server_down() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    for version in [1i16, 9] {
        let mut b = if version >= 9 {
            let mut h = BytesMut::new();
            h.put_i16(3);
            h.put_i16(version);
            h.put_i32(7);
            h.put_i16(-1);
            h.put_u8(0); // header tagged fields
            // compact array length i32::MAX + 1 as an unsigned varint
            h.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
            h
        } else {
            let mut h = header(3, version);
            h.put_i32(i32::MAX);
            h
        };
        b.put_u8(0);
        closes_the_connection(&server, &conns, &framed(&b)).await;
        still_serving(&server).await;
    }
}

#[tokio::test]
async fn a_produce_with_a_corrupted_crc_gets_corrupt_message() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    create_topic(&mut c, "crc").await;
    let mut b = batch(3).to_vec();
    let last = b.len() - 1;
    b[last] ^= 0x40;
    let r = c.send(7, &produce("crc", Bytes::from(b))).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 2);
    // nothing was stored
    let ok = c.send(7, &produce("crc", batch(1))).await;
    assert_eq!(ok.responses[0].partition_responses[0].base_offset, 0);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_request_harms_nobody() {
    let conns = Connections::watch();
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    conns.wait_for(1, "the server to take the connection").await;
    let f = framed(&header(3, 1));
    c.write_raw(&f[..f.len() - 3]).await;
    drop(c);
    conns.wait_for(0, "the task of the connection the client left mid-request to end").await;
    still_serving(&server).await;
}

#[tokio::test]
async fn fetch_beyond_the_end_is_offset_out_of_range() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    create_topic(&mut c, "f").await;
    c.send(7, &produce("f", batch(2))).await;
    for (offset, expect) in [(2i64, 0i16), (3, 1), (-1, 1)] {
        let r = c
            .send(
                11,
                &FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![
                    FetchTopic::default().with_topic(name("f")).with_partitions(vec![
                        FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
                    ]),
                ]),
            )
            .await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, expect, "offset {offset}");
        // Kafka gives error partitions -1 offsets and null records
        assert_eq!(p.high_watermark, if expect == 0 { 2 } else { -1 });
        assert_eq!(p.records.is_none(), expect != 0);
    }
}

#[tokio::test]
async fn produce_to_a_missing_topic_with_auto_creation_off() {
    let server = TestServer::start_with(|c| c.auto_create_topics_enable = false).await;
    let mut c = RawClient::connect(server.addr).await;
    let md = c
        .send(
            9,
            &MetadataRequest::default()
                .with_allow_auto_topic_creation(true)
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name("nope")))])),
        )
        .await;
    assert_eq!(md.topics[0].error_code, 3);
    let r = c.send(7, &produce("nope", batch(1))).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 3);
    let all = c.send(9, &MetadataRequest::default().with_topics(None)).await;
    assert!(all.topics.is_empty(), "no topic was created");
}
