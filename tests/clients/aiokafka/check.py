"""aiokafka (asyncio, pure Python; old non-flexible versions: JoinGroup <= v5, OffsetCommit <= v3,
Fetch <= v4 ...).

    python3 check.py BOOTSTRAP

Group members run as subprocesses (member.py) driven by ../groupcheck.py. The clients of
this script live on one asyncio loop in a background thread; `aw(coro)` runs a coroutine
there and waits for it, so the synchronous group driver can use them.

aiokafka's admin client has no AlterConsumerGroupOffsets and no DeleteGroups:
- reset-offsets commits from a consumer that is not a group member (assign(), no
  subscribe): OffsetCommit with generation -1 and an empty member id, the request Kafka's
  own admin client sends for AlterConsumerGroupOffsets;
- delete-group sends aiokafka's DeleteGroupsRequest through the admin client's connection.

In proxy mode (CORRAL_MODE=proxy, see ../run.sh) topics are made through the mock upstream's
control port and create-topic is a SKIP: the mock has no CreateTopics. The transaction checks
(txn-*) use fresh topics, groups and transactional ids each run. In proxy mode they are SKIPs:
txn-send-offsets because corral proxy refuses AddOffsetsToTxn and TxnOffsetCommit,
txn-commit-abort because of the mock upstream's read_committed Fetch and marker CRCs (after its
transactions ran through the proxy and the read_uncommitted half passed: a failure is a FAIL).
"""
import asyncio
import os
import sys
import threading
import time
import uuid

B = sys.argv[1]
F = "aiokafka"
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
    import aiokafka
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.coordinator.assignors.range import RangePartitionAssignor
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment, ConsumerProtocolMemberMetadata
    from aiokafka.protocol.admin import DeleteGroupsRequest
except ImportError as e:
    bad("install", "aiokafka is not installed: %s" % e)
    sys.exit(1)
from groupcheck import (CORRAL_NODE_ID, EXPECT_BROKERS, PROXY, UPSTREAM_LACKS, GroupRun,  # noqa: E402
                        mock_create, scenario_kill, scenario_leave, txn_diff, txn_layout, txn_records)

print("# aiokafka %s" % aiokafka.__version__, file=sys.stderr)
T0 = time.monotonic()

LOOP = asyncio.new_event_loop()
threading.Thread(target=LOOP.run_forever, daemon=True).start()


def aw(coro, timeout=120):
    return asyncio.run_coroutine_threadsafe(coro, LOOP).result(timeout)


def timed(fn):
    """Run one check function; a crash is that check's FAIL, not the script's."""
    name = fn.__name__.replace("check_", "").replace("_", "-")
    t = time.monotonic()
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        bad(name, "raised %r" % e)
    print("# %s took %.1f s" % (name, time.monotonic() - t), file=sys.stderr)


async def _admin():
    a = AIOKafkaAdminClient(bootstrap_servers=B, client_id="corral-ak-admin", request_timeout_ms=15000)
    await a.start()
    return a


admin = aw(_admin())


def create(topic, parts):
    if PROXY:
        mock_create(topic, parts)
        return
    r = aw(admin.create_topics([NewTopic(topic, num_partitions=parts, replication_factor=1)]))
    errs = [t for t in r.topic_errors if t[1] != 0]
    if errs:
        raise RuntimeError("CreateTopics %s: %s" % (topic, errs))


async def _producer(**kw):
    p = AIOKafkaProducer(bootstrap_servers=B, **kw)
    await p.start()
    return p


async def _produce(p, topic, batch):
    futs = [await p.send(topic, key=k.encode(), value=v.encode(), partition=(None if part < 0 else part))
            for part, k, v in batch]
    return await asyncio.gather(*futs)


