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
  * after a SIGKILL while the disk is full (with segments rolled on the full disk: the topic
    has 64 KiB segments), corral starts again on the still-full disk and serves all of it.
    Should it refuse, the script says what corral printed, then grows the filesystem, starts
    it and checks that nothing acknowledged was lost.
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

    # -- commits on the full disk: keep committing until an append fails (the shard's last page
    # may still have room for a few), then a group whose shard file has no page at all yet
    commit_failures = []
    for i in range(400):
        e = committer.commit(i % DATA_PARTS)
        if e is not None:
            commit_failures.append(e)
            if len(commit_failures) >= 3:
                break
            time.sleep(0.2)
    fresh = Committer(b, FRESH_GROUP)
    for p in range(DATA_PARTS):
        e = fresh.commit(p)
        if e is not None:
            commit_failures.append(e)
    names = sorted({err_name(e) for e in commit_failures})
    note(f"commits on the full disk: {len(committer.acked)} partitions with an acknowledged commit, "
         f"{len(commit_failures)} failed: {names}")
    check("an OffsetCommit whose append fails is answered NOT_COORDINATOR",
          any(e.code() == KafkaError.NOT_COORDINATOR for e in commit_failures),
          f"failures seen: {names or 'none (every commit on the full disk was acknowledged)'}")
    allowed = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE}
    check("failed commits report only coordinator errors (NOT_COORDINATOR, loading, not available)",
          all(e.code() in allowed for e in commit_failures), f"{names}")
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
    resumed_produce(b, ledger, committer, fresh, "after deleting a topic")
    check("corral is still running after writes resumed", server.alive(), server.log_tail())

    # -- fill it again, then grow the filesystem instead
    rounds, _ = fill(b, ledger)
    check(f"the disk filled again ({free_bytes(mnt) // 1024} KiB free)", rounds < 400, "produce still acknowledged")
    subprocess.run(["mount", "-o", "remount,size=8m", mnt], check=True)
    note(f"remounted at 8 MiB: {free_bytes(mnt) // 1024} KiB free")
    resumed_produce(b, ledger, committer, fresh, "after growing the filesystem")
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

    # -- a crash while the disk is full: corral must come back on it. Segments rolled while the
    # disk was full (segment.bytes is small here) could not get their index files written
    rounds, _ = fill(b, ledger)
    note(f"filled again ({free_bytes(mnt)} bytes free); SIGKILL and restart on the full disk")
    check("corral is still running with the disk full again", server.alive(), server.log_tail())
    server.kill9()
    started_on_full = server.start(required=False)
    check("after SIGKILL on the full disk: corral starts again on it", started_on_full is not None,
          f"{free_bytes(mnt)} bytes free; corral refused: {getattr(server, 'refused', '')}")
    label = "after SIGKILL, restarted on the full disk"
    if started_on_full is None:
        subprocess.run(["mount", "-o", "remount,size=12m", mnt], check=True)
        note(f"remounted at 12 MiB ({free_bytes(mnt) // 1024} KiB free) to start it and check what it kept")
        server.start()
        label = "after SIGKILL on the full disk and freeing space"
    check_reads(b, ledger, DATA, DATA_PARTS, label)
    check_commits(b, committer, label)
    check_commits(b, fresh, label)
    check("corral is still running at the end", server.alive(), server.log_tail())


def resumed_produce(b, ledger, committer, fresh, label):
    ok, bad = ledger.produce(b, DATA, 32)
    check(f"{label}: produce is acknowledged again", len(ok) == 32 and not bad,
          f"{len(ok)} acknowledged, {len(bad)} failed: {sorted({err_name(e) for e in bad})}")
    # the shard of a failed commit reloads in the background (COORDINATOR_LOAD_IN_PROGRESS,
    # which librdkafka retries); give it a moment before calling a failure final
    for c in (committer, fresh):
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
