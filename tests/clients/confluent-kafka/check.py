"""confluent-kafka (Python, bundled librdkafka 2.16): flexible versions everywhere.

    python3 check.py BOOTSTRAP

Group members run as subprocesses (member.py) driven by ../groupcheck.py. In proxy mode
(CORRAL_MODE=proxy, see ../run.sh) topics are made through the mock upstream's control port,
and create-topic and delete-topic are SKIPs: the mock has no CreateTopics or DeleteTopics.
The transaction checks (txn-*) use fresh topics, groups and transactional ids each run. In
proxy mode they are SKIPs: txn-send-offsets because corral proxy refuses AddOffsetsToTxn and
TxnOffsetCommit, txn-fencing because the mock upstream does not fence, txn-commit-abort because
the mock's read_committed Fetch returns aborted records (after its transactions ran through
the proxy and the read_uncommitted half passed: a failure there is a FAIL).
The consumer-protocol-* checks run members of the KIP-848 protocol (group.protocol=consumer,
member.py's ASSIGNOR "consumer") in fresh groups on fresh topics: assignment by the broker,
ConsumerGroupDescribe and the group types of ListGroups, commit and resume, a clean leave. In
proxy mode they are SKIPs: corral proxy serves the classic group protocol only.
"""
import json
import os
import sys
import time
import uuid

B = sys.argv[1]
F = "confluent-kafka"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.dont_write_bytecode = True  # no __pycache__ next to groupcheck.py
FAILED = []


def ok(check, detail=""):
    print("PASS %s %s%s" % (F, check, " (%s)" % detail if detail else ""), flush=True)


def bad(check, why):
    FAILED.append(check)
    print("FAIL %s %s: %s" % (F, check, why), flush=True)


def skip(check, why):
    print("SKIP %s %s: %s" % (F, check, why), flush=True)


try:
    import confluent_kafka
    from confluent_kafka import (OFFSET_BEGINNING, Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions,
                                 ConsumerGroupType, KafkaError, KafkaException, Producer, TopicPartition)
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError as e:
    bad("install", "confluent-kafka is not installed: %s" % e)
    sys.exit(1)
from groupcheck import (CORRAL_NODE_ID, EXPECT_BROKERS, PROXY, UPSTREAM_LACKS, GroupRun,  # noqa: E402
                        balanced, mock_create, scenario_kill, scenario_leave, txn_diff, txn_layout, txn_records,
                        wait_for)

print("# confluent-kafka %s librdkafka %s" % (confluent_kafka.__version__, confluent_kafka.libversion()[0]),
      file=sys.stderr)
T0 = time.monotonic()


def timed(fn):
    """Run one check function; a crash is that check's FAIL, not the script's."""
    name = fn.__name__.replace("check_", "").replace("_", "-")
    t = time.monotonic()
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        bad(name, "raised %r" % e)
    print("# %s took %.1f s" % (name, time.monotonic() - t), file=sys.stderr)


admin = AdminClient({"bootstrap.servers": B})


def create(topic, parts):
    if PROXY:
        mock_create(topic, parts)
    else:
        admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)])[topic].result(10)


def produce_batch(p, topic, batch):
    errors = []
    for part, k, v in batch:
        while True:
            try:
                p.produce(topic, key=k, value=v, partition=part, on_delivery=lambda e, m: e and errors.append(e))
                break
            except BufferError:
                p.poll(0.1)
    left = p.flush(30)
    if left or errors:
        raise RuntimeError("%d undelivered, errors %s" % (left, errors[:3]))


def check_data_plane():
    """The original checks: metadata, create-topic, 100k idempotent round trip, list-offsets."""
    md = admin.list_topics(timeout=10)
    brokers = {b.id: "%s:%d" % (b.host, b.port) for b in md.brokers.values()}
    # in proxy mode corral's own node is at the bootstrap address, the upstream's at corral listeners
    # (and the controller one of the upstream's)
    if len(brokers) == EXPECT_BROKERS and (not PROXY or (brokers.get(CORRAL_NODE_ID) == B and md.controller_id in brokers
                                                         and md.controller_id != CORRAL_NODE_ID)):
        ok("metadata", "%d brokers" % len(brokers))
    else:
        bad("metadata", "brokers %s, controller %s, expected %d brokers%s" % (
            brokers, md.controller_id, EXPECT_BROKERS,
            ", node %d at %s, the controller an upstream broker" % (CORRAL_NODE_ID, B) if PROXY else ""))

    topic = "ck-roundtrip"
    if PROXY:
        skip("create-topic", UPSTREAM_LACKS("CreateTopics"))
        mock_create(topic, 3)
    else:
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


