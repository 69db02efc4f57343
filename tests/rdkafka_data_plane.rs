//! End to end with a real librdkafka (the rdkafka crate): admin, idempotent produce, consume,
//! offsets lookup, topic deletion.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestServer;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(20);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap()
}

fn consumer(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_consume_list_offsets_delete() {
    let server = TestServer::start().await;
    let bootstrap = server.bootstrap();
    let admin = admin(&bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));

    let created =
        admin.create_topics(&[NewTopic::new("e2e", 3, TopicReplication::Fixed(1)).set("retention.ms", "3600000")], &opts).await.unwrap();
    assert!(created[0].is_ok(), "{created:?}");
    let again = admin.create_topics(&[NewTopic::new("e2e", 3, TopicReplication::Fixed(1))], &opts).await.unwrap();
    assert!(matches!(again[0], Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))), "{again:?}");

    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).set("enable.idempotence", "true").set("linger.ms", "5").create().unwrap();
    let n = 10_000;
    let mut sends = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("key-{}", i % 17);
        let value = format!("value-{i}");
        sends.push(producer.send_result(FutureRecord::to("e2e").key(&key).payload(&value)).unwrap());
    }
    let mut produced: HashMap<i32, Vec<(i64, String)>> = HashMap::new();
    for (i, s) in sends.into_iter().enumerate() {
        let delivery = s.await.unwrap().unwrap();
        produced.entry(delivery.partition).or_default().push((delivery.offset, format!("value-{i}")));
    }
    producer.flush(TIMEOUT).unwrap();
    assert_eq!(produced.values().map(|v| v.len()).sum::<usize>(), n);

    let bs = bootstrap.clone();
    let consumed = tokio::task::spawn_blocking(move || {
        let c = consumer(&bs);
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset("e2e", p, Offset::Beginning).unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut got: HashMap<i32, Vec<(i64, String, String)>> = HashMap::new();
        let deadline = Instant::now() + TIMEOUT;
        while got.values().map(|v| v.len()).sum::<usize>() < n && Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(200)) {
                let m = m.unwrap();
                got.entry(m.partition()).or_default().push((
                    m.offset(),
                    String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                ));
            }
        }
        // watermarks and offsets by time, through the same client
        let marks: Vec<(i64, i64)> = (0..3).map(|p| c.fetch_watermarks("e2e", p, TIMEOUT).unwrap()).collect();
        let mut by_time = TopicPartitionList::new();
        for p in 0..3 {
            by_time.add_partition_offset("e2e", p, Offset::Offset(0)).unwrap();
        }
        let at_zero = c.offsets_for_times(by_time, TIMEOUT).unwrap();
        let mut future = TopicPartitionList::new();
        future.add_partition_offset("e2e", 0, Offset::Offset(i64::MAX / 2)).unwrap();
        let beyond = c.offsets_for_times(future, TIMEOUT).unwrap();
        (got, marks, at_zero, beyond)
    })
    .await
    .unwrap();
    let (got, marks, at_zero, beyond) = consumed;

    for (p, sent) in &produced {
        let recv = &got[p];
        assert_eq!(recv.len(), sent.len(), "partition {p}");
        for ((off_s, val_s), (off_r, key_r, val_r)) in sent.iter().zip(recv) {
            assert_eq!(off_s, off_r, "partition {p} order");
            assert_eq!(val_s, val_r);
            let i: usize = val_r["value-".len()..].parse().unwrap();
            assert_eq!(key_r, &format!("key-{}", i % 17));
        }
        assert_eq!(marks[*p as usize], (0, sent.len() as i64));
    }
    for e in at_zero.elements() {
        let expect = if produced.contains_key(&e.partition()) { Offset::Offset(0) } else { Offset::End };
        assert_eq!(e.offset(), expect, "partition {}", e.partition());
    }
    assert_eq!(beyond.elements()[0].offset(), Offset::End, "a timestamp after every record");

    let grown = admin.create_partitions(&[NewPartitions::new("e2e", 5)], &opts).await.unwrap();
    assert!(grown[0].is_ok(), "{grown:?}");
    let md = tokio::task::spawn_blocking({
        let bs = bootstrap.clone();
        move || consumer(&bs).fetch_metadata(Some("e2e"), TIMEOUT).unwrap().topics()[0].partitions().len()
    })
    .await
    .unwrap();
    assert_eq!(md, 5);

    let deleted = admin.delete_topics(&["e2e"], &opts).await.unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
    let missing = admin.delete_topics(&["e2e"], &opts).await.unwrap();
    assert!(missing[0].is_err());
    drop(admin);
    server.stop().await;
}
