"""A data dir on a real filesystem that fills up: corral answers, keeps serving reads, resumes
writing once there is room again, and loses nothing it acknowledged.

    python3 tests/durability/full_disk.py [path/to/corral]

Needs root (it mounts a 4 MiB tmpfs for the data dir); where mounting is not permitted it
prints a SKIP line and exits 77. Checks, printed as PASS/FAIL lines:
  * produce on the full disk fails with KAFKA_STORAGE_ERROR (the delivery error librdkafka
    reports with retries off), and corral stays up;
  * an OffsetCommit whose log append fails is answered NOT_COORDINATOR (Kafka's mapping of a
    storage failure for the group apis), the committed offsets read back are the last
    acknowledged ones, never the failed commit;
  * reads keep working on the full disk: every acknowledged message is consumed, nothing
    whose delivery failed is;
  * deleting a topic frees the space and produce and commits work again without a restart;
    growing the filesystem (remount) does too;
  * after a SIGKILL and a restart on the same dir: every acknowledged message at its offset,
    nothing else, every acknowledged commit, the deleted topic gone;
  * after a SIGKILL while the disk is full (0 bytes free; the topic has 64 KiB segments and a
    value larger than one makes each partition roll on the full disk, so the start has sealed
    segments to index: past the recovery point, or without an index file), corral starts
    again on the still-full disk: it warns that it cannot write those index files (only
    those), serves every acknowledged message and commit, refuses produce with
    KAFKA_STORAGE_ERROR and commits with NOT_COORDINATOR as before the crash, and takes both
    again once the filesystem grows, without a restart. Should it refuse to start, the script
    says what corral printed, then grows the filesystem, starts it and checks that nothing
    acknowledged was lost;
  * a last SIGKILL and restart with room: everything acknowledged is there, and every sealed
    segment has its index file again.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/corral")
SKIP = 77
DATA, BALLAST, GROUP, FRESH_GROUP = "data", "ballast", "full-disk-committers", "full-disk-fresh"
DATA_PARTS = 2
VALUE_BYTES, SMALL_VALUE_BYTES = 8 * 1024, 64
SEGMENT_BYTES = 64 * 1024
WATCHDOG_S = 110
failures = []
started = time.time()


def check(name, ok, why=""):
    print(f"{'PASS' if ok else 'FAIL'} full-disk {name}{'' if ok else ': ' + why}", flush=True)
    if not ok:
        failures.append(name)
    return ok


def note(text):
    print(f"  [{time.time() - started:5.1f}s] {text}", flush=True)


def err_name(e):
    return e.name() if isinstance(e, KafkaError) else str(e)


class Server:
    """corral on one data dir; the first start takes a port the kernel picks, every restart
    listens on that same address again."""

    def __init__(self, data, log):
        self.data, self.log, self.listen, self.proc = data, log, "127.0.0.1:0", None

    def start(self, required=True):
        """Starts corral and returns its address; when it does not start, exits the test or
        (not `required`) returns None with what it said in `self.refused`."""
        logged = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.proc = subprocess.Popen([BIN, "--data-dir", self.data, "--listen", self.listen],
                                     stdout=subprocess.PIPE, stderr=open(self.log, "a"), env={**os.environ, "NO_COLOR": "1"})
        line = self.proc.stdout.readline().decode()
        if " listening on " not in line:
            self.proc.wait(10)
            with open(self.log, errors="replace") as f:
                f.seek(logged)
                said = f.read().strip()
            self.refused = f"exit {self.proc.returncode}, stderr:\n{said}"
            if required:
                raise SystemExit(f"FAIL full-disk start: corral did not start ({self.refused})")
            return None
        self.listen = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self.listen

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def log_tail(self, n=15):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def producer(b):
    # retries off, so a storage error is the delivery error (librdkafka retries it otherwise);
    # no idempotence, so a failed batch is never resent under the same sequence
    return Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "enable.idempotence": False,
                     "retries": 0, "linger.ms": 2, "message.timeout.ms": 15000, "request.timeout.ms": 10000})


class Ledger:
    """What the producers were told: acknowledged (topic, partition, offset) -> value, and the
    values whose delivery failed with their error."""

    def __init__(self):
        self.acked, self.failed, self.n = {}, {}, 0

    def produce(self, b, topic, count, partition=None, size=VALUE_BYTES):
        """Produces `count` unique values of `size` bytes; returns (acknowledged, failed) of
        this call."""
        p = producer(b)
        ok, bad = [], []

        def on_delivery(err, msg):
            if err is None:
                self.acked[(msg.topic(), msg.partition(), msg.offset())] = msg.value()
                ok.append(msg)
            else:
                self.failed[msg.value()] = err
                bad.append(err)

        for _ in range(count):
            self.n += 1
            value = f"{topic}-{self.n:07d}-".encode().ljust(size, b"x")
            kw = {} if partition is None else {"partition": partition}
            while True:
                try:
                    p.produce(topic, value=value, on_delivery=on_delivery, **kw)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        left = p.flush(30)
        if left:
            raise SystemExit(f"FAIL full-disk produce: {left} messages still undelivered after 30 s")
        return ok, bad


def fill(b, ledger):
    """Produces to DATA until the filesystem is full to its last block: large values until
    every partition refuses them, then small ones until every partition refuses those too.
    Returns (rounds, the delivery errors)."""
    rounds, errors = 0, []
    for size in (VALUE_BYTES, SMALL_VALUE_BYTES):
        while rounds < 400:
            rounds += 1
            ok, bad = ledger.produce(b, DATA, 16, size=size)
            errors += bad
            if not ok and bad:
                # one more round aimed at each partition, to be sure neither still takes writes
                per_part = [ledger.produce(b, DATA, 4, partition=p, size=size) for p in range(DATA_PARTS)]
                errors += [e for _, bb in per_part for e in bb]
                if all(not o for o, _ in per_part):
                    break
    return rounds, errors


def consume_all(b, topic, parts):
    """Every record of `topic` from offset 0 up to its high watermark: {(topic, p, offset): value}."""
    c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": "full-disk-reader", "enable.auto.commit": False,
                  "enable.partition.eof": True})
    ends = {}
    for p in range(parts):
        _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
    c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    seen, done = {}, {p for p in range(parts) if ends[p] == 0}
    deadline = time.time() + 30
    while len(done) < parts and time.time() < deadline:
        for m in c.consume(500, 1.0):
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    if m.offset() >= ends[m.partition()]:
                        done.add(m.partition())
                    continue
                raise SystemExit(f"FAIL full-disk consume: {m.error()}")
            seen[(m.topic(), m.partition(), m.offset())] = m.value()
    c.close()
    return seen, ends


def check_reads(b, ledger, topic, parts, label):
    """Exactly what was acknowledged on `topic` is there: each acknowledged value at its offset,
    no other record, no value whose delivery failed."""
    seen, ends = consume_all(b, topic, parts)
    want = {k: v for k, v in ledger.acked.items() if k[0] == topic}
    missing = [k for k in want if seen.get(k) != want[k]]
    extra = [k for k in seen if k not in want]
    resurrected = [seen[k][:20] for k in seen if seen[k] in ledger.failed]
    check(f"{label}: {topic} has every acknowledged message ({len(want)}) at its offset", not missing and bool(want),
          f"{len(missing)} missing or different, e.g. {missing[:5]}")
    check(f"{label}: {topic} has nothing that was not acknowledged (ends {ends})", not extra and not resurrected,
          f"{len(extra)} records never acknowledged, e.g. {extra[:5]}; failed deliveries visible: {resurrected[:5]}")


class Committer:
    """Commits increasing offsets of `data` for one group; keeps the last acknowledged one."""

    def __init__(self, b, group):
        self.c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": group, "enable.auto.commit": False,
                           "retry.backoff.ms": 50})
        self.group, self.acked, self.next, self.errors = group, {}, 1, []

    def commit(self, part):
        offset = self.next
        self.next += 1
        try:
            res = self.c.commit(offsets=[TopicPartition(DATA, part, offset)], asynchronous=False)
            errs = [tp.error for tp in res or [] if tp.error is not None]
            if errs:
                self.errors.append(errs[0])
                return errs[0]
            self.acked[part] = offset
            return None
        except KafkaException as e:
            self.errors.append(e.args[0])
            return e.args[0]

    def close(self):
        self.c.close()


def committed(b, group, deadline_s=30):
    """The group's committed offsets of `data` as the coordinator answers them (retrying while
    the shard loads): {partition: offset}, -1001 for none."""
    c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": group, "enable.auto.commit": False})
    deadline = time.time() + deadline_s
    try:
        while True:
            try:
                got = c.committed([TopicPartition(DATA, p) for p in range(DATA_PARTS)], timeout=10)
                return {tp.partition: tp.offset for tp in got}
            except KafkaException as e:
                if time.time() > deadline:
                    raise SystemExit(f"FAIL full-disk committed({group}): {e}")
                time.sleep(0.2)
    finally:
        c.close()


def check_commits(b, committer, label):
    got = committed(b, committer.group)
    want = {p: committer.acked.get(p, -1001) for p in range(DATA_PARTS)}
    return check(f"{label}: {committer.group} committed offsets are the acknowledged ones {want}", got == want,
                 f"coordinator answers {got}")


def run(server, ledger, mnt):
    b = server.start()
    note(f"corral on {b}, data dir {server.data} on a 4 MiB tmpfs ({free_bytes(mnt) // 1024} KiB free)")
    admin = AdminClient({"bootstrap.servers": b, "log_level": 0})
    # small segments on DATA: they roll while the disk is full, too
    for t, n, conf in ((BALLAST, 1, {}), (DATA, DATA_PARTS, {"segment.bytes": str(SEGMENT_BYTES)})):
        admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1, config=conf)])[t].result(10)

    # -- before the disk is full: a ballast topic to delete later, a first commit per partition
    ok, bad = ledger.produce(b, BALLAST, 1024 * 1024 // VALUE_BYTES)
    check(f"ballast produced ({len(ok)} x {VALUE_BYTES // 1024} KiB)", not bad, f"{len(bad)} failed: {bad[:3]}")
    committer = Committer(b, GROUP)
    for p in range(DATA_PARTS):
        e = committer.commit(p)
        check(f"commit on partition {p} while there is room", e is None, err_name(e))
    note(f"{free_bytes(mnt) // 1024} KiB free after the ballast")

    # -- fill the disk: produce until every partition refuses
    rounds, errors = fill(b, ledger)
    storage_errors = sum(1 for e in errors if e.code() == KafkaError.KAFKA_STORAGE_ERROR)
    others = sorted({err_name(e) for e in errors if e.code() != KafkaError.KAFKA_STORAGE_ERROR})
    acked_data = sum(1 for k in ledger.acked if k[0] == DATA)
    note(f"disk full after {rounds} rounds: {acked_data} messages acknowledged on {DATA}, "
         f"{storage_errors} failed with KAFKA_STORAGE_ERROR, {len(errors) - storage_errors} otherwise {others}; "
         f"{free_bytes(mnt) // 1024} KiB free")
    check("produce on the full disk fails with KAFKA_STORAGE_ERROR", storage_errors > 0 and rounds < 400,
          f"{storage_errors} storage errors in {rounds} rounds")
    check("every failed delivery is KAFKA_STORAGE_ERROR (no timeout, no other error)", not others, f"{others}")
    check("corral is still running with the disk full", server.alive(), server.log_tail())

    # -- commits on the full disk: an append fails sooner or later
    fresh = Committer(b, FRESH_GROUP)
    commits_on_full_disk(committer, fresh)
    check("corral is still running after the failed commits", server.alive(), server.log_tail())

    # -- reads on the full disk
    check_commits(b, committer, "full disk")
    check_commits(b, fresh, "full disk")
    check_reads(b, ledger, DATA, DATA_PARTS, "full disk")
    check_reads(b, ledger, BALLAST, 1, "full disk")

    # -- free space by deleting a topic: writes resume without a restart. The deletion is itself
    # a write (the catalog's record, fsynced before the reply); it fits in the page the catalog
    # file (a few hundred bytes) already holds, which tmpfs needs no new block for
    before = free_bytes(mnt)
    try:
        admin.delete_topics([BALLAST])[BALLAST].result(15)
        deleted = True
        why = ""
    except KafkaException as e:
        deleted, why = False, err_name(e.args[0])
    check("DeleteTopics on the full disk is acknowledged", deleted, why)
    if deleted:
        for k in [k for k in ledger.acked if k[0] == BALLAST]:
            del ledger.acked[k]
    time.sleep(0.5)
    note(f"free after deleting {BALLAST}: {before // 1024} KiB -> {free_bytes(mnt) // 1024} KiB")
    check("deleting the topic gave the space back", free_bytes(mnt) >= before + 512 * 1024,
          f"{before // 1024} KiB -> {free_bytes(mnt) // 1024} KiB free")
    resumed_produce(b, ledger, [committer, fresh], "after deleting a topic")
    check("corral is still running after writes resumed", server.alive(), server.log_tail())

    # -- fill it again, then grow the filesystem instead
    rounds, _ = fill(b, ledger)
    check(f"the disk filled again ({free_bytes(mnt) // 1024} KiB free)", rounds < 400, "produce still acknowledged")
    subprocess.run(["mount", "-o", "remount,size=8m", mnt], check=True)
    note(f"remounted at 8 MiB: {free_bytes(mnt) // 1024} KiB free")
    resumed_produce(b, ledger, [committer, fresh], "after growing the filesystem")
    check_reads(b, ledger, DATA, DATA_PARTS, "before the kill")

    # -- SIGKILL, restart on the same dir
    server.kill9()
    note("SIGKILLed corral; restarting on the same data dir")
    b2 = server.start()
    assert b2 == b, "corral moved"
    check_reads(b, ledger, DATA, DATA_PARTS, "after SIGKILL and restart")
    check_commits(b, committer, "after SIGKILL and restart")
    check_commits(b, fresh, "after SIGKILL and restart")
    md = AdminClient({"bootstrap.servers": b, "log_level": 0, "allow.auto.create.topics": False}).list_topics(timeout=10)
    check("after SIGKILL and restart: the deleted topic stays deleted", BALLAST not in md.topics or not deleted,
          f"topics {sorted(md.topics)}")

    # -- a crash while the disk is full: corral must come back on it, serve reads, refuse writes
    # as before the crash, and take them again once there is room
    rounds, _ = fill(b, ledger)
    force_rolls(b, ledger)
    to_index = segments_to_index(server.data)
    note(f"filled again ({free_bytes(mnt)} bytes free); sealed segments a start walks and writes an index file for: "
         f"{[os.path.basename(os.path.dirname(f))[-1:] + '/' + os.path.basename(f) for f in to_index]}; "
         "SIGKILL and restart on the full disk")
    check("the disk is full at the kill (0 bytes free)", free_bytes(mnt) == 0, f"{free_bytes(mnt)} bytes free")
    # what the fix is about: a start that has to write a segment's index file, with no room for it
    check("the data dir at the kill has sealed segments a start must index (past the recovery point or without an index file)",
          bool(to_index), "none: the restart would not need to write an index file")
    check("corral is still running with the disk full again", server.alive(), server.log_tail())
    server.kill9()
    logged = log_size(server.log)
    started_on_full = server.start(required=False)
    check("after SIGKILL on the full disk: corral starts again on it", started_on_full is not None,
          f"{free_bytes(mnt)} bytes free; corral refused: {getattr(server, 'refused', '')}")
    if started_on_full is None:
        # what it kept, at least: start it with room
        subprocess.run(["mount", "-o", "remount,size=12m", mnt], check=True)
        note(f"remounted at 12 MiB ({free_bytes(mnt) // 1024} KiB free) to start it and check what it kept")
        server.start()
        label = "after SIGKILL on the full disk and freeing space"
        check_reads(b, ledger, DATA, DATA_PARTS, label)
        check_commits(b, committer, label)
        check_commits(b, fresh, label)
        return
    label = "restarted on the full disk"
    check_reads(b, ledger, DATA, DATA_PARTS, label)
    # (after the reads, which open every partition)
    skipped = [l.split("Z ", 1)[-1].strip() for l in log_since(server.log, logged) if "cannot write the segment's index file" in l]
    predicted = {(os.path.basename(os.path.dirname(f)).rsplit("-", 1)[1], os.path.basename(f)) for f in to_index}
    warned = {(l.split('partition="', 1)[1].split('"', 1)[0].rsplit("-", 1)[1], l.split('segment="', 1)[1].split('"', 1)[0])
              for l in skipped if 'partition="' in l and 'segment="' in l}
    note(f"{label}: {free_bytes(mnt)} bytes free; corral warned {len(skipped)} times: {skipped[:1]}")
    check(f"{label}: corral warned that it could not write a segment's index file (a warning, not a refusal), "
          "only for segments it had to index", bool(skipped) and warned <= predicted,
          f"warned for {sorted(warned)}, predicted {sorted(predicted)}; log since the start:\n"
          f"{''.join(log_since(server.log, logged)[-15:])}")
    check_commits(b, committer, label)
    check_commits(b, fresh, label)
    # writes are refused as before the crash
    ok, bad = ledger.produce(b, DATA, 8)
    per_part = [ledger.produce(b, DATA, 2, partition=p) for p in range(DATA_PARTS)]
    ok += [m for o, _ in per_part for m in o]
    bad += [e for _, bb in per_part for e in bb]
    check(f"{label}: produce fails with KAFKA_STORAGE_ERROR ({len(bad)} deliveries, on every partition)",
          not ok and bool(bad) and all(e.code() == KafkaError.KAFKA_STORAGE_ERROR for e in bad),
          f"{len(ok)} acknowledged, failures {sorted({err_name(e) for e in bad})}")
    fresh2 = Committer(b, FRESH_GROUP + "-2")
    commits_on_full_disk(committer, fresh2, label)
    check_commits(b, committer, f"{label}, after the refused commits")
    check_commits(b, fresh2, f"{label}, after the refused commits")
    check(f"{label}: corral is still running after the refused writes", server.alive(), server.log_tail())

    # room again: writes resume without a restart
    subprocess.run(["mount", "-o", "remount,size=12m", mnt], check=True)
    note(f"remounted at 12 MiB: {free_bytes(mnt) // 1024} KiB free")
    resumed_produce(b, ledger, [committer, fresh, fresh2], "restarted on the full disk, then room again")
    check_reads(b, ledger, DATA, DATA_PARTS, "restarted on the full disk, then room again")

    # and a last SIGKILL with room: all of it is there, and the open now writes the index files
    # it could not write on the full disk
    server.kill9()
    logged = log_size(server.log)
    server.start()
    label = "after a last SIGKILL and restart with room"
    check_reads(b, ledger, DATA, DATA_PARTS, label)
    for c in (committer, fresh, fresh2):
        check_commits(b, c, label)
    missing = segments_to_index(server.data, past_recovery_point=False)
    check(f"{label}: every sealed segment has its index file now (none was written on the full disk)", not missing,
          f"still without: {missing}")
    warned = [l.strip() for l in log_since(server.log, logged) if "cannot write the segment's index file" in l]
    check(f"{label}: no index write failed", not warned, f"{warned[:3]}")
    check("corral is still running at the end", server.alive(), server.log_tail())


def commits_on_full_disk(committer, fresh, label=""):
    """On a full disk: commits with `committer` until three have failed (its shard's last page
    may still have room for a few), then one per partition with `fresh` (a new group, whose
    shard file may have no page at all yet); the failures must be NOT_COORDINATOR (or the other
    coordinator errors a client retries)."""
    prefix = f"{label}: " if label else ""
    commit_failures = []
    for i in range(400):
        e = committer.commit(i % DATA_PARTS)
        if e is not None:
            commit_failures.append(e)
            if len(commit_failures) >= 3:
                break
            time.sleep(0.2)
    for p in range(DATA_PARTS):
        e = fresh.commit(p)
        if e is not None:
            commit_failures.append(e)
    names = sorted({err_name(e) for e in commit_failures})
    note(f"commits on {label or 'the full disk'}: {len(committer.acked)} partitions with an acknowledged commit, "
         f"{len(commit_failures)} failed: {names}")
    check(f"{prefix}an OffsetCommit whose append fails is answered NOT_COORDINATOR",
          any(e.code() == KafkaError.NOT_COORDINATOR for e in commit_failures),
          f"failures seen: {names or 'none (every commit on the full disk was acknowledged)'}")
    allowed = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE}
    check(f"{prefix}failed commits report only coordinator errors (NOT_COORDINATOR, loading, not available)",
          all(e.code() in allowed for e in commit_failures), f"{names}")


def force_rolls(b, ledger):
    """On the full disk, one value larger than a segment to each partition: a partition whose
    active segment is not empty rolls first (the sealed segment's index file cannot be
    written), then the append fails."""
    for p in range(DATA_PARTS):
        ok, bad = ledger.produce(b, DATA, 1, partition=p, size=SEGMENT_BYTES + 4096)
        check(f"a value larger than a segment to {DATA}/{p} on the full disk fails with KAFKA_STORAGE_ERROR",
              not ok and [e.code() for e in bad] == [KafkaError.KAFKA_STORAGE_ERROR],
              f"{len(ok)} acknowledged, {[err_name(e) for e in bad]}")


def segments_to_index(data, past_recovery_point=True):
    """Sealed segments (every .log file but a partition's last) that a start walks and writes
    an index file for: those without their .index file and (`past_recovery_point`) those at
    or past the partition's recovery point, which a start walks again."""
    out = []
    root = os.path.join(data, "partitions")
    for d in sorted(os.listdir(root)):
        files = set(os.listdir(os.path.join(root, d)))
        logs = sorted(f for f in files if f.endswith(".log"))
        point = None
        if past_recovery_point and "recovery-point" in files:
            with open(os.path.join(root, d, "recovery-point")) as f:
                point = int(f.read().strip() or 0)
        out += [os.path.join(root, d, f) for f in logs[:-1]
                if f[:-4] + ".index" not in files or point is not None and int(f[:-4]) >= point]
    return out


def log_size(path):
    return os.path.getsize(path) if os.path.exists(path) else 0


def log_since(path, offset):
    with open(path, errors="replace") as f:
        f.seek(offset)
        return f.readlines()


def resumed_produce(b, ledger, committers, label):
    ok, bad = ledger.produce(b, DATA, 32)
    check(f"{label}: produce is acknowledged again", len(ok) == 32 and not bad,
          f"{len(ok)} acknowledged, {len(bad)} failed: {sorted({err_name(e) for e in bad})}")
    # the shard of a failed commit reloads in the background (COORDINATOR_LOAD_IN_PROGRESS,
    # which librdkafka retries); give it a moment before calling a failure final
    for c in committers:
        for p in range(DATA_PARTS):
            deadline, first = time.time() + 10, c.next
            while True:
                e = c.commit(p)
                if e is None or time.time() > deadline:
                    break
                time.sleep(0.2)
            if c.next - first > 1:
                note(f"{c.group} partition {p}: {c.next - first} commit attempts, errors {[err_name(x) for x in c.errors[-(c.next - first):]]}")
            check(f"{label}: {c.group} commit on partition {p} is acknowledged again", e is None, err_name(e))


def summarize_log(path):
    """corral's warnings and errors, each distinct message once with how often it came."""
    seen = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if " WARN " in line or " ERROR " in line or "panicked" in line:
                    msg = line.split("Z ", 1)[-1].strip()
                    seen[msg] = seen.get(msg, 0) + 1
    except OSError:
        return
    print(f"# corral's warnings and errors ({sum(seen.values())} lines):")
    for msg, n in list(seen.items())[:15]:
        print(f"#   {n:4d} x {msg[:200]}")


def arm_watchdog(seconds, cleanup):
    """A client call that never returns must not hang the run: after `seconds`, report, clean
    up and exit 1 (from a thread, since a blocked librdkafka call holds the main one)."""

    def fire():
        print(f"FAIL full-disk watchdog: still running after {seconds} s", flush=True)
        try:
            cleanup()
        finally:
            os._exit(1)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


def main():
    if not os.path.exists(BIN):
        print(f"FAIL full-disk: no corral binary at {BIN} (cargo build)")
        sys.exit(1)
    if os.geteuid() != 0:
        print("SKIP full-disk: needs root to mount a small tmpfs for the data dir")
        sys.exit(SKIP)
    work = tempfile.mkdtemp(prefix="corral-full-disk-")
    mnt = os.path.join(work, "mnt")
    os.mkdir(mnt)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        why = " ".join(m.stderr.split()) or f"mount exited {m.returncode}"
        print(f"SKIP full-disk: cannot mount a tmpfs for the data dir ({why})")
        sys.exit(SKIP)
    server = Server(os.path.join(mnt, "data"), os.path.join(work, "corral.log"))

    def cleanup(code):
        server.kill9()
        summarize_log(server.log)
        if code:
            kept = shutil.copy(server.log, tempfile.mktemp(prefix="corral-full-disk-", suffix=".log"))
            print(f"# corral log kept at {kept}")
        for _ in range(10):
            if subprocess.run(["umount", mnt], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(work, ignore_errors=True)
        print(f"# full-disk: {time.time() - started:.1f} s, {len(failures)} failures"
              + ("" if code == 0 or failures else ", aborted"), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    watchdog = arm_watchdog(WATCHDOG_S, lambda: cleanup(1))
    code = 1
    try:
        run(server, Ledger(), mnt)
        code = 1 if failures else 0
    finally:
        watchdog.cancel()
        cleanup(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