def check_produce_consume_10k():
    N = 10_000
    create("ck-10k", 3)
    p = Producer({"bootstrap.servers": B, "client.id": "corral-ck-10k", "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False})
    produce_batch(p, "ck-10k", [(-1, "key-%d" % (i % 101), str(i)) for i in range(N)])
    c = Consumer({"bootstrap.servers": B, "group.id": "ck-unused", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition("ck-10k", i, 0) for i in range(3)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < N and time.monotonic() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error():
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), m.key(), m.value()))
    c.close()
    problems = []
    by_part = {}
    for r in got:
        by_part.setdefault(r[0], []).append(r)
    for part, rs in by_part.items():
        if [r[1] for r in rs] != list(range(len(rs))):
            problems.append("partition %d offsets not 0..%d in order" % (part, len(rs) - 1))
        vals = [int(r[3]) for r in rs]
        if vals != sorted(vals):
            problems.append("partition %d values out of produce order" % part)
    if any(r[2] != b"key-%d" % (int(r[3]) % 101) for r in got):
        problems.append("a key does not belong to its value")
    if sorted(int(r[3]) for r in got) != list(range(N)):
        problems.append("got %d messages, %d distinct, expected 0..%d once each" % (
            len(got), len({r[3] for r in got}), N - 1))
    if len(by_part) != 3:
        problems.append("messages in %d partitions, expected 3" % len(by_part))
    if problems:
        bad("produce-consume-10k", "; ".join(problems[:4]))
    else:
        ok("produce-consume-10k", "%s per partition" % [len(by_part[i]) for i in sorted(by_part)])


def check_idempotent_producer():
    create("ck-idem", 1)
    stats = []
    p = Producer({"bootstrap.servers": B, "client.id": "corral-ck-idem", "enable.idempotence": True,
                  "max.in.flight.requests.per.connection": 5, "linger.ms": 2, "batch.size": 2048,
                  "statistics.interval.ms": 100, "stats_cb": lambda s: stats.append(json.loads(s))})
    produce_batch(p, "ck-idem", [(0, "k", str(i)) for i in range(2000)])
    wait_for(lambda: (p.poll(0.05), stats and stats[-1].get("eos", {}).get("idemp_state") == "Assigned")[1], 5, step=0)
    eos = stats[-1].get("eos", {}) if stats else {}
    c = Consumer({"bootstrap.servers": B, "group.id": "ck-unused", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 100})
    c.assign([TopicPartition("ck-idem", 0, 0)])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 2000 and time.monotonic() < deadline:
        got.extend((m.offset(), int(m.value())) for m in c.consume(2000, 0.3) if not m.error())
    c.close()
    if eos.get("idemp_state") == "Assigned" and eos.get("producer_id", -1) >= 0 \
            and got == [(i, i) for i in range(2000)]:
        ok("idempotent-producer", "producer id %d epoch %d, 2000 messages in order, no duplicates"
           % (eos["producer_id"], eos["producer_epoch"]))
    else:
        bad("idempotent-producer", "eos state %s; read back %d, in order %s" % (
            eos, len(got), got == [(i, i) for i in range(2000)]))


group_producer = None


def describe_live(run):
    """describe-group while the range group is stable with three members."""
    try:
        d = admin.describe_consumer_groups([run.group])[run.group].result(10)
        assigns = {m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions if tp.topic == run.topic)
                   for m in d.members}
        union = sorted(p for ps in assigns.values() for p in ps)
        if (d.state == ConsumerGroupState.STABLE and d.partition_assignor == "range" and len(d.members) == 3
                and not d.is_simple_consumer_group
                and all(len(v) == 2 for v in assigns.values()) and union == list(range(6))):
            ok("describe-group", "Stable, assignor range, 3 members with %s" % sorted(assigns.values()))
        else:
            bad("describe-group", "state %s assignor %s simple %s, %d members, assignments %s" % (
                d.state, d.partition_assignor, d.is_simple_consumer_group, len(d.members), assigns))
    except Exception as e:  # noqa: BLE001
        bad("describe-group", "raised %r" % e)


MEMBER = [sys.executable, os.path.join(HERE, "member.py")]


def check_groups():
    global group_producer
    create("ck-group-range", 6)
    create("ck-group-rr", 6)
    group_producer = Producer({"bootstrap.servers": B, "client.id": "corral-ck-gp", "linger.ms": 2})
    produce = lambda topic, batch: produce_batch(group_producer, topic, batch)  # noqa: E731
    run = GroupRun(B, "ck-group-range", "ck-group-range", "range", produce)
    scenario_leave(ok, bad, run, [MEMBER] * 3, on_stable=describe_live)
    run = GroupRun(B, "ck-group-rr", "ck-group-rr", "roundrobin", produce)
    scenario_kill(ok, bad, run, [MEMBER] * 3)


def consume_some(group, topic, want, per_partition=0, strategy="roundrobin", consumer_protocol=False):
    """Subscribe in `group`, read until `want` records and at least `per_partition` from
    each of the 3 partitions (or 20 s), commit what was read, close. With consumer_protocol a
    member of the KIP-848 protocol (group.protocol=consumer: no session timeout, heartbeat
    interval or assignment strategy of its own)."""
    conf = {"bootstrap.servers": B, "group.id": group, "client.id": "corral-ck-resume",
            "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 100}
    if consumer_protocol:
        conf["group.protocol"] = "consumer"
    else:
        conf.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                     "partition.assignment.strategy": strategy})
    c = Consumer(conf)
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 20

    def enough():
        return len(got) >= want and all(sum(1 for r in got if r[0] == q) >= per_partition for q in range(3))

    while not enough() and time.monotonic() < deadline:
        for m in c.consume(20, 0.2):
            if m.error():
                raise KafkaException(m.error())
            got.append((m.partition(), m.offset(), m.value()))
    if got:
        c.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, q) for q in range(3)], 10)}
    c.close()
    return got, committed


def check_commit_resume():
    return commit_resume("commit-resume", "ck-resume", "ck-resume")


