"""Exactly-once through rebalances and SIGKILLs: a consume-transform-produce job of real
confluent-kafka processes (read_committed consumers in one group, one transactional producer
each, send_offsets_to_transaction) copies an input topic to an output topic while members are
SIGKILLed with a transaction open, replaced, joined and left, fenced as zombies, and corral
itself is SIGKILLed and restarted on the same data dir.

    python3 tests/durability/exactly_once.py [path/to/corral]

The input comes in chunks, one before each phase, so the members are at work whenever
something happens to them. Checks, printed as PASS/FAIL lines (exit 1 on any FAIL):
  * two members are SIGKILLed with a transaction open (one after send_offsets_to_transaction,
    its offsets pending in the group; one after produce) and replaced;
  * a fourth member joins, commits, and leaves cleanly;
  * a zombie (a member whose consumer left the group inside a transaction) cannot commit:
    its TxnOffsetCommit with the old generation is refused (KIP-447);
  * the members ride through a SIGKILL of corral (they commit again after the restart);
  * the group's committed offsets reach the input's end offsets on every partition;
  * no transaction is left open (the output's last stable offset reaches its high watermark);
  * a read_committed read of the output holds every input key exactly once, with its value,
    in the partition of its input record; no input record is in two acknowledged commits.

EOS_SEED repeats a run's random choice; EOS_DEBUG=cgrp,fetch,eos puts librdkafka's debug log
into the member logs (member-NAME.log in the work dir, beside corral's data.log).
The same file is the member process (`--member NAME`), started by the test itself.
"""
import argparse
import faulthandler
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import (OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

IN, OUT, GROUP, PARTS = "eos-in", "eos-out", "eos-job", 6
N = 3000
CHUNKS = 6          # the input comes in this many chunks, one before each phase
BATCH = 10           # input records per transaction, at most
TXN_TIMEOUT_MS = 15000  # longer than the session timeout, as Kafka's defaults are (60 s, 45 s)
SESSION_TIMEOUT_MS = 6000  # corral's group.min.session.timeout.ms
MAX_POLL_INTERVAL_MS = TXN_TIMEOUT_MS + 20000  # on_assign may wait out a pending transaction
CONFIG = '"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 500\n'
failures = []


def check(name, ok, why=""):
    print(f"{'PASS' if ok else 'FAIL'} exactly-once {name}{'' if ok else ': ' + why}", flush=True)
    if not ok:
        failures.append(name)


def info(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# member process
# ---------------------------------------------------------------------------------------------

def member(a):
    name = a.member
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    faulthandler.register(signal.SIGUSR1)  # a stack dump into the member's log, on request

    def emit(*words):
        print("EVT", name, *words, flush=True)
        print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d}", *words, file=sys.stderr, flush=True)

    common = {"bootstrap.servers": a.bootstrap, "reconnect.backoff.ms": 20, "reconnect.backoff.max.ms": 500,
              "retry.backoff.ms": 50, "log_level": 3}
    if os.environ.get("EOS_DEBUG"):  # librdkafka's debug contexts into the member logs, e.g. cgrp,fetch,eos
        common.update({"debug": os.environ["EOS_DEBUG"], "log_level": 7})
    assigned = set()

    def committed(c, parts, label, within, pause):
        """The group's committed offsets of `parts`, asked again (after `pause` s) while the
        coordinator answers an error, for up to `within` s; each error is emitted as `label`."""
        deadline = time.time() + within
        while True:
            try:
                return c.committed(parts, timeout=10)
            except KafkaException as e:
                emit("ERR", label, e.args[0].name())
                if time.time() > deadline:
                    raise
                time.sleep(pause)

    def on_assign(c, parts):
        # Start each partition at the group's committed offset, fetched here (read_committed:
        # require_stable, so this waits while a transaction still holds offsets of the partition
        # pending; UNSTABLE_OFFSET_COMMIT is retried) and assigned explicitly. librdkafka 2.16's
        # own fetch gets this wrong when the assignment changes while its OffsetFetch is being
        # retried for UNSTABLE_OFFSET_COMMIT: it puts the partition back as pending with offset
        # INVALID instead of "stored", starts it there and resets to the beginning ("Adding ...
        # back to pending list because on-going transaction is blocking offset retrieval", then
        # "Starting pending assigned partition ... at offset INVALID"): the input again.
        got = committed(c, parts, "committed-on-assign", TXN_TIMEOUT_MS / 1000 + 15, pause=0)
        for tp in got:
            if tp.offset < 0:
                tp.offset = OFFSET_BEGINNING
        c.assign(got)
        assigned.clear()
        assigned.update(tp.partition for tp in parts)
        emit("ASSIGN", ",".join(f"{tp.partition}@{tp.offset}" for tp in got) or "-")

    def on_revoke(c, parts):
        # no transaction is ever open here: rebalance callbacks run inside consume(), and a
        # transaction is begun after consume() returns and ended before it is called again
        assigned.clear()
        emit("REVOKE")

    def new_consumer():
        c = Consumer(dict(common, **{"group.id": GROUP, "isolation.level": "read_committed",
                                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                     "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": 500,
                                     "max.poll.interval.ms": MAX_POLL_INTERVAL_MS}))
        c.subscribe([IN], on_assign=on_assign, on_revoke=on_revoke)
        return c

    def new_producer():
        # metadata.recovery.strategy=none: librdkafka's re-bootstrap (the default, "rebootstrap")
        # decommissions every broker once all are down, as they are while the single node
        # restarts, and send_offsets_to_transaction then waits forever on the decommissioned
        # group coordinator, past its timeout (librdkafka issues #5511 and #5456, open in 2.16)
        p = Producer(dict(common, **{"transactional.id": f"eos-{name}-{uuid.uuid4().hex[:8]}",
                                     "transaction.timeout.ms": TXN_TIMEOUT_MS, "linger.ms": 5,
                                     "metadata.recovery.strategy": "none"}))
        deadline = time.time() + 60
        while True:
            try:
                p.init_transactions(10)
                return p
            except KafkaException as e:
                emit("ERR", "init_transactions", e.args[0].name())
                if time.time() > deadline or e.args[0].fatal():
                    raise
                time.sleep(0.2)

    consumer = new_consumer()
    producer = new_producer()
    emit("READY", os.getpid())

    def rewind():
        """After an aborted transaction: back to the group's committed offsets."""
        nonlocal consumer
        parts = [TopicPartition(IN, p) for p in sorted(assigned)]
        if not parts:
            return
        got = committed(consumer, parts, "committed", 60, pause=0.2)
        try:
            for tp in got:
                consumer.seek(TopicPartition(IN, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
            emit("REWIND", ",".join(f"{tp.partition}:{tp.offset}" for tp in got))
        except KafkaException as e:
            # cannot seek: leave the group and join again, which starts from the committed offsets
            emit("ERR", "seek", e.args[0].name(), "rejoining")
            consumer.close()
            assigned.clear()
            consumer = new_consumer()

    def abort():
        nonlocal producer
        deadline = time.time() + 30
        while True:
            try:
                producer.abort_transaction(10)
                emit("ABORTED")
                return
            except KafkaException as e:
                err = e.args[0]
                emit("ERR", "abort_transaction", err.name())
                if err.fatal() or time.time() > deadline:
                    replace_producer()
                    return
                time.sleep(0.1)

    def replace_producer():
        nonlocal producer
        emit("NEW-PRODUCER")
        try:
            producer.flush(0)
        except Exception:
            pass
        producer = new_producer()

    def hold(stage, n):
        """On the test's request (a file): stop here with the transaction open. "zombie": the
        consumer leaves the group (as one kicked out would) and the others take its partitions,
        then go on; any other stage: until the test SIGKILLs this process."""
        path = os.path.join(a.ctl, "hold-" + name)
        try:
            with open(path) as f:
                want = f.read().strip()
        except FileNotFoundError:
            return False
        if want != stage:
            return False
        os.unlink(path)
        left = producer.flush(10)
        emit("HELD", stage, n, left)
        if stage != "zombie":
            while True:
                time.sleep(1)
        consumer.close()  # LeaveGroup
        emit("LEFT-GROUP", "yes")
        time.sleep(3)  # the others' rebalance
        return True

    committed_txns = 0
    while not stopping.is_set():
        msgs = consumer.consume(num_messages=BATCH, timeout=0.3)
        msgs = [m for m in msgs if m.error() is None and m.partition() in assigned]
        if not msgs:
            continue
        # the positions and the group generation this batch was consumed in
        positions = consumer.position([TopicPartition(IN, p) for p in sorted(assigned)])
        offsets = [tp for tp in positions if tp.offset >= 0]
        group_metadata = consumer.consumer_group_metadata()
        stage = "begin_transaction"
        zombie = False
        try:
            producer.begin_transaction()
            stage = "produce"
            for m in msgs:
                producer.produce(OUT, key=m.key(), value=b"out:" + m.value(), partition=m.partition())
            hold("after-produce", len(msgs))
            zombie = hold("zombie", len(msgs))
            stage = "send_offsets_to_transaction"
            producer.send_offsets_to_transaction(offsets, group_metadata, 10)
            hold("after-offsets", len(msgs))
            stage = "commit_transaction"
            deadline = time.time() + 30
            while True:
                try:
                    producer.commit_transaction(10)
                    break
                except KafkaException as e:
                    if e.args[0].retriable() and time.time() < deadline:
                        emit("ERR", "commit_transaction", e.args[0].name(), "retrying")
                        continue
                    raise
            committed_txns += 1
            emit("COMMIT", len(msgs), ",".join(f"{tp.partition}:{tp.offset}" for tp in offsets),
                 ",".join(m.key().decode() for m in msgs))
            if zombie:
                emit("ZOMBIE", "committed")
                consumer = new_consumer()
        except KafkaException as e:
            err = e.args[0]
            emit("ERR", stage, err.name(), "fatal" if err.fatal() else "abortable" if err.txn_requires_abort() else "other")
            if err.fatal():
                replace_producer()
            else:
                abort()
            if zombie:
                emit("ZOMBIE", "refused", stage, err.name())
                assigned.clear()
                consumer = new_consumer()  # joins again, starting from the committed offsets
            else:
                rewind()
        if a.pace:
            time.sleep(a.pace)
    consumer.close()  # leaves the group
    producer.flush(5)
    emit("CLOSED", committed_txns)


# ---------------------------------------------------------------------------------------------
# the test
# ---------------------------------------------------------------------------------------------

class Server:
    """corral on one data dir; restarts listen on the address the first start got."""

    def __init__(self, data, config):
        self.data, self.config, self.listen, self.proc = data, config, "127.0.0.1:0", None
        self.log = data + ".log"

    def start(self):
        self.proc = subprocess.Popen([BIN, "--data-dir", self.data, "--listen", self.listen, "--config", self.config],
                                     stdout=subprocess.PIPE, stderr=open(self.log, "a"))
        watchdog = threading.Timer(30, self.proc.kill)  # no start line in 30 s: killed, and the assert fails
        watchdog.start()
        line = self.proc.stdout.readline().decode()
        watchdog.cancel()
        assert " listening on " in line, line
        self.listen = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self.listen

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Member:
    """A member process; its events (lines on its stdout) are parsed as they come."""

    def __init__(self, name, bootstrap, ctl, work, pace):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--member", name, "--bootstrap", bootstrap,
                                      "--ctl", ctl, "--pace", str(pace)],
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(work, f"member-{name}.log"), "a"))
        self.commits = 0        # records in transactions whose commit_transaction returned
        self.acked_keys = []    # their input keys
        self.lines = []
        self.held = self.left = self.zombie = self.closed = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            words = raw.decode().split()
            if len(words) < 3 or words[0] != "EVT":
                continue
            kind = words[2]
            self.lines.append(words[2:])
            if kind == "COMMIT":
                self.commits += int(words[3])
                self.acked_keys.extend(k.encode() for k in words[5].split(","))
            elif kind == "HELD":
                self.held = words[3:]
            elif kind == "LEFT-GROUP":
                self.left = words[3]
            elif kind == "ZOMBIE":
                self.zombie = words[3:]
            elif kind == "CLOSED":
                self.closed = int(words[3])

    def count(self, kind):
        return sum(1 for w in self.lines if w[0] == kind)

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def wait_for(cond, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def group_committed(b):
    c = Consumer({"bootstrap.servers": b, "group.id": GROUP, "log_level": 0})
    try:
        got = c.committed([TopicPartition(IN, p) for p in range(PARTS)], timeout=5)
        return {tp.partition: tp.offset for tp in got}
    except KafkaException:
        return None
    finally:
        c.close()


def read_all(b, isolation, timeout=60):
    """Every record of OUT up to the end (for read_committed, the last stable offset)."""
    c = Consumer({"bootstrap.servers": b, "group.id": f"eos-reader-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                  "isolation.level": isolation, "enable.partition.eof": True, "log_level": 0})
    c.assign([TopicPartition(OUT, p, OFFSET_BEGINNING) for p in range(PARTS)])
    recs, eof = [], set()
    deadline = time.time() + timeout
    while len(eof) < PARTS and time.time() < deadline:
        for m in c.consume(1000, 0.5):
            if m.error() is None:
                recs.append((m.partition(), m.key(), m.value()))
                eof.discard(m.partition())
            elif m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
    c.close()
    return recs, len(eof) == PARTS


def end_offsets(admin, topic, isolation):
    req = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(PARTS)}
    got = admin.list_offsets(req, isolation_level=isolation, request_timeout=10)
    return {tp.partition: f.result(15).offset for tp, f in got.items()}


def main():
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="corral-eos-")
    ctl = os.path.join(work, "ctl")
    os.mkdir(ctl)
    config = os.path.join(work, "corral.toml")
    with open(config, "w") as f:
        f.write(CONFIG)
    server = Server(os.path.join(work, "data"), config)
    b = server.start()
    info(f"corral at {b}, work dir {work}")
    members = {}
    try:
        run(server, b, work, ctl, members)
    finally:
        for m in members.values():
            if m.proc.poll() is None:
                m.kill()
        if failures:
            info(f"corral log (last 40 lines of {server.log}; member logs in {work}):")
            try:
                with open(server.log, errors="replace") as f:
                    for line in f.readlines()[-40:]:
                        print("#   " + line.rstrip(), file=sys.stderr)
            except OSError:
                pass
        server.kill9()
        info(f"wall time {time.time() - t0:.1f} s")
    if not failures:
        shutil.rmtree(work, ignore_errors=True)  # kept when something failed
    sys.exit(1 if failures else 0)


def run(server, b, work, ctl, members):
    seed = int(os.environ.get("EOS_SEED", time.time()))
    rng = random.Random(seed)
    info(f"seed {seed} (EOS_SEED to repeat)")
    admin = AdminClient({"bootstrap.servers": b, "log_level": 0})
    for fut in admin.create_topics([NewTopic(IN, num_partitions=PARTS, replication_factor=1),
                                    NewTopic(OUT, num_partitions=PARTS, replication_factor=1)]).values():
        fut.result(10)

    # The group starts with offset 0 committed on every input partition. Without a committed
    # offset, a member's librdkafka looks the start up (ListOffsets BEGINNING); when the
    # partition is revoked before that answer comes (it waits behind the connection's long-poll
    # Fetch, as on Kafka), librdkafka 2.16 takes the outdated answer as a reason to query again
    # and starts fetching the partition it no longer owns, and hands those records to the app
    # after its next assignment, before the offsets fetched for that assignment apply: the
    # same input twice, from the client (seen in this test's librdkafka debug log: "Offset reply
    # error ... Local: Outdated", then "start fetching at offset 0" in fetch state stopped).
    c = Consumer({"bootstrap.servers": b, "group.id": GROUP, "enable.auto.commit": False, "log_level": 0})
    c.commit(offsets=[TopicPartition(IN, p, 0) for p in range(PARTS)], asynchronous=False)
    c.close()

    # The input, N unique keys (partition = i % PARTS), produced idempotently in CHUNKS: one
    # before each phase, so that the members are at work whenever something happens to them.
    inp = Producer({"bootstrap.servers": b, "enable.idempotence": True, "acks": "all", "linger.ms": 5, "log_level": 0})
    delivered, derr, want = [0], [], {}

    def on_delivery(err, msg):
        if err is None:
            delivered[0] += 1
        else:
            derr.append(str(err))

    chunk = iter(range(CHUNKS))

    def feed():
        c = next(chunk)
        for i in range(c * N // CHUNKS, (c + 1) * N // CHUNKS):
            k = f"k{i:05d}".encode()
            want[k] = (i % PARTS, b"out:v%d" % i)
            while True:
                try:
                    inp.produce(IN, key=k, value=b"v%d" % i, partition=i % PARTS, on_delivery=on_delivery)
                    break
                except BufferError:
                    inp.poll(0.05)
        return inp.flush(30) == 0 and not derr

    pace = 0.05

    def start(name):
        members[name] = Member(name, b, ctl, work, pace)
        return members[name]

    def progress():
        return sum(m.commits for m in members.values())

    def live():
        return [m for m in members.values() if m.proc.poll() is None]

    def hold(name, stage):
        with open(os.path.join(ctl, "hold-" + name), "w") as f:
            f.write(stage)

    def hold_and_kill(name, stage):
        m = members[name]
        hold(name, stage)
        held = wait_for(lambda: m.held is not None or m.proc.poll() is not None, 60)
        m.kill()
        return held and m.held is not None

    t_job = time.time()
    fed = feed()
    for n in ("m1", "m2", "m3"):
        start(n)
    # 1. m1 SIGKILLed after send_offsets_to_transaction (its offsets pending in the group),
    # replaced by r1; the new owner of m1's partitions waits (UNSTABLE_OFFSET_COMMIT) until the
    # transaction is aborted by its timeout
    wait_for(lambda: progress() >= 100, 60)
    info(f"phase 1 after {time.time() - t_job:.1f} s, {progress()} records committed: m1 held after send_offsets, SIGKILLed")
    killed = []
    if hold_and_kill("m1", "after-offsets"):
        killed.append(("m1", "after-offsets", members["m1"].held))
    start("r1")
    # 2. m2 SIGKILLed after producing (its records open in the output), replaced by r2
    fed = feed() and fed
    info(f"phase 2 after {time.time() - t_job:.1f} s, {progress()} records committed: m2 held after produce, SIGKILLed")
    if hold_and_kill("m2", "after-produce"):
        killed.append(("m2", "after-produce", members["m2"].held))
    start("r2")
    check("two-members-SIGKILLed-mid-transaction", len(killed) == 2,
          f"only {killed} reached a held transaction (records sent, not committed) before the kill")

    # 3. a fourth member joins, takes part, and leaves cleanly
    fed = feed() and fed
    info(f"phase 3 after {time.time() - t_job:.1f} s, {progress()} records committed: m4 joins and leaves")
    m4 = start("m4")
    joined = wait_for(lambda: m4.commits > 0, 60)
    m4.proc.send_signal(signal.SIGTERM)
    try:
        rc4 = m4.proc.wait(30)
    except subprocess.TimeoutExpired:
        rc4 = "still running after SIGTERM"
        m4.kill()
    wait_for(lambda: m4.closed is not None, 2)
    check("member-joins-commits-and-leaves-cleanly", joined and rc4 == 0 and m4.closed is not None,
          f"m4 committed {m4.commits} records, exit {rc4}, closed {m4.closed}")

    # 4. a zombie: m3's consumer leaves the group inside a transaction (as a member kicked out
    # would) and the others take its partitions; m3 goes on with the group generation it
    # consumed the batch in: TxnOffsetCommit must be refused (KIP-447), so the transaction
    # can't commit, and the new owners' output is the only one
    fed = feed() and fed
    info(f"phase 4 after {time.time() - t_job:.1f} s, {progress()} records committed: m3 becomes a zombie")
    m3 = members["m3"]
    hold("m3", "zombie")
    wait_for(lambda: m3.zombie is not None or m3.proc.poll() is not None, 60)
    check("zombie-member-cannot-commit (KIP-447 generation fencing)",
          m3.left == "yes" and m3.zombie is not None and m3.zombie[0] == "refused",
          f"held: {m3.held}; left the group: {m3.left}; after it: {m3.zombie or 'no outcome in 60 s'}")
    info(f"zombie m3: {m3.zombie}")

    # 5. a member SIGKILLed at a random moment (in a transaction or not, maybe its commit in
    # flight), replaced by r3
    fed = feed() and fed
    time.sleep(rng.uniform(0.2, 1.5))
    members["r1"].kill()
    start("r3")
    info(f"phase 5 after {time.time() - t_job:.1f} s: r1 SIGKILLed at random after {members['r1'].commits} "
         f"acknowledged records; r3 joins")

    # 6. corral itself SIGKILLed and restarted on the same data dir; the members ride through
    fed = feed() and fed
    before = progress()
    wait_for(lambda: progress() >= before + 50, 60)
    before = progress()
    info(f"phase 6 after {time.time() - t_job:.1f} s, {before} records committed: SIGKILL corral")
    server.kill9()
    time.sleep(0.5)
    assert server.start() == b, "corral moved"
    resumed = wait_for(lambda: progress() > before + 2 * BATCH, 60)
    survivors = sorted(m.name for m in live())
    check("members-ride-through-corral-SIGKILL", resumed and survivors == ["m3", "r2", "r3"],
          f"committed {before} before the kill, {progress()} 60 s after the restart; live members {survivors}")

    ends = {}
    probe = Consumer({"bootstrap.servers": b, "group.id": "eos-probe", "log_level": 0})
    for part in range(PARTS):
        ends[part] = probe.get_watermark_offsets(TopicPartition(IN, part), timeout=10)[1]
    probe.close()
    check(f"input-produced ({N} records in {CHUNKS} chunks, {PARTS} partitions)",
          fed and delivered[0] == N and sum(ends.values()) == N and not derr,
          f"delivered {delivered[0]}, errors {derr[:3]}, end offsets {ends}")

    # the job finishes: the group's committed offsets reach the input's end offsets
    got = {}

    def done():
        nonlocal got
        got = group_committed(b) or got
        return got == ends

    finished = wait_for(done, 120, step=1.0)
    info(f"job finished after {time.time() - t_job:.1f} s" if finished else "job did not finish")
    check("group-committed-offsets-reach-input-end", finished, f"committed {got}, input end offsets {ends}")

    for m in live():
        m.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 20
    for m in list(members.values()):
        try:
            m.proc.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            m.kill()
    bad_exit = [m.name for m in members.values() if m.name not in ("m1", "m2", "r1") and m.proc.returncode != 0]
    check("members-exit-cleanly", not bad_exit, f"members {bad_exit} exited non-zero (see {work}/member-*.log)")

    # no transaction stays open: past the timeout of the last one a member could have left
    # open, the output's last stable offset is its high watermark
    lso, hw = {}, {}

    def settled():
        nonlocal lso, hw
        try:
            lso = end_offsets(admin, OUT, IsolationLevel.READ_COMMITTED)
            hw = end_offsets(admin, OUT, IsolationLevel.READ_UNCOMMITTED)
        except KafkaException:
            return False
        return lso == hw

    ok = wait_for(settled, TXN_TIMEOUT_MS / 1000 + 5, step=0.5)
    check("no-transaction-left-open (output LSO == high watermark)", ok, f"LSO {lso}, high watermark {hw}")

    # the output, read_committed: every key exactly once, with its value, in its partition
    recs, at_end = read_all(b, "read_committed")
    seen = {}
    for part, k, v in recs:
        seen.setdefault(k, []).append((part, v))
    missing = [k for k in want if k not in seen]
    dup = [k for k, vs in seen.items() if len(vs) > 1]
    wrong = [k for k, vs in seen.items() if k in want and vs[0] != want[k]]
    extra = [k for k in seen if k not in want]
    check(f"output-exactly-once-read-committed ({len(recs)} records for {N} keys)",
          at_end and not missing and not dup and not wrong and not extra,
          f"reached end {at_end}; {len(missing)} missing e.g. {missing[:3]}; {len(dup)} duplicated e.g. "
          f"{[(k, seen[k]) for k in dup[:3]]}; {len(wrong)} wrong e.g. {[(k, seen[k]) for k in wrong[:3]]}; "
          f"{len(extra)} unexpected keys")

    # what the members saw acknowledged: no input record in two committed transactions, each in
    # the output; the one member killed at random may have lost the report of its last commit
    acked = [k for m in members.values() for k in m.acked_keys]
    twice = len(acked) - len(set(acked))
    absent = [k for k in acked if k not in seen]
    check(f"acknowledged-commits-unique-and-visible ({len(acked)} records)",
          not twice and not absent and N - BATCH <= len(acked) <= N,
          f"{twice} input records in two acknowledged transactions; {len(absent)} acknowledged but not in the "
          f"output, e.g. {absent[:3]}; {len(acked)} acknowledged of {N}")

    unc, _ = read_all(b, "read_uncommitted")
    info(f"read_uncommitted sees {len(unc)} records, read_committed {len(recs)}: {len(unc) - len(recs)} in aborted "
         f"transactions (killed mid-transaction: {killed}; zombie: {m3.held})")
    info("read_uncommitted shows MORE records than read_committed" if len(unc) > len(recs)
         else "read_uncommitted does NOT show more records than read_committed")
    errs = {}
    for m in members.values():
        for w in m.lines:
            if w[0] == "ERR":
                errs[" ".join(w[1:3])] = errs.get(" ".join(w[1:3]), 0) + 1
    info(f"member events: {sum(m.count('ASSIGN') for m in members.values())} assignments, "
         f"{sum(m.count('ABORTED') for m in members.values())} aborts, "
         f"{sum(m.count('REWIND') for m in members.values())} rewinds, "
         f"{sum(m.count('NEW-PRODUCER') for m in members.values())} producers replaced, errors {errs}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("bin", nargs="?", default="target/debug/corral")
    ap.add_argument("--member")
    ap.add_argument("--bootstrap")
    ap.add_argument("--ctl")
    ap.add_argument("--pace", type=float, default=0.0)
    args = ap.parse_args()
    BIN = args.bin
    if args.member:
        member(args)
    else:
        main()
