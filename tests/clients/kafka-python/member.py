"""A kafka-python consumer-group member for groupcheck.py (protocol described there).

    python3 member.py BOOTSTRAP TOPIC GROUP ASSIGNOR     (ASSIGNOR: range | roundrobin)
"""
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
from groupcheck import emit, member_args, stop_flag  # noqa: E402

from kafka import KafkaConsumer  # noqa: E402
from kafka.consumer.subscription_state import ConsumerRebalanceListener  # noqa: E402
from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor  # noqa: E402

bootstrap, topic, group, assignor = member_args()
stop = stop_flag()
# stderr goes to a log file that groupcheck keeps when a check fails
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("kafka.coordinator").setLevel(logging.DEBUG)


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        emit(ev="revoked", parts=sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned):
        emit(ev="assigned", parts=sorted(tp.partition for tp in assigned))


c = KafkaConsumer(
    bootstrap_servers=bootstrap, group_id=group, client_id="corral-kp-member",
    auto_offset_reset="earliest", enable_auto_commit=False,
    session_timeout_ms=6000, heartbeat_interval_ms=1000, fetch_max_wait_ms=100,
    partition_assignment_strategy=[{"range": RangePartitionAssignor,
                                    "roundrobin": RoundRobinPartitionAssignor}[assignor]])
# Workaround for a kafka-python 3.0.12 bug (not corral's). A consumer whose first assignment
# was computed before it had the topic's metadata (it joins right after subscribe) rejoins
# once the metadata arrives (assignment snapshot != metadata snapshot). If it leads that
# rejoin and poll()'s timeout expires while the JoinGroup/SyncGroup task is in flight, its own
# assignment step makes need_rejoin() False inside the task, so join_group_async never picks
# up the finished task: no on_partitions_assigned, heartbeats stay disabled, and the member
# spins until the coordinator expires its session (seen under CPU load: a member reported []
# for 45 s while the other two owned 3 partitions each; the coordinator's handling was
# Kafka's). Waiting for the subscription's metadata before the first poll (the metadata loop
# runs on kafka-python's IO thread) removes that rejoin; a longer poll timeout narrows the window.
c.subscribe([topic], listener=Listener())
deadline = time.monotonic() + 10
while topic not in (c._coordinator._metadata_snapshot or {}) and time.monotonic() < deadline:
    time.sleep(0.02)
while not stop:
    batch = c.poll(timeout_ms=500)
    recs = []
    for tp, msgs in batch.items():
        for m in msgs:
            recs.append([m.partition, m.offset, m.key.decode() if m.key is not None else None, m.value.decode()])
    if recs:
        try:
            c.commit()
        except Exception as e:  # noqa: BLE001
            emit(ev="error", err="commit: %r" % e)
        emit(ev="msgs", recs=recs)
c.close(autocommit=False)
emit(ev="closed")