def commit_resume(check, group, topic, consumer_protocol=False):
    """300 records in 3 partitions; a member reads at least 100 (20 from each partition),
    commits, closes; 30 more; a new member of the group reads on from the committed offsets.
    Returns the final committed offsets."""
    create(topic, 3)
    p = Producer({"bootstrap.servers": B, "client.id": "corral-ck-resume"})
    produce_batch(p, topic, [(i % 3, "k%d" % i, "a%d" % i) for i in range(300)])
    first, committed = consume_some(group, topic, 100, per_partition=20, consumer_protocol=consumer_protocol)
    produce_batch(p, topic, [(i % 3, "k%d" % i, "b%d" % i) for i in range(30)])
    second, committed2 = consume_some(group, topic, 330 - len(first), consumer_protocol=consumer_protocol)
    firsts = {}
    for r in second:
        firsts.setdefault(r[0], r[1])
    seen1 = {r[:2] for r in first}
    seen2 = {r[:2] for r in second}
    problems = []
    if not 100 <= len(first) < 300 or any(committed[q] <= 0 for q in range(3)):
        problems.append("first consumer read %d records, committed %s" % (len(first), committed))
    if seen1 & seen2:
        problems.append("%d records read again after the restart, e.g. %s" % (len(seen1 & seen2), sorted(seen1 & seen2)[:3]))
    for part, off in firsts.items():
        if off != committed[part]:
            problems.append("partition %d resumed at %d, committed %d" % (part, off, committed[part]))
    if len(seen1 | seen2) != 330:
        problems.append("%d distinct records over both runs, expected 330" % len(seen1 | seen2))
    if any(committed2[q] != 110 for q in range(3)):
        problems.append("final committed offsets %s, expected 110 each" % committed2)
    if problems:
        bad(check, "; ".join(problems))
    else:
        ok(check, "committed %s after %d records, restart resumed there" % (
            [committed[q] for q in range(3)], len(first)))
    return committed2


def group_offsets(group):
    r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
    return {tp.partition: tp.offset for tp in r.topic_partitions if tp.error is None}


def start_live(group, topic):
    """A consumer that stays in `group` (Stable) while the admin checks run."""
    live = Consumer({"bootstrap.servers": B, "group.id": group, "client.id": "corral-ck-live",
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "enable.auto.commit": False})
    live.subscribe([topic])
    wait_for(lambda: (live.poll(0.1), bool(live.assignment()))[1], 20, step=0)
    return live


def check_admin_groups():
    committed = check_commit_resume()
    try:
        got = group_offsets("ck-resume")
        if got == {q: committed[q] for q in range(3)}:
            ok("list-group-offsets", "%s" % got)
        else:
            bad("list-group-offsets", "admin says %s, consumer committed %s" % (got, committed))
    except Exception as e:  # noqa: BLE001
        bad("list-group-offsets", "raised %r" % e)
    live = start_live("ck-live", "ck-resume")
    try:
        admin_with_live_group()
    finally:
        live.close()


def admin_with_live_group():
    # list-groups: ours with their states, and the state filter
    try:
        res = admin.list_consumer_groups(request_timeout=10).result()
        groups = {g.group_id: g for g in res.valid}
        stable = {g.group_id for g in admin.list_consumer_groups(request_timeout=10,
                                                                  states={ConsumerGroupState.STABLE}).result().valid}
        want = {"ck-resume": ConsumerGroupState.EMPTY, "ck-group-range": ConsumerGroupState.EMPTY,
                "ck-group-rr": ConsumerGroupState.EMPTY, "ck-live": ConsumerGroupState.STABLE}
        wrong = {g: (groups[g].state, groups[g].is_simple_consumer_group) if g in groups else None for g in want
                 if g not in groups or groups[g].state != want[g] or groups[g].is_simple_consumer_group}
        if wrong or res.errors or "ck-live" not in stable or stable & {"ck-resume", "ck-group-range", "ck-group-rr"}:
            bad("list-groups", "errors %s; wrong %s; filter STABLE gave %s" % (res.errors, wrong, sorted(stable)))
        else:
            ok("list-groups", "%d groups, ours with the right states, not simple; the STABLE filter gives ck-live only of ours"
               % len(groups))
    except Exception as e:  # noqa: BLE001
        bad("list-groups", "raised %r" % e)
    # reset-offsets: the group is empty; AlterConsumerGroupOffsets, then a consumer starts there.
    # The same on a group with a live member must be refused (UNKNOWN_MEMBER_ID, as Kafka).
    try:
        r = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("ck-resume", [
            TopicPartition("ck-resume", 0, 5, metadata="corral-reset"), TopicPartition("ck-resume", 1, 0),
            TopicPartition("ck-resume", 2, 110)])])
        res = r["ck-resume"].result(10)
        errs = [(tp.partition, tp.error) for tp in res.topic_partitions if tp.error]
        listed_tps = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("ck-resume")])["ck-resume"] \
            .result(10).topic_partitions
        listed = {tp.partition: tp.offset for tp in listed_tps}
        meta0 = [tp.metadata for tp in listed_tps if tp.partition == 0]
        try:
            rl = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions("ck-live", [
                TopicPartition("ck-resume", 0, 1)])])["ck-live"].result(10)
            refused = [tp.error.name() if tp.error else "none" for tp in rl.topic_partitions]
        except KafkaException as e:
            refused = [e.args[0].name()]
        got, _ = consume_some("ck-resume", "ck-resume", 105 + 110)
        starts = {}
        for rr in got:
            starts.setdefault(rr[0], rr[1])
        problems = []
        if errs:
            problems.append("OffsetCommit errors %s" % errs)
        if listed != {0: 5, 1: 0, 2: 110}:
            problems.append("listed %s after the reset, expected {0: 5, 1: 0, 2: 110}" % listed)
        if meta0 != ["corral-reset"]:
            problems.append("committed metadata came back as %s" % meta0)
        if refused != ["UNKNOWN_MEMBER_ID"]:
            problems.append("altering the offsets of a group with a live member gave %s, expected UNKNOWN_MEMBER_ID"
                            % refused)
        if starts.get(0) != 5 or starts.get(1) != 0 or 2 in starts or len(got) != 215:
            problems.append("consumer then started at %s and read %d records (expected p0@5, p1@0, nothing from p2, 215)"
                            % (starts, len(got)))
        if problems:
            bad("reset-offsets", "; ".join(problems))
        else:
            ok("reset-offsets", "p0=5, p1=0, p2=110 via AlterConsumerGroupOffsets; the next consumer started there; "
               "metadata kept; refused for a live group with UNKNOWN_MEMBER_ID")
    except Exception as e:  # noqa: BLE001
        bad("reset-offsets", "raised %r" % e)
    # delete-group: an empty group goes; a group with a live member is refused; an unknown one is not found
    try:
        fs = admin.delete_consumer_groups(["ck-resume", "ck-live", "ck-no-such-group"], request_timeout=10)
        res = {}
        for g, f in fs.items():
            try:
                f.result()
                res[g] = "OK"
            except KafkaException as e:
                res[g] = e.args[0].name()
        after = {g.group_id for g in admin.list_consumer_groups(request_timeout=10).result().valid}
        if res == {"ck-resume": "OK", "ck-live": "NON_EMPTY_GROUP", "ck-no-such-group": "GROUP_ID_NOT_FOUND"} \
                and "ck-resume" not in after and "ck-live" in after:
            ok("delete-group", "empty group deleted; live group refused with NON_EMPTY_GROUP; unknown GROUP_ID_NOT_FOUND")
        else:
            bad("delete-group", "DeleteGroups results %s; groups afterwards contain ck-resume: %s, ck-live: %s"
                % (res, "ck-resume" in after, "ck-live" in after))
    except Exception as e:  # noqa: BLE001
        bad("delete-group", "raised %r" % e)


