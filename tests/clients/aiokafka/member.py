"""An aiokafka consumer-group member for groupcheck.py (protocol described there).

    python3 member.py BOOTSTRAP TOPIC GROUP ASSIGNOR     (ASSIGNOR: range | roundrobin)
"""
import asyncio
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
from groupcheck import emit, member_args, stop_flag  # noqa: E402

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener  # noqa: E402
from aiokafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor  # noqa: E402

bootstrap, topic, group, assignor = member_args()
stop = stop_flag()
# stderr goes to a log file that groupcheck keeps when a check fails
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.DEBUG)


class Listener(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked):
        emit(ev="revoked", parts=sorted(tp.partition for tp in revoked))

    async def on_partitions_assigned(self, assigned):
        emit(ev="assigned", parts=sorted(tp.partition for tp in assigned))


async def main():
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, client_id="corral-ak-member",
        auto_offset_reset="earliest", enable_auto_commit=False,
        session_timeout_ms=6000, heartbeat_interval_ms=1000, fetch_max_wait_ms=100,
        partition_assignment_strategy=({"range": RangePartitionAssignor,
                                        "roundrobin": RoundRobinPartitionAssignor}[assignor],))
    c.subscribe([topic], listener=Listener())
    await c.start()
    try:
        while not stop:
            batch = await c.getmany(timeout_ms=100)
            recs = []
            for tp, msgs in batch.items():
                for m in msgs:
                    recs.append([m.partition, m.offset, m.key.decode() if m.key is not None else None, m.value.decode()])
            if recs:
                try:
                    await c.commit()
                except Exception as e:  # noqa: BLE001
                    emit(ev="error", err="commit: %r" % e)
                emit(ev="msgs", recs=recs)
    finally:
        await c.stop()
    emit(ev="closed")


asyncio.run(main())
