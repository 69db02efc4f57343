"""One classic consumer group of three different clients: confluent-kafka (librdkafka),
kafka-python and kafkajs, on a 6-partition topic.

    python3 check.py BOOTSTRAP

Members are subprocesses driven by ../groupcheck.py: ../confluent-kafka/member.py,
../kafka-python/member.py and member.js here (kafkajs from tests/clients/node_modules).

- range: librdkafka forms the group alone first (so it is the leader and runs the range
  assignment for all), then kafka-python and kafkajs join: 2 partitions each, every message
  once; then the kafkajs member leaves (LeaveGroup) and the other two take 3 each.
- roundrobin: kafkajs forms the group first (so its roundrobin assigner, written in
  member.js to compute what Java's RoundRobinAssignor computes, assigns for all), then
  librdkafka and kafka-python join; then kafka-python leaves and the leader reassigns.
- inconsistent-protocol: while the range group is stable, a stock kafkajs consumer (only
  assigner "RoundRobinAssigner") tries to join: the coordinator must refuse it with
  INCONSISTENT_GROUP_PROTOCOL and leave the group undisturbed. This is why member.js
  announces "range"/"roundrobin" itself (see the comment there).

The group mixes encodings: kafkajs has no flexible versions (JoinGroup v5, SyncGroup v3,
Heartbeat v3), librdkafka 2.16 uses JoinGroup v5 / SyncGroup v3 too, kafka-python 3 uses
flexible JoinGroup v7 / SyncGroup v5 / Heartbeat v4; subscriptions and assignments cross
between them inside JoinGroup and SyncGroup.

In proxy mode (CORRAL_MODE=proxy, see ../run.sh) the topics are made through the mock
upstream's control port (the mock has no CreateTopics); every check runs.
"""
import os
import shutil
import subprocess
import sys
import time

B = sys.argv[1]
F = "mixed"
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.dirname(HERE)
sys.path.insert(0, CLIENTS)
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
FAILED = []


def ok(check, detail=""):
    print("PASS %s %s%s" % (F, check, " (%s)" % detail if detail else ""), flush=True)


def bad(check, why):
    FAILED.append(check)
    print("FAIL %s %s: %s" % (F, check, why), flush=True)


missing = []
try:
    import confluent_kafka
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    missing.append("confluent-kafka: %s" % e)
try:
    import kafka
except ImportError as e:
    missing.append("kafka-python: %s" % e)
node = shutil.which("node")
kjs = None
if node:
    r = subprocess.run([node, "-e", "console.log(require('kafkajs/package.json').version)"], cwd=HERE,
                       capture_output=True, text=True)
    kjs = r.stdout.strip() if r.returncode == 0 else None
    if not kjs:
        why = [ln.strip() for ln in r.stderr.splitlines() if "Error" in ln or "Cannot find" in ln][:1]
        missing.append("kafkajs is not installed in tests/clients/node_modules (run mixed/install.sh): %s"
                       % (why[0] if why else r.stderr.strip()[-200:]))
else:
    missing.append("node is not installed")
if missing:
    bad("install", "; ".join(missing))
    sys.exit(1)
from groupcheck import PROXY, GroupRun, Member, mock_create, scenario_leave, wait_for  # noqa: E402

print("# confluent-kafka %s (librdkafka %s), kafka-python %s, kafkajs %s, node %s" % (
    confluent_kafka.__version__, confluent_kafka.libversion()[0], kafka.__version__, kjs,
    subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()), file=sys.stderr)
T0 = time.monotonic()

CK = [sys.executable, os.path.join(CLIENTS, "confluent-kafka", "member.py")]
KP = [sys.executable, os.path.join(CLIENTS, "kafka-python", "member.py")]
KJS = [node, os.path.join(HERE, "member.js")]

admin = AdminClient({"bootstrap.servers": B})
producer = Producer({"bootstrap.servers": B, "client.id": "corral-mixed-gp", "linger.ms": 2})


def create(topic, parts):
    if PROXY:
        mock_create(topic, parts)
        return
    admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)])[topic].result(10)


def produce(topic, batch):
    errors = []
    for part, k, v in batch:
        producer.produce(topic, key=k, value=v, partition=part, on_delivery=lambda e, m: e and errors.append(e))
    left = producer.flush(30)
    if left or errors:
        raise RuntimeError("%d undelivered, errors %s" % (left, errors[:3]))


def inconsistent_protocol(run):
    """A stock kafkajs consumer must be refused by the stable range group, which stays as it is."""
    before = [len(m.history) for m in run.members]
    t = time.monotonic()
    intruder = Member("kjs-stock", KJS + ["--kafkajs-default-assigner"], B, run.topic, run.group, "roundrobin",
                      run.logdir)
    exited = wait_for(lambda: not intruder.alive(), 30)
    took = time.monotonic() - t
    if not exited:
        intruder.kill()
    time.sleep(0.5)
    after = [len(m.history) for m in run.members]
    with intruder.lock:
        errs = list(intruder.errors)
        got = sorted(intruder.assigned)
    refused = any("INCONSISTENT_GROUP_PROTOCOL" in (e or "") for e in errs)
    if refused and not got and before == after and all(len(m.parts()) == 2 for m in run.members):
        ok("inconsistent-protocol", "a stock kafkajs member (protocol RoundRobinAssigner) was refused with "
           "INCONSISTENT_GROUP_PROTOCOL in %.1f s; the range group was not disturbed" % took)
    else:
        bad("inconsistent-protocol", "stock kafkajs member: exited %s, errors %s, assigned %s; group members' "
            "rebalance events before/after %s/%s; stderr: %s" % (exited, errs[:2], got, before, after,
                                                                  intruder.stderr_tail(3)))


def timed(name, fn):
    t = time.monotonic()
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        bad(name, "raised %r" % e)
    print("# %s took %.1f s" % (name, time.monotonic() - t), file=sys.stderr)


# Member ids start with the client.id (corral-ck-member-, corral-kjs-member-, corral-kp-member-),
# so members sort librdkafka < kafkajs < kafka-python, and Java's range and roundrobin
# assignors give exactly these assignments, whoever leads: the check holds the leader (librdkafka
# for range, kafkajs for roundrobin, then again after the leave) to the standard algorithm.


def range_group():
    create("mx-group-range", 6)
    run = GroupRun(B, "mx-group-range", "mx-group-range", "range", produce)
    scenario_leave(ok, bad, run, [CK, KP, KJS], names=["librdkafka", "kafka-python", "kafkajs"], leaver=2,
                   on_stable=inconsistent_protocol, label="-range", first_alone=True,
                   expect=({"librdkafka": [0, 1], "kafkajs": [2, 3], "kafka-python": [4, 5]},
                           {"librdkafka": [0, 1, 2], "kafka-python": [3, 4, 5]}))


def roundrobin_group():
    create("mx-group-rr", 6)
    run = GroupRun(B, "mx-group-rr", "mx-group-rr", "roundrobin", produce)
    scenario_leave(ok, bad, run, [KJS, CK, KP], names=["kafkajs", "librdkafka", "kafka-python"], leaver=2,
                   label="-roundrobin", first_alone=True,
                   expect=({"librdkafka": [0, 3], "kafkajs": [1, 4], "kafka-python": [2, 5]},
                           {"librdkafka": [0, 2, 4], "kafkajs": [1, 3, 5]}))


timed("range", range_group)
timed("roundrobin", roundrobin_group)
print("# mixed total %.1f s" % (time.monotonic() - T0), file=sys.stderr)
sys.exit(1 if FAILED else 0)