def check_delete_topic():
    if PROXY:
        skip("delete-topic", UPSTREAM_LACKS("DeleteTopics"))
        return
    fs = admin.delete_topics(["ck-roundtrip"])
    try:
        fs["ck-roundtrip"].result(10)
        ok("delete-topic")
    except Exception as e:  # noqa: BLE001
        bad("delete-topic", e)


# --- transactions -----------------------------------------------------------------------
# Fresh topics, groups and transactional ids each run. A transaction ends with one control
# record (its COMMIT or ABORT marker) in each partition it wrote to: consumers never see it,
# but it takes an offset, so the offsets asserted below are exact.
SFX = uuid.uuid4().hex[:8]
NO_TXN_OFFSETS = "proxy mode does not serve transactional offset commits yet"


def txn_producer(tid):
    return Producer({"bootstrap.servers": B, "client.id": "corral-ck-txn", "transactional.id": tid,
                     "transaction.timeout.ms": 30000, "message.timeout.ms": 20000, "linger.ms": 5})


def txn_send(p, topic, recs):
    """Produce recs in p's open transaction; wait until every one is acknowledged."""
    errors = []
    for q, k, v in recs:
        p.produce(topic, key=k, value=v, partition=q, on_delivery=lambda e, m: e and errors.append(e))
    left = p.flush(15)
    if left or errors:
        raise RuntimeError("transactional produce: %d unacknowledged after 15 s, errors %s" % (left, errors[:3]))


def txn_read(topic, isolation, parts=3):
    """Read `topic` from the start with isolation.level `isolation` until every partition's end
    (15 s at most). Returns (sorted [(partition, offset, key, value)], each partition's high
    watermark as this consumer sees it, the partitions whose end was not reached)."""
    c = Consumer({"bootstrap.servers": B, "group.id": "ck-txn-read-" + SFX, "client.id": "corral-ck-txn-read",
                  "enable.auto.commit": False, "isolation.level": isolation, "enable.partition.eof": True,
                  "fetch.wait.max.ms": 100})
    try:
        c.assign([TopicPartition(topic, q, OFFSET_BEGINNING) for q in range(parts)])
        got, at_end = [], set()
        deadline = time.monotonic() + 15
        while len(at_end) < parts and time.monotonic() < deadline:
            for m in c.consume(100, 0.2):
                if m.error():
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        raise KafkaException(m.error())
                    at_end.add(m.partition())
                    continue
                at_end.discard(m.partition())
                got.append((m.partition(), m.offset(), m.key().decode(), m.value().decode()))
        high = {q: c.get_watermark_offsets(TopicPartition(topic, q), timeout=10)[1] for q in range(parts)}
    finally:
        c.close()
    return sorted(got), high, sorted(set(range(parts)) - at_end)


def txn_read_problems(topic, txns, parts=3, isolations=("read_committed", "read_uncommitted")):
    """What is wrong with `topic` as consumers of each of `isolations` read it, given the
    transactions (see txn_layout) that wrote it: [] when nothing is."""
    want_rc, want_ru, ends = txn_layout(txns, parts)
    want = {"read_committed": want_rc, "read_uncommitted": want_ru}
    problems = []
    for isolation in isolations:
        got, high, short = txn_read(topic, isolation, parts)
        why = txn_diff(got, want[isolation])
        if why:
            problems.append("%s read %s" % (isolation, why))
        if high != ends:
            problems.append("end offsets %s as %s sees them, expected %s (an offset for each record and each marker)"
                            % (high, isolation, ends))
        if short:
            problems.append("%s: no end of partitions %s within 15 s" % (isolation, short))
    return problems


# proxy mode: what the upstream does not do, and what txn-commit-abort checks instead
UPSTREAM_READ_COMMITTED = ("the upstream, librdkafka's mock cluster, hands read_committed consumers aborted records "
                           "(checked instead: commit, abort, commit through the proxy and the log as read_uncommitted "
                           "reads it, markers' offsets included)")


