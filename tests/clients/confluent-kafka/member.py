"""A confluent-kafka (librdkafka) consumer-group member for groupcheck.py (protocol there).

    python3 member.py BOOTSTRAP TOPIC GROUP ASSIGNOR     (ASSIGNOR: range | roundrobin | consumer)

ASSIGNOR "consumer" makes a member of the next-generation protocol (KIP-848,
group.protocol=consumer): the broker assigns (its default assignor), the session and the
heartbeat interval are the broker's, so session.timeout.ms, heartbeat.interval.ms and
partition.assignment.strategy stay unset (librdkafka refuses or ignores them then). Its
rebalances are incremental: on_assign gets only the partitions added and on_revoke only
those taken away, so "assigned" reports the whole assignment, the added ones included.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
from groupcheck import emit, member_args, stop_flag  # noqa: E402

from confluent_kafka import Consumer, KafkaException  # noqa: E402

bootstrap, topic, group, assignor = member_args()
stop = stop_flag()

conf = {
    "bootstrap.servers": bootstrap, "group.id": group, "client.id": "corral-ck-member",
    "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 100,
    # to stderr, a log file that groupcheck keeps when a check fails
    "debug": "cgrp",
}
incremental = assignor == "consumer"
if incremental:
    conf["group.protocol"] = "consumer"
else:
    conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "partition.assignment.strategy": assignor})
c = Consumer(conf)


def on_assign(consumer, parts):
    now = {p.partition for p in parts}
    if incremental:  # the added partitions: the client assigns them when this returns
        now |= {p.partition for p in consumer.assignment() if p.topic == topic}
    emit(ev="assigned", parts=sorted(now))


c.subscribe([topic], on_assign=on_assign,
            on_revoke=lambda _c, parts: emit(ev="revoked", parts=sorted(p.partition for p in parts)))
while not stop:
    recs = []
    for m in c.consume(500, 0.1):
        if m.error():
            emit(ev="error", err=str(m.error()))
            continue
        recs.append([m.partition(), m.offset(), m.key().decode() if m.key() is not None else None, m.value().decode()])
    if recs:
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            emit(ev="error", err="commit: %s" % e)
        emit(ev="msgs", recs=recs)
c.close()
emit(ev="closed")
