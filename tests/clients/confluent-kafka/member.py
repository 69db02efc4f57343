"""A confluent-kafka (librdkafka) consumer-group member for groupcheck.py (protocol there).

    python3 member.py BOOTSTRAP TOPIC GROUP ASSIGNOR     (ASSIGNOR: range | roundrobin)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
from groupcheck import emit, member_args, stop_flag  # noqa: E402

from confluent_kafka import Consumer, KafkaException  # noqa: E402

bootstrap, topic, group, assignor = member_args()
stop = stop_flag()

c = Consumer({
    "bootstrap.servers": bootstrap, "group.id": group, "client.id": "corral-ck-member",
    "auto.offset.reset": "earliest", "enable.auto.commit": False,
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100,
    "partition.assignment.strategy": assignor,
    # to stderr, a log file that groupcheck keeps when a check fails
    "debug": "cgrp",
})
c.subscribe([topic],
            on_assign=lambda _c, parts: emit(ev="assigned", parts=sorted(p.partition for p in parts)),
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