def check_txn_commit_abort():
    """txn-commit-abort: one transactional producer commits A, aborts B, commits C (4 records in
    each of 3 partitions each); read_committed reads exactly A and C, read_uncommitted A, B and
    C, at the offsets the markers leave. In proxy mode a SKIP after the same transactions and the
    read_uncommitted half (whose failure is a FAIL): see UPSTREAM_READ_COMMITTED."""
    topic = "ck-txn-ca-" + SFX
    create(topic, 3)
    a, b, c = txn_records("A", 4), txn_records("B", 4), txn_records("C", 4)
    p = txn_producer("ck-txn-ca-" + SFX)
    p.init_transactions(15)
    for recs, commit in ((a, True), (b, False), (c, True)):
        p.begin_transaction()
        txn_send(p, topic, recs)  # all acknowledged: the aborted ones are in the log too
        if commit:
            p.commit_transaction(15)
        else:
            p.abort_transaction(15)
    if PROXY:
        problems = txn_read_problems(topic, [(a, True), (b, False), (c, True)], isolations=("read_uncommitted",))
        if problems:
            bad("txn-commit-abort", "; ".join(problems))
        else:
            skip("txn-commit-abort", UPSTREAM_READ_COMMITTED)
        return
    problems = txn_read_problems(topic, [(a, True), (b, False), (c, True)])
    if problems:
        bad("txn-commit-abort", "; ".join(problems))
    else:
        ok("txn-commit-abort", "committed, aborted, committed 12 records each over 3 partitions; read_committed "
           "read the 24 committed ones, read_uncommitted all 36; each partition ends at offset 15 (12 records, 3 markers)")


def committed_offsets(group, topic, parts=3):
    """The group's committed offsets as a fresh consumer (not a member) reads them."""
    c = Consumer({"bootstrap.servers": B, "group.id": group, "client.id": "corral-ck-txn-committed",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    try:
        return {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, q) for q in range(parts)], 10)}
    finally:
        c.close()