async def _read(topic, parts, want, timeout):
    c = AIOKafkaConsumer(bootstrap_servers=B, client_id="corral-ak-read", enable_auto_commit=False,
                         fetch_max_wait_ms=100)
    await c.start()
    try:
        tps = [TopicPartition(topic, q) for q in range(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            for _, msgs in (await c.getmany(timeout_ms=300)).items():
                got.extend(msgs)
        return got
    finally:
        await c.stop()


def check_metadata():
    cl = aw(admin.describe_cluster())
    topics = aw(admin.list_topics())
    addrs = {b["node_id"]: "%s:%d" % (b["host"], b["port"]) for b in cl["brokers"]}
    if PROXY:
        # the upstream's brokers at corral listeners plus corral's own node at the bootstrap
        # address, the controller one of the upstream's
        good = (len(addrs) == EXPECT_BROKERS and addrs.get(CORRAL_NODE_ID) == B
                and cl["controller_id"] in addrs and cl["controller_id"] != CORRAL_NODE_ID)
    else:
        good = len(addrs) == 1 and cl["controller_id"] == cl["brokers"][0]["node_id"]
    if good and isinstance(topics, list):
        ok("metadata", "%d broker%s, cluster id %s" % (len(addrs), "s" if len(addrs) > 1 else "", cl["cluster_id"]))
    else:
        bad("metadata", cl)


def check_create_topic():
    if PROXY:
        skip("create-topic", UPSTREAM_LACKS("CreateTopics"))
        create("ak-10k", 3)
        return
    create("ak-10k", 3)
    d = aw(admin.describe_topics(["ak-10k"]))
    parts = len(d[0]["partitions"]) if d and d[0]["error_code"] == 0 else None
    if parts == 3:
        ok("create-topic", "admin CreateTopics, 3 partitions")
    else:
        bad("create-topic", "describe_topics after create: %s" % d)


def check_produce_consume_10k():
    N = 10_000
    p = aw(_producer(client_id="corral-ak-10k", acks="all", linger_ms=5, enable_idempotence=False))
    aw(_produce(p, "ak-10k", [(-1, "key-%d" % (i % 101), str(i)) for i in range(N)]))
    aw(p.stop())
    got = aw(_read("ak-10k", 3, N, 60))
    problems = []
    by_part = {}
    for m in got:
        by_part.setdefault(m.partition, []).append(m)
    for part, msgs in by_part.items():
        if [m.offset for m in msgs] != list(range(len(msgs))):
            problems.append("partition %d offsets not 0..%d in order" % (part, len(msgs) - 1))
        vals = [int(m.value) for m in msgs]
        if vals != sorted(vals):
            problems.append("partition %d values out of produce order" % part)
    if any(m.key != b"key-%d" % (int(m.value) % 101) for m in got):
        problems.append("a key does not belong to its value")
    if sorted(int(m.value) for m in got) != list(range(N)):
        problems.append("got %d messages, %d distinct, expected 0..%d once each" % (
            len(got), len({m.value for m in got}), N - 1))
    if len(by_part) != 3:
        problems.append("messages in %d partitions, expected 3" % len(by_part))
    if problems:
        bad("produce-consume-10k", "; ".join(problems[:4]))
    else:
        ok("produce-consume-10k", "%s per partition" % [len(by_part[i]) for i in sorted(by_part)])


def check_idempotent_producer():
    create("ak-idem", 1)
    p = aw(_producer(client_id="corral-ak-idem", enable_idempotence=True, linger_ms=2, max_batch_size=2048))
    meta = aw(_produce(p, "ak-idem", [(0, "k", str(i)) for i in range(2000)]))
    tm = p._txn_manager
    pid = (tm.producer_id, tm.producer_epoch) if tm is not None else None
    aw(p.stop())
    got = aw(_read("ak-idem", 1, 2000, 20))
    offs = [m.offset for m in meta]
    vals = [int(m.value) for m in got]
    if pid and pid[0] >= 0 and offs == list(range(2000)) and vals == list(range(2000)):
        ok("idempotent-producer", "producer id %d epoch %d, 2000 messages in order, no duplicates" % pid)
    else:
        bad("idempotent-producer", "producer id %s, offsets in order %s, read back %d (in order: %s)" % (
            pid, offs == list(range(2000)), len(vals), vals == list(range(2000))))


def describe(group):
    """(state, protocol_type, protocol, [(member_id, subscription, {topic: parts})]) of one group."""
    resp = aw(admin.describe_consumer_groups([group]))
    g = resp[0].groups[0]
    err, gid, state, ptype, proto, members = g[:6]
    if err:
        raise RuntimeError("DescribeGroups error %d" % err)
    out = []
    for m in members:
        md = ConsumerProtocolMemberMetadata.decode(m[3]) if m[3] else None
        asg = ConsumerProtocolMemberAssignment.decode(m[4]) if m[4] else None
        out.append((m[0], md.subscription if md else None,
                    {t: sorted(ps) for t, ps in asg.assignment} if asg else {}))
    return state, ptype, proto, out


group_producer = None


def describe_live(run):
    try:
        state, ptype, proto, members = describe(run.group)
        assigns = [m[2].get(run.topic, []) for m in members]
        union = sorted(q for a in assigns for q in a)
        if (state == "Stable" and ptype == "consumer" and proto == "range" and len(members) == 3
                and all(len(a) == 2 for a in assigns) and union == list(range(6))
                and all(m[1] == [run.topic] for m in members)):
            ok("describe-group", "Stable, protocol range, 3 members with %s" % sorted(assigns))
        else:
            bad("describe-group", "state %s protocol %s/%s, members %s" % (state, ptype, proto, members))
    except Exception as e:  # noqa: BLE001
        bad("describe-group", "raised %r" % e)


MEMBER = [sys.executable, os.path.join(HERE, "member.py")]


def check_groups():
    global group_producer
    create("ak-group-range", 6)
    create("ak-group-rr", 6)
    group_producer = aw(_producer(client_id="corral-ak-gp", linger_ms=2))
    produce = lambda topic, batch: aw(_produce(group_producer, topic, batch))  # noqa: E731
    run = GroupRun(B, "ak-group-range", "ak-group-range", "range", produce)
    scenario_leave(ok, bad, run, [MEMBER] * 3, on_stable=describe_live)
    run = GroupRun(B, "ak-group-rr", "ak-group-rr", "roundrobin", produce)
    scenario_kill(ok, bad, run, [MEMBER] * 3)
    aw(group_producer.stop())


async def _consume_some(group, topic, want, per_partition):
    c = AIOKafkaConsumer(bootstrap_servers=B, group_id=group, client_id="corral-ak-resume",
                         auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=6000,
                         heartbeat_interval_ms=1000, fetch_max_wait_ms=100, max_poll_records=20,
                         partition_assignment_strategy=(RangePartitionAssignor,))
    c.subscribe([topic])
    await c.start()
    got = []
    try:
        deadline = time.monotonic() + 20

        def enough():
            return len(got) >= want and all(sum(1 for m in got if m.partition == q) >= per_partition
                                            for q in range(3))

        while not enough() and time.monotonic() < deadline:
            for _, msgs in (await c.getmany(timeout_ms=200)).items():
                got.extend(msgs)
        await c.commit()
        committed = {q: await c.committed(TopicPartition(topic, q)) for q in range(3)}
    finally:
        await c.stop()
    return got, committed


def consume_some(group, topic, want, per_partition=0):
    return aw(_consume_some(group, topic, want, per_partition))


def check_commit_resume():
    create("ak-resume", 3)
    p = aw(_producer(client_id="corral-ak-resume"))
    aw(_produce(p, "ak-resume", [(i % 3, "k%d" % i, "a%d" % i) for i in range(300)]))
    first, committed = consume_some("ak-resume", "ak-resume", 100, per_partition=20)
    aw(_produce(p, "ak-resume", [(i % 3, "k%d" % i, "b%d" % i) for i in range(30)]))
    aw(p.stop())
    second, committed2 = consume_some("ak-resume", "ak-resume", 330 - len(first))
    firsts = {}
    for m in second:
        firsts.setdefault(m.partition, m.offset)
    seen1 = {(m.partition, m.offset) for m in first}
    seen2 = {(m.partition, m.offset) for m in second}
    problems = []
    if not 100 <= len(first) < 300 or any(not (committed[q] or 0) > 0 for q in range(3)):
        problems.append("first consumer read %d records, committed %s" % (len(first), committed))
    if seen1 & seen2:
        problems.append("%d records read again after the restart, e.g. %s" % (len(seen1 & seen2), sorted(seen1 & seen2)[:3]))
    for part, off in firsts.items():
        if off != committed[part]:
            problems.append("partition %d resumed at %d, committed %s" % (part, off, committed[part]))
    if len(seen1 | seen2) != 330:
        problems.append("%d distinct records over both runs, expected 330" % len(seen1 | seen2))
    if any(committed2[q] != 110 for q in range(3)):
        problems.append("final committed offsets %s, expected 110 each" % committed2)
    if problems:
        bad("commit-resume", "; ".join(problems))
    else:
        ok("commit-resume", "committed %s after %d records, restart resumed there" % (
            [committed[q] for q in range(3)], len(first)))
    return committed2


async def _commit_as_admin(group, offsets):
    """Commit offsets for `group` without joining it (assign, no subscribe)."""
    c = AIOKafkaConsumer(bootstrap_servers=B, group_id=group, client_id="corral-ak-reset", enable_auto_commit=False)
    await c.start()
    try:
        c.assign(list(offsets))
        await c.commit(offsets)
    finally:
        await c.stop()


def group_offsets(group):
    r = aw(admin.list_consumer_group_offsets(group))
    return {tp.partition: om.offset for tp, om in r.items()}


async def _start_live(group, topic):
    c = AIOKafkaConsumer(bootstrap_servers=B, group_id=group, client_id="corral-ak-live", session_timeout_ms=6000,
                         heartbeat_interval_ms=1000, enable_auto_commit=False)
    c.subscribe([topic])
    await c.start()
    deadline = time.monotonic() + 20
    while not c.assignment() and time.monotonic() < deadline:
        await c.getmany(timeout_ms=100)
    return c


async def _delete_groups(groups):
    node = await admin.find_coordinator(groups[0])
    resp = await admin._send_request(DeleteGroupsRequest(groups), node)
    return {g: code for g, code in resp.results}, resp.API_VERSION


def check_admin_groups():
    committed = check_commit_resume()
    try:
        got = group_offsets("ak-resume")
        if got == {q: committed[q] for q in range(3)}:
            ok("list-group-offsets", "%s" % got)
        else:
            bad("list-group-offsets", "admin says %s, consumer committed %s" % (got, committed))
    except Exception as e:  # noqa: BLE001
        bad("list-group-offsets", "raised %r" % e)
    live = aw(_start_live("ak-live", "ak-resume"))
    try:
        admin_with_live_group()
    finally:
        aw(live.stop())


def admin_with_live_group():
    # list-groups (aiokafka speaks ListGroups v0-2: no states there; DescribeGroups gives them)
    try:
        groups = dict(aw(admin.list_consumer_groups()))
        want = ["ak-resume", "ak-group-range", "ak-group-rr", "ak-live"]
        states = {g: describe(g)[0] for g in ("ak-resume", "ak-live")}
        if all(groups.get(g) == "consumer" for g in want) and states == {"ak-resume": "Empty", "ak-live": "Stable"}:
            ok("list-groups", "%d groups, ours with protocol type consumer; described: %s" % (len(groups), states))
        else:
            bad("list-groups", "expected %s with protocol type consumer, got %s; states %s" % (
                want, {g: groups.get(g) for g in want}, states))
    except Exception as e:  # noqa: BLE001
        bad("list-groups", "raised %r" % e)
    # reset-offsets from outside the group (see the module docstring); refused for a live group
    try:
        aw(_commit_as_admin("ak-resume", {TopicPartition("ak-resume", 0): OffsetAndMetadata(5, "corral-reset"),
                                          TopicPartition("ak-resume", 1): OffsetAndMetadata(0, ""),
                                          TopicPartition("ak-resume", 2): OffsetAndMetadata(110, "")}))
        listed_full = aw(admin.list_consumer_group_offsets("ak-resume"))
        listed = {tp.partition: om.offset for tp, om in listed_full.items()}
        meta0 = listed_full.get(TopicPartition("ak-resume", 0))
        try:
            aw(_commit_as_admin("ak-live", {TopicPartition("ak-resume", 0): OffsetAndMetadata(1, "")}))
            refused = "accepted"
        except Exception as e:  # noqa: BLE001
            refused = "%s %s" % (type(e).__name__, e)
        got, _ = consume_some("ak-resume", "ak-resume", 105 + 110)
        starts = {}
        for m in got:
            starts.setdefault(m.partition, m.offset)
        problems = []
        if listed != {0: 5, 1: 0, 2: 110}:
            problems.append("listed %s after the reset, expected {0: 5, 1: 0, 2: 110}" % listed)
        if meta0 is None or meta0.metadata != "corral-reset":
            problems.append("committed metadata came back as %r" % (meta0,))
        if "CommitFailed" not in refused:
            # aiokafka turns the coordinator's UNKNOWN_MEMBER_ID into CommitFailedError
            problems.append("committing for a group with a live member gave %r, expected a refusal" % refused[:200])
        if starts.get(0) != 5 or starts.get(1) != 0 or 2 in starts or len(got) != 215:
            problems.append("consumer then started at %s and read %d records (expected p0@5, p1@0, nothing from p2, 215)"
                            % (starts, len(got)))
        if problems:
            bad("reset-offsets", "; ".join(problems))
        else:
            ok("reset-offsets", "p0=5, p1=0, p2=110 committed from outside the group; the next consumer started there; "
               "metadata kept; refused for a live group")
    except Exception as e:  # noqa: BLE001
        bad("reset-offsets", "raised %r" % e)
    # delete-group: an empty group goes; a live one is refused; an unknown one is not found
    try:
        res, version = aw(_delete_groups(["ak-resume", "ak-live", "ak-no-such-group"]))
        after = dict(aw(admin.list_consumer_groups()))
        if res == {"ak-resume": 0, "ak-live": 68, "ak-no-such-group": 69} and "ak-resume" not in after \
                and "ak-live" in after:
            ok("delete-group", "DeleteGroups v%d: empty group deleted; live group refused with NON_EMPTY_GROUP (68); "
               "unknown GROUP_ID_NOT_FOUND (69)" % version)
        else:
            bad("delete-group", "DeleteGroups error codes %s (want ak-resume 0, ak-live 68, ak-no-such-group 69); "
                "groups afterwards contain ak-resume: %s, ak-live: %s" % (res, "ak-resume" in after, "ak-live" in after))
    except Exception as e:  # noqa: BLE001
        bad("delete-group", "raised %r" % e)


# --- transactions -----------------------------------------------------------------------
# A transaction ends with one control record (its COMMIT or ABORT marker) in each partition it
# wrote to: consumers never see it, but it takes an offset, so the offsets asserted are exact.
SFX = uuid.uuid4().hex[:8]
NO_TXN_OFFSETS = "proxy mode does not serve transactional offset commits yet"


class Abort(Exception):
    """Raised inside `async with producer.transaction()` to abort it."""


def txn_producer(tid):
    return AIOKafkaProducer(bootstrap_servers=B, client_id="corral-ak-txn", transactional_id=tid,
                            transaction_timeout_ms=30000, request_timeout_ms=10000, linger_ms=5)


async def _txn_send(p, topic, recs):
    """Send recs in p's open transaction and wait until every one is acknowledged."""
    futs = [await p.send(topic, key=k.encode(), value=v.encode(), partition=q) for q, k, v in recs]
    await asyncio.gather(*futs)


async def _txn_read(topic, isolation, last, parts=3, check_crcs=True):
    """Read `topic` from the start with isolation_level `isolation` until each partition's
    offset last[q] (15 s at most; what is missing shows in the comparison), then 300 ms more.
    Returns (sorted [(partition, offset, key, value)], end_offsets as this consumer sees them)."""
    c = AIOKafkaConsumer(bootstrap_servers=B, client_id="corral-ak-txn-read", enable_auto_commit=False,
                         isolation_level=isolation, fetch_max_wait_ms=100, check_crcs=check_crcs)
    await c.start()
    try:
        tps = [TopicPartition(topic, q) for q in range(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        got, top = [], dict.fromkeys(range(parts), -1)
        deadline = time.monotonic() + 15
        while any(top[q] < last.get(q, -1) for q in range(parts)) and time.monotonic() < deadline:
            for _, msgs in (await c.getmany(timeout_ms=200)).items():
                for m in msgs:
                    got.append((m.partition, m.offset, m.key.decode(), m.value.decode()))
                    top[m.partition] = max(top[m.partition], m.offset)
        for _, msgs in (await c.getmany(timeout_ms=300)).items():
            got.extend((m.partition, m.offset, m.key.decode(), m.value.decode()) for m in msgs)
        ends = await c.end_offsets(tps)
        return sorted(got), {tp.partition: o for tp, o in ends.items()}
    finally:
        await c.stop()


async def _txn_read_problems(topic, txns, parts=3, isolations=("read_committed", "read_uncommitted"), check_crcs=True):
    """What is wrong with `topic` as consumers of each of `isolations` read it, given the
    transactions (see txn_layout) that wrote it: [] when nothing is."""
    want_rc, want_ru, ends = txn_layout(txns, parts)
    want = {"read_committed": want_rc, "read_uncommitted": want_ru}
    problems = []
    for isolation in isolations:
        last = {q: max((r[1] for r in want[isolation] if r[0] == q), default=-1) for q in range(parts)}
        got, end = await _txn_read(topic, isolation, last, parts, check_crcs)
        why = txn_diff(got, want[isolation])
        if why:
            problems.append("%s read %s" % (isolation, why))
        if end != ends:
            problems.append("end offsets %s as %s sees them, expected %s (an offset for each record and each marker)"
                            % (end, isolation, ends))
    return problems


# proxy mode: what the upstream does not do, and what txn-commit-abort checks instead
UPSTREAM_READ_COMMITTED = ("the upstream, librdkafka's mock cluster, hands read_committed consumers aborted records, "
                           "and its markers fail CRC checks (checked instead: commit, abort, commit through the proxy "
                           "and the log as read_uncommitted reads it with check_crcs off, markers' offsets included)")


async def _txn_commit_abort(topic, tid, a, b, c):
    p = txn_producer(tid)
    await p.start()
    try:
        async with p.transaction():
            await _txn_send(p, topic, a)
        try:
            async with p.transaction():
                await _txn_send(p, topic, b)  # acknowledged: the aborted ones are in the log too
                raise Abort()
        except Abort:
            pass
        async with p.transaction():
            await _txn_send(p, topic, c)
    finally:
        await p.stop()
    if PROXY:  # see UPSTREAM_READ_COMMITTED
        return await _txn_read_problems(topic, [(a, True), (b, False), (c, True)], isolations=("read_uncommitted",),
                                        check_crcs=False)
    return await _txn_read_problems(topic, [(a, True), (b, False), (c, True)])


def check_txn_commit_abort():
    """txn-commit-abort: `async with producer.transaction()` commits A, one with an exception
    inside aborts B, another commits C (4 records in each of 3 partitions each); read_committed
    reads exactly A and C, read_uncommitted A, B and C, at the offsets the markers leave. In proxy
    mode a SKIP after the same transactions and the read_uncommitted half (whose failure is a
    FAIL): see UPSTREAM_READ_COMMITTED."""
    topic = "ak-txn-ca-" + SFX
    create(topic, 3)
    a, b, c = txn_records("A", 4), txn_records("B", 4), txn_records("C", 4)
    problems = aw(asyncio.wait_for(_txn_commit_abort(topic, "ak-txn-ca-" + SFX, a, b, c), 40), 45)
    if problems:
        bad("txn-commit-abort", "; ".join(problems))
    elif PROXY:
        skip("txn-commit-abort", UPSTREAM_READ_COMMITTED)
    else:
        ok("txn-commit-abort", "committed, aborted (exception in the context), committed 12 records each over 3 "
           "partitions; read_committed read the 24 committed ones, read_uncommitted all 36; each partition ends at 15")


async def _committed(group, topic, parts=3):
    r = await admin.list_consumer_group_offsets(group)
    return {tp.partition: om.offset for tp, om in r.items() if tp.topic == topic and om.offset >= 0}


async def _txn_send_offsets(tin, tout, group, tid, phase1, phase2):
    problems = []
    plain = await _producer(client_id="corral-ak-txn-in")
    p = txn_producer(tid)
    c = AIOKafkaConsumer(bootstrap_servers=B, group_id=group, client_id="corral-ak-txn-ctp", enable_auto_commit=False,
                         auto_offset_reset="earliest", isolation_level="read_committed", fetch_max_wait_ms=100)
    try:
        await _produce(plain, tin, phase1)
        await p.start()
        await c.start()
        tps = [TopicPartition(tin, q) for q in range(3)]
        c.assign(tps)

        async def consume(n):
            got = []
            deadline = time.monotonic() + 20
            while len(got) < n and time.monotonic() < deadline:
                for _, msgs in (await c.getmany(timeout_ms=200, max_records=n - len(got))).items():
                    got.extend((m.partition, m.offset, m.key.decode(), m.value.decode()) for m in msgs)
            if len(got) != n:
                raise RuntimeError("the consumer read %d records within 20 s, expected %d" % (len(got), n))
            return got

        async def transform(got):
            await _txn_send(p, tout, [(q, k, "T:" + v) for q, _, k, v in got])
            pos = {tp: await c.position(tp) for tp in tps}
            await p.send_offsets_to_transaction(pos, group)
            return {tp.partition: o for tp, o in pos.items()}

        five, ten = dict.fromkeys(range(3), 5), dict.fromkeys(range(3), 10)
        got1 = await consume(15)
        async with p.transaction():
            pos1 = await transform(got1)
        com1 = await _committed(group, tin)
        if pos1 != five or com1 != five:
            problems.append("round 1 (commit): positions %s, committed afterwards %s, expected %s" % (pos1, com1, five))
        await _produce(plain, tin, phase2)
        got2 = await consume(15)
        pos2 = None
        try:
            async with p.transaction():
                pos2 = await transform(got2)
                raise Abort()
        except Abort:
            pass
        com2 = await _committed(group, tin)
        if pos2 != ten or com2 != five:
            problems.append("round 2 (abort): positions %s (expected %s), committed afterwards %s, expected %s unmoved"
                            % (pos2, ten, com2, five))
        for tp in tps:
            c.seek(tp, com2.get(tp.partition, 5))
        got3 = await consume(15)
        if sorted(got3) != sorted(got2):
            problems.append("after seeking back to %s the consumer read %s..., not phase 2 again" % (com2, sorted(got3)[:3]))
        async with p.transaction():
            pos3 = await transform(got3)
        com3 = await _committed(group, tin)
        if pos3 != ten or com3 != ten:
            problems.append("round 3 (commit again): positions %s, committed afterwards %s, expected %s" % (pos3, com3, ten))
        want_in = sorted((q, i, k, v) for q in range(3) for i, (_, k, v) in
                         enumerate([r for r in phase1 + phase2 if r[0] == q]))
        why = txn_diff(sorted(got1 + got2), want_in)
        if why:
            problems.append("the consumer read %s" % why)
    finally:
        await c.stop()
        await p.stop()
        await plain.stop()
    out = lambda recs: [(q, k, "T:" + v) for q, k, v in recs]  # noqa: E731
    return problems + await _txn_read_problems(tout, [(out(phase1), True), (out(phase2), False), (out(phase2), True)])


def check_txn_send_offsets():
    """txn-send-offsets: consume-transform-produce. A read_committed consumer (group id set,
    partitions assigned) reads the input; each round sends the transformed records and
    send_offsets_to_transaction({tp: position}, group) in one transaction (TxnOffsetCommit v0).
    Round 1 commits phase 1, round 2 aborts phase 2 (an exception in the context), round 3 seeks
    back to the committed offsets and commits phase 2 again. The group's committed offsets (admin
    ListConsumerGroupOffsets) are 5/5/5 after round 1 and 2, 10/10/10 after round 3; the output
    read_committed holds each input record once, transformed, at exact offsets."""
    if PROXY:
        skip("txn-send-offsets", NO_TXN_OFFSETS)
        return
    tin, tout, group = "ak-txn-in-" + SFX, "ak-txn-out-" + SFX, "ak-txn-g-" + SFX
    create(tin, 3)
    create(tout, 3)
    phase1, phase2 = txn_records("in1", 5), txn_records("in2", 5)
    problems = aw(asyncio.wait_for(_txn_send_offsets(tin, tout, group, "ak-txn-ctp-" + SFX, phase1, phase2), 50), 55)
    if problems:
        bad("txn-send-offsets", "; ".join(problems))
    else:
        ok("txn-send-offsets", "committed offsets 5/5/5 after the first commit, unmoved by the abort, 10/10/10 after "
           "the retry; the output read_committed holds each input once")


for fn in (check_metadata, check_create_topic, check_produce_consume_10k, check_idempotent_producer,
           check_groups, check_admin_groups, check_txn_commit_abort, check_txn_send_offsets):
    timed(fn)
aw(admin.close())
print("# aiokafka total %.1f s" % (time.monotonic() - T0), file=sys.stderr)
sys.exit(1 if FAILED else 0)
