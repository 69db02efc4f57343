"""confluent-kafka (Python, bundled librdkafka 2.16): flexible versions everywhere."""
import sys
import time

B = sys.argv[1]
F = "confluent-kafka"


def ok(check):
    print(f"PASS {F} {check}", flush=True)


def bad(check, why):
    print(f"FAIL {F} {check}: {why}", flush=True)


try:
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    bad("install", e)
    sys.exit(1)
print(f"# confluent-kafka {confluent_kafka.version()[0]} librdkafka {confluent_kafka.libversion()[0]}", file=sys.stderr)

admin = AdminClient({"bootstrap.servers": B})
md = admin.list_topics(timeout=10)
(ok if len(md.brokers) == 1 else lambda c: bad(c, md.brokers))("metadata")

topic = "ck-roundtrip"
fs = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
try:
    fs[topic].result(10)
    ok("create-topic")
except Exception as e:  # noqa: BLE001
    bad("create-topic", e)

N = 100_000
p = Producer({"bootstrap.servers": B, "enable.idempotence": True, "linger.ms": 5})
errors = []
for i in range(N):
    while True:
        try:
            p.produce(topic, key=str(i % 13), value=str(i), on_delivery=lambda e, m: e and errors.append(e))
            break
        except BufferError:
            p.poll(0.1)
left = p.flush(30)
(ok if left == 0 and not errors else lambda c: bad(c, f"{left} unflushed, errors {errors[:3]}"))("produce-100k-idempotent")

c = Consumer({"bootstrap.servers": B, "group.id": "unused", "enable.auto.commit": False})
c.assign([TopicPartition(topic, i, 0) for i in range(3)])
seen = {}
last = {}
in_order = True
deadline = time.time() + 60
count = 0
while count < N and time.time() < deadline:
    for m in c.consume(10000, 1.0):
        if m.error():
            bad("consume", m.error())
            continue
        part = m.partition()
        if last.get(part, -1) >= m.offset():
            in_order = False
        last[part] = m.offset()
        i = int(m.value())
        if m.key().decode() != str(i % 13):
            in_order = False
        seen[i] = seen.get(i, 0) + 1
        count += 1
exact = len(seen) == N and all(v == 1 for v in seen.values())
(ok if exact and in_order else lambda ch: bad(ch, f"{len(seen)} distinct of {N}, in order {in_order}"))("consume-100k")

marks = sum(c.get_watermark_offsets(TopicPartition(topic, i), timeout=10)[1] for i in range(3))
(ok if marks == N else lambda ch: bad(ch, f"high watermarks sum to {marks}"))("list-offsets")
c.close()

fs = admin.delete_topics([topic])
try:
    fs[topic].result(10)
    ok("delete-topic")
except Exception as e:  # noqa: BLE001
    bad("delete-topic", e)