def check_txn_send_offsets():
    """txn-send-offsets: consume-transform-produce with a subscribed read_committed consumer.
    Round 1 transforms the 15 records of phase 1 and commits with send_offsets_to_transaction
    (consumer.position(), consumer_group_metadata()); round 2 does phase 2 and aborts; round 3
    seeks back to the committed offsets, reads phase 2 again and commits. The group's committed
    offsets, as a fresh consumer reads them, are the positions sent after each commit and do
    not move on the abort; the output topic read_committed holds phase 1 and phase 2
    transformed, once each, at exact offsets."""
    if PROXY:
        skip("txn-send-offsets", NO_TXN_OFFSETS)
        return
    tin, tout, group = "ck-txn-in-" + SFX, "ck-txn-out-" + SFX, "ck-txn-g-" + SFX
    create(tin, 3)
    create(tout, 3)
    plain = Producer({"bootstrap.servers": B, "client.id": "corral-ck-txn-in", "linger.ms": 2})
    phase1, phase2 = txn_records("in1", 5), txn_records("in2", 5)
    produce_batch(plain, tin, phase1)
    p = txn_producer("ck-txn-ctp-" + SFX)
    p.init_transactions(15)
    c = Consumer({"bootstrap.servers": B, "group.id": group, "client.id": "corral-ck-txn-ctp",
                  "isolation.level": "read_committed", "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100})
    problems = []
    try:
        c.subscribe([tin])

        def consume(n):
            got = []
            deadline = time.monotonic() + 20
            while len(got) < n and time.monotonic() < deadline:
                for m in c.consume(n - len(got), 0.2):
                    if m.error():
                        raise KafkaException(m.error())
                    got.append((m.partition(), m.offset(), m.key().decode(), m.value().decode()))
            if len(got) != n:
                raise RuntimeError("the consumer read %d records within 20 s, expected %d (assignment %s)"
                                   % (len(got), n, [tp.partition for tp in c.assignment()]))
            return got

        def transform_round(got, commit):
            """One transaction: the transformed records to tout, the consumer's positions as the
            group's offsets; commit or abort. Returns the positions sent."""
            p.begin_transaction()
            txn_send(p, tout, [(q, k, "T:" + v) for q, _, k, v in got])
            pos = c.position(c.assignment())
            p.send_offsets_to_transaction(pos, c.consumer_group_metadata(), 15)
            if commit:
                p.commit_transaction(15)
            else:
                p.abort_transaction(15)
            return {tp.partition: tp.offset for tp in pos if tp.topic == tin}

        five, ten = dict.fromkeys(range(3), 5), dict.fromkeys(range(3), 10)
        got1 = consume(15)
        pos1 = transform_round(got1, True)
        com1 = committed_offsets(group, tin)
        if pos1 != five or com1 != pos1:
            problems.append("round 1 (commit): positions %s, expected %s; committed afterwards %s" % (pos1, five, com1))
        produce_batch(plain, tin, phase2)
        got2 = consume(15)
        pos2 = transform_round(got2, False)
        com2 = committed_offsets(group, tin)
        if pos2 != ten or com2 != five:
            problems.append("round 2 (abort): positions %s, expected %s; committed afterwards %s, expected %s unmoved"
                            % (pos2, ten, com2, five))
        for q in range(3):
            c.seek(TopicPartition(tin, q, com2.get(q, 5)))
        got3 = consume(15)
        if sorted(got3) != sorted(got2):
            problems.append("after seeking back to %s the consumer read %s..., not phase 2 again" % (com2, sorted(got3)[:3]))
        pos3 = transform_round(got3, True)
        com3 = committed_offsets(group, tin)
        if pos3 != ten or com3 != ten:
            problems.append("round 3 (commit again): positions %s, committed afterwards %s, expected %s" % (pos3, com3, ten))
        want_in = sorted((q, i, k, v) for q in range(3) for i, (_, k, v) in
                         enumerate([r for r in phase1 + phase2 if r[0] == q]))
        if sorted(got1 + got2) != want_in:
            problems.append("the consumer read %s, not the 30 input records at offsets 0..9" % txn_diff(sorted(got1 + got2), want_in))
    finally:
        c.close()
    out = lambda recs: [(q, k, "T:" + v) for q, k, v in recs]  # noqa: E731
    problems += txn_read_problems(tout, [(out(phase1), True), (out(phase2), False), (out(phase2), True)])
    if problems:
        bad("txn-send-offsets", "; ".join(problems))
    else:
        ok("txn-send-offsets", "committed offsets 5/5/5 after the first commit, unmoved by the abort, 10/10/10 after "
           "the retry; the output read_committed holds each input once")


def check_txn_fencing():
    """txn-fencing: producer 1 writes 3 records to each of 3 partitions in an open transaction;
    producer 2 with the same transactional.id calls init_transactions; producer 1's commit then
    fails with a fatal _FENCED (or PRODUCER_FENCED) error; producer 2 commits a transaction of its
    own. read_committed reads exactly producer 2's records; read_uncommitted reads producer 1's
    too, followed by the abort marker its fencing wrote."""
    if PROXY:
        # its InitProducerId gives the second producer a new producer id and leaves the first
        # one's id, epoch and open transaction as they were: the first one's commit succeeds
        skip("txn-fencing", "the upstream, librdkafka's mock cluster, does not fence a transactional producer when "
             "another inits the same transactional.id (the first one's commit succeeds)")
        return
    topic, tid = "ck-txn-fence-" + SFX, "ck-txn-fence-" + SFX
    create(topic, 3)
    x, y = txn_records("X", 3), txn_records("Y", 3)
    p1 = txn_producer(tid)
    p1.init_transactions(15)
    p1.begin_transaction()
    txn_send(p1, topic, x)
    p2 = txn_producer(tid)
    t = time.monotonic()
    p2.init_transactions(20)
    t_init = time.monotonic() - t
    problems = []
    fenced = None
    try:
        p1.commit_transaction(10)
        problems.append("the fenced producer's commit succeeded")
    except KafkaException as e:
        err = e.args[0]
        fenced = err.name()
        if err.code() not in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED) or not err.fatal():
            problems.append("the fenced producer's commit failed with %s (code %d, fatal %s), expected a fatal "
                            "_FENCED or PRODUCER_FENCED" % (err.str(), err.code(), err.fatal()))
    p2.begin_transaction()
    txn_send(p2, topic, y)
    p2.commit_transaction(15)
    problems += txn_read_problems(topic, [(x, False), (y, True)])
    if problems:
        bad("txn-fencing", "; ".join(problems))
    else:
        ok("txn-fencing", "the second init_transactions took %.1f s and fenced the first producer (fatal %s "
           "on its commit); its open transaction was aborted, never read_committed" % (t_init, fenced))


# --- the consumer group protocol of KIP-848 (group.protocol=consumer) ----------------------
# Broker mode only: `corral proxy` does not advertise ConsumerGroupHeartbeat, so clients there
# use the classic protocol. The server's defaults (run.sh starts corral with them): members
# heartbeat every group.consumer.heartbeat.interval.ms = 5 s and learn a new assignment on
# their next heartbeat; a silent member is dropped after group.consumer.session.timeout.ms =
# 45 s. So the waits below allow tens of seconds, and a handover after a clean leave must come
# within two heartbeat intervals, far below the session timeout.
CP_HEARTBEAT_S = 5.0
CP_SESSION_S = 45.0
CP_LEAVE_LIMIT_S = 2 * CP_HEARTBEAT_S + 2
NO_CONSUMER_PROTOCOL = ("corral proxy serves the classic group protocol only (it does not advertise "
                        "ConsumerGroupHeartbeat or ConsumerGroupDescribe)")
cp_producer = []


def cp_run(name, nparts=6):
    """A GroupRun of consumer-protocol members (member.py with ASSIGNOR "consumer") on a fresh
    topic of nparts partitions, in a fresh group."""
    topic = "ck-cp-%s-%s" % (name, SFX)
    create(topic, nparts)
    if not cp_producer:
        cp_producer.append(Producer({"bootstrap.servers": B, "client.id": "corral-ck-cp", "linger.ms": 2}))
    return GroupRun(B, topic, "ck-cp-g-%s-%s" % (name, SFX), "consumer",
                    lambda t, batch: produce_batch(cp_producer[0], t, batch), nparts)


def cp_errors(run):
    """What the members reported as errors (a failed commit, a consume error)."""
    return ["%s: %s" % (m.name, e) for m in run.members for e in m.errors]


def cp_describe_stable(run, nmembers, timeout=30):
    """Describe run's group until it is Stable with nmembers members whose assignments cover
    its partitions (members reconcile on heartbeats), or until timeout. Returns the last
    description (None if every describe failed), the last describe error and how long it took."""
    last = [None, None]
    t0 = time.monotonic()

    def stable():
        try:
            d = admin.describe_consumer_groups([run.group], request_timeout=10)[run.group].result(15)
        except KafkaException as e:
            last[1] = e
            return False
        last[0] = d
        owned = [tp.partition for m in d.members for tp in m.assignment.topic_partitions]
        return (d.state == ConsumerGroupState.STABLE and len(d.members) == nmembers
                and sorted(owned) == list(range(run.nparts)))

    wait_for(stable, timeout, step=0.25)
    return last[0], last[1], time.monotonic() - t0


def cp_description(d):
    return "type %s state %s assignor %r simple %s, members %s" % (
        d.type, d.state, d.partition_assignor, d.is_simple_consumer_group,
        [(m.member_id, m.client_id, [(tp.topic, tp.partition) for tp in m.assignment.topic_partitions],
          None if m.target_assignment is None else [(tp.topic, tp.partition) for tp in m.target_assignment.topic_partitions])
         for m in d.members])


def cp_describe_check(run, report):
    """consumer-protocol-describe, while the three members of consumer-protocol-assign own two
    partitions each: describe_consumer_groups reports a CONSUMER group, Stable, assignor
    uniform (the server's default: the members name none), the three members (client id
    corral-ck-member) each with the two partitions it says it owns as its assignment and
    target assignment; list_consumer_groups lists it as CONSUMER and Stable, and its types
    filter separates it from the classic groups."""
    d, err, took = cp_describe_stable(run, 3)
    if d is None:
        report(False, "describe_consumer_groups failed for 30 s: %r" % err)
        return
    problems = []
    if d.type != ConsumerGroupType.CONSUMER:
        problems.append("type %s, expected CONSUMER" % d.type)
    if d.state != ConsumerGroupState.STABLE:
        problems.append("state %s 30 s after the members owned 2 partitions each, expected STABLE" % d.state)
    if d.partition_assignor != "uniform":
        problems.append("assignor %r, expected the server's default 'uniform'" % d.partition_assignor)
    if d.is_simple_consumer_group:
        problems.append("reported as a simple group")
    ids = [m.member_id for m in d.members]
    if len(d.members) != 3 or len(set(ids)) != 3 or not all(ids):
        problems.append("%d members with ids %s, expected 3 distinct" % (len(d.members), ids))
    if any(m.client_id != "corral-ck-member" for m in d.members):
        problems.append("client ids %s, expected corral-ck-member" % [m.client_id for m in d.members])
    described = []
    for m in d.members:
        tps = [(tp.topic, tp.partition) for tp in m.assignment.topic_partitions]
        if any(t != run.topic for t, _ in tps):
            problems.append("member %s assigned %s, not only %s" % (m.member_id, tps, run.topic))
        target = None if m.target_assignment is None else \
            sorted((tp.topic, tp.partition) for tp in m.target_assignment.topic_partitions)
        if target != sorted(tps):
            problems.append("member %s: target assignment %s, assignment %s (Stable: they agree)"
                            % (m.member_id, target, sorted(tps)))
        described.append(sorted(q for _, q in tps))
    told = sorted(sorted(m.parts()) for m in run.members)
    if sorted(described) != told:
        problems.append("assignments %s, while the members say they own %s" % (sorted(described), told))
    # list_consumer_groups: the type of each group, and the types filter
    res = admin.list_consumer_groups(request_timeout=10).result()
    listed = {g.group_id: g for g in res.valid}
    g = listed.get(run.group)
    if res.errors:
        problems.append("list_consumer_groups errors %s" % res.errors)
    if g is None:
        problems.append("list_consumer_groups does not list %s (lists %s)" % (run.group, sorted(listed)))
    elif g.type != ConsumerGroupType.CONSUMER or g.state != ConsumerGroupState.STABLE or g.is_simple_consumer_group:
        problems.append("list_consumer_groups lists %s as type %s state %s simple %s, expected CONSUMER, STABLE, not simple"
                        % (run.group, g.type, g.state, g.is_simple_consumer_group))
    by_type = {}
    for t in (ConsumerGroupType.CONSUMER, ConsumerGroupType.CLASSIC):
        by_type[t] = {x.group_id for x in admin.list_consumer_groups(request_timeout=10, types={t}).result().valid}
        want = {x.group_id for x in listed.values() if x.type == t}
        if by_type[t] != want:
            problems.append("the %s filter lists %s, while the unfiltered list types these %s" % (
                t.name, sorted(by_type[t]), sorted(want)))
    classic = by_type[ConsumerGroupType.CLASSIC]
    if "ck-group-range" in listed and "ck-group-range" not in classic:
        problems.append("the classic group ck-group-range is not of type CLASSIC: %s" % listed["ck-group-range"].type)
    if problems:
        report(False, "; ".join(problems) + "; described: " + cp_description(d))
    else:
        report(True, "CONSUMER, Stable %.1f s after the members owned 2 partitions each, assignor uniform, 3 members "
               "with %s; list_consumer_groups: CONSUMER, the types filter gives %d consumer and %d classic groups" % (
                   took, sorted(described), len(by_type[ConsumerGroupType.CONSUMER]), len(classic)))


def check_consumer_protocol_assign():
    """consumer-protocol-assign: three members with group.protocol=consumer in one group on a
    fresh 6-partition topic own two partitions each, disjoint, all six owned (as the members'
    own rebalance callbacks report it); then 300 messages, each consumed (and committed) once,
    by the member owning its partition, without errors. consumer-protocol-describe runs while
    the group is so (cp_describe_check)."""
    if PROXY:
        skip("consumer-protocol-assign", NO_CONSUMER_PROTOCOL)
        skip("consumer-protocol-describe", NO_CONSUMER_PROTOCOL)
        return
    run = cp_run("assign")
    failed = []
    reported = set()

    def report(check, good, why):
        reported.add(check)
        if good:
            ok(check, why)
        else:
            failed.append(check)
            bad(check, "%s [member logs: %s]" % (why, run.logdir))

    try:
        t0 = time.monotonic()
        for i in range(3):
            run.start("c%d" % i, MEMBER)
        if not run.wait_balanced(run.members, 2, 60):
            report("consumer-protocol-assign", False, "no assignment of 2 partitions each, disjoint, covering 0..5 "
                   "within 60 s: %s" % run.state())
            report("consumer-protocol-describe", False, "not attempted: the group never balanced")
            return
        t_bal = time.monotonic() - t0
        try:
            cp_describe_check(run, lambda good, why: report("consumer-protocol-describe", good, why))
        except Exception as e:  # noqa: BLE001
            report("consumer-protocol-describe", False, "raised %r" % e)
        run.produce_phase()
        problems = []
        why = run.wait_consumed(30)
        if why:
            problems.append(why)
        wrong_owner = run.owners_ok()
        if wrong_owner:
            problems.append("consumed from partitions never assigned to the consumer: %s" % wrong_owner[:3])
        if not balanced(run.members, run.nparts, 2):
            problems.append("the assignment changed while the group was quiet")
        if cp_errors(run):
            problems.append("members reported errors %s" % cp_errors(run)[:3])
        if problems:
            report("consumer-protocol-assign", False, "; ".join(problems) + "; " + run.state())
        else:
            report("consumer-protocol-assign", True, "3 x 2 partitions %s after %.1f s; %d messages each consumed once"
                   % ([sorted(m.parts()) for m in run.members], t_bal, len(run.expected)))
    finally:
        if "consumer-protocol-describe" not in reported:
            report("consumer-protocol-describe", False, "not attempted: consumer-protocol-assign stopped first")
        run.finish(failed or "consumer-protocol-assign" not in reported)


def check_consumer_protocol_commit_resume():
    """consumer-protocol-commit-resume: commit-resume with group.protocol=consumer members
    (OffsetCommit and OffsetFetch carry the member's id and epoch): a member reads and commits,
    closes; a new member of the group reads on from exactly the committed offsets."""
    if PROXY:
        skip("consumer-protocol-commit-resume", NO_CONSUMER_PROTOCOL)
        return
    commit_resume("consumer-protocol-commit-resume", "ck-cp-g-resume-" + SFX, "ck-cp-resume-" + SFX,
                  consumer_protocol=True)


def check_consumer_protocol_leave():
    """consumer-protocol-leave: two members own three partitions each of a fresh 6-partition
    topic and consume a phase once; one closes (its last heartbeat leaves the group); the
    other owns all six within CP_LEAVE_LIMIT_S (two heartbeat intervals and a margin; the
    session timeout is 45 s) and consumes a second phase, each message once overall;
    describe_consumer_groups then shows only it, Stable, with all six."""
    if PROXY:
        skip("consumer-protocol-leave", NO_CONSUMER_PROTOCOL)
        return
    run = cp_run("leave")
    check = "consumer-protocol-leave"
    done = []
    try:
        for i in range(2):
            run.start("l%d" % i, MEMBER)
        if not run.wait_balanced(run.members, 3, 60):
            raise AssertionError("no assignment of 3 partitions each within 60 s: %s" % run.state())
        run.produce_phase()
        why = run.wait_consumed(30)
        if why:
            raise AssertionError("before the leave: %s; %s" % (why, run.state()))
        leaving, stays = run.members
        t1 = time.monotonic()
        leaving.stop()
        handed = run.wait_balanced([stays], 6, CP_SESSION_S - 5)
        t_leave = time.monotonic() - t1
        wait_for(lambda: not leaving.alive(), 15)
        if not handed:
            raise AssertionError("%s closed, %s did not own all 6 partitions within %.0f s: %s"
                                 % (leaving.name, stays.name, CP_SESSION_S - 5, run.state()))
        problems = []
        if t_leave > CP_LEAVE_LIMIT_S:
            problems.append("the handover took %.1f s, more than %.0f s (two heartbeat intervals and a margin): "
                            "the leave was not acted on at once" % (t_leave, CP_LEAVE_LIMIT_S))
        if not leaving.closed:
            problems.append("%s did not report a clean close (exit %s): %s" % (
                leaving.name, leaving.proc.poll(), leaving.stderr_tail()))
        run.produce_phase()
        why = run.wait_consumed(30)
        if why:
            problems.append(why)
        if run.owners_ok():
            problems.append("consumed from partitions never assigned to the consumer: %s" % run.owners_ok()[:3])
        if cp_errors(run):
            problems.append("members reported errors %s" % cp_errors(run)[:3])
        d, err, _ = cp_describe_stable(run, 1, timeout=20)
        if d is None:
            problems.append("describe_consumer_groups failed: %r" % err)
        elif d.state != ConsumerGroupState.STABLE or len(d.members) != 1 or sorted(
                tp.partition for tp in d.members[0].assignment.topic_partitions) != list(range(6)):
            problems.append("after the leave described as %s, expected Stable with one member owning 0..5"
                            % cp_description(d))
        if problems:
            raise AssertionError("; ".join(problems) + "; " + run.state())
        ok(check, "%s left; %s owned all 6 partitions %.1f s later (heartbeat interval %.0f s, session timeout "
           "%.0f s); %d messages each consumed once; described Stable with one member" % (
               leaving.name, stays.name, t_leave, CP_HEARTBEAT_S, CP_SESSION_S, len(run.expected)))
        done.append(1)
    except AssertionError as e:
        bad(check, "%s [member logs: %s]" % (e, run.logdir))
    finally:
        run.finish(not done)


for fn in (check_data_plane, check_produce_consume_10k, check_idempotent_producer, check_groups,
           check_admin_groups, check_delete_topic, check_txn_commit_abort, check_txn_send_offsets, check_txn_fencing,
           check_consumer_protocol_assign, check_consumer_protocol_commit_resume, check_consumer_protocol_leave):
    timed(fn)
print("# confluent-kafka total %.1f s" % (time.monotonic() - T0), file=sys.stderr)
sys.exit(1 if FAILED else 0)
