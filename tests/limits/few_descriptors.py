"""corral under a small open-file limit (RLIMIT_NOFILE 256, soft and hard, so it cannot raise
it): thousands of partitions through a bounded descriptor cache, and an accept loop that
survives running out of descriptors.

    python3 tests/limits/few_descriptors.py [path/to/corral]

Checks, printed as PASS/FAIL lines:
  * corral starts with the limit it was given and says so in its log;
  * 10 topics x 500 partitions (5,000) created through the admin API; one message produced to
    every partition, each read back at its offset;
  * with more client connections than descriptors: accept fails (EMFILE) and corral logs it,
    stays alive and does not spin (CPU time over 2 s stays small); a client connected before
    keeps being answered (produce, also to a partition whose file the data dir's descriptor
    cache had closed; an offset commit); once the extra connections close, a new client is
    served (Metadata, produce, fetch) and commits are acknowledged again;
  * stopped (SIGTERM) and started again on the same data dir under the same limit: every
    message is still there, the last acknowledged commit too, and one more message to every
    partition is acknowledged and read back.
"""
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/corral")
NOFILE = 256
TOPICS, PARTS = 10, 500
BACKLOGGED = 32
GROUP = "few-descriptors-committers"
# partitions probed around the saturation: one written just before (its file is open) and one
# written long before (its file closed by the data dir's descriptor cache since)
PROBES = ((1, 0), (5, 321))
SPIN_WINDOW_S, SPIN_MAX_CPU_S = 2.0, 0.3
WATCHDOG_S = 110
CLK_TCK = os.sysconf("SC_CLK_TCK")
failures = []
started = time.time()


def check(name, ok, why=""):
    print(f"{'PASS' if ok else 'FAIL'} few-descriptors {name}{'' if ok else ': ' + why}", flush=True)
    if not ok:
        failures.append(name)
    return ok


def note(text):
    print(f"  [{time.time() - started:5.1f}s] {text}", flush=True)


def topic(i):
    return f"many-{i}"


def limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


class Server:
    """corral on one data dir under RLIMIT_NOFILE = NOFILE; the first start takes a port the
    kernel picks, a restart listens on that same address again."""

    def __init__(self, data, log):
        self.data, self.log, self.listen, self.proc = data, log, "127.0.0.1:0", None

    def start(self):
        # the data dir's descriptor budget is logged at debug level
        env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": "info,corral::log=debug"}
        self.proc = subprocess.Popen([BIN, "--data-dir", self.data, "--listen", self.listen],
                                     stdout=subprocess.PIPE, stderr=open(self.log, "a"), env=env,
                                     preexec_fn=limit_descriptors)
        line = self.proc.stdout.readline().decode()
        if " listening on " not in line:
            self.proc.wait(10)
            raise SystemExit(f"FAIL few-descriptors start: corral did not start (exit {self.proc.returncode}): "
                             f"{line!r}; log tail:\n{self.log_tail()}")
        self.listen = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self.listen

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def nofile(self):
        with open(f"/proc/{self.proc.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return line.split()[3:5]
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung (killed after 20 s)"

    def kill9(self):
        if self.alive():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def log_lines(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.readlines()
        except OSError:
            return []

    def log_tail(self, n=15):
        return "".join(self.log_lines()[-n:])


class Ledger:
    """Acknowledged (topic, partition, offset) -> value, and values whose delivery failed."""

    def __init__(self):
        self.acked, self.failed = {}, {}

    def on_delivery(self, err, msg):
        if err is None:
            self.acked[(msg.topic(), msg.partition(), msg.offset())] = msg.value()
        else:
            self.failed[msg.value()] = err

    def produce_everywhere(self, b, round_no):
        """One message to every partition of every topic; returns how many failed."""
        p = Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "linger.ms": 20,
                      "message.timeout.ms": 60000, "queue.buffering.max.messages": 100000})
        before = len(self.failed)
        for t in range(TOPICS):
            for part in range(PARTS):
                p.produce(topic(t), value=f"{topic(t)}/{part}/round{round_no}".encode(), partition=part,
                          on_delivery=self.on_delivery)
            p.poll(0)
        left = p.flush(60)
        return left + len(self.failed) - before


def read_everything(b):
    """Every record of every partition, from offset 0 to the end: {(topic, p, offset): value};
    returns it with the partitions that never reached their end."""
    c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": "few-descriptors-reader",
                  "enable.auto.commit": False, "enable.partition.eof": True, "fetch.wait.max.ms": 100})
    c.assign([TopicPartition(topic(t), p, 0) for t in range(TOPICS) for p in range(PARTS)])
    seen, at_end = {}, set()
    deadline = time.time() + 45
    while len(at_end) < TOPICS * PARTS and time.time() < deadline:
        for m in c.consume(5000, 0.5):
            key = (m.topic(), m.partition())
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(key)
                    continue
                raise SystemExit(f"FAIL few-descriptors consume: {m.error()}")
            seen[(m.topic(), m.partition(), m.offset())] = m.value()
    c.close()
    never = [(topic(t), p) for t in range(TOPICS) for p in range(PARTS) if (topic(t), p) not in at_end]
    return seen, never


def check_everything(b, ledger, label):
    t0 = time.time()
    seen, never = read_everything(b)
    missing = [k for k in ledger.acked if seen.get(k) != ledger.acked[k]]
    extra = [k for k in seen if k not in ledger.acked]
    check(f"{label}: every partition read to its end", not never, f"{len(never)} never did, e.g. {never[:5]}")
    check(f"{label}: every acknowledged message ({len(ledger.acked)}) read back at its offset", not missing,
          f"{len(missing)} missing or different, e.g. {missing[:5]}")
    check(f"{label}: nothing that was not acknowledged", not extra and not any(v in ledger.failed for v in seen.values()),
          f"{len(extra)} records never acknowledged, e.g. {extra[:5]}")
    note(f"read {len(seen)} records from {TOPICS * PARTS} partitions in {time.time() - t0:.1f} s")


def served(b, label, ledger):
    """A client that connects now gets Metadata, a produce and a fetch answered."""
    try:
        md = AdminClient({"bootstrap.servers": b, "log_level": 0}).list_topics(timeout=10)
        check(f"{label}: Metadata answered ({len(md.topics)} topics)", all(topic(t) in md.topics for t in range(TOPICS)),
              f"topics {sorted(md.topics)[:12]}")
    except Exception as e:  # noqa: BLE001 - any failure here is the finding
        check(f"{label}: Metadata answered", False, repr(e))
        return
    p = Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "retries": 0, "message.timeout.ms": 10000})
    c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": "few-descriptors-probe", "enable.auto.commit": False})
    for t, part in PROBES:
        got = []
        value = f"{label}/probe/{t}/{part}".encode()
        p.produce(topic(t), value=value, partition=part,
                  on_delivery=lambda err, msg: (got.append((err, msg)), ledger.on_delivery(err, msg)))
        p.flush(15)
        ok = len(got) == 1 and got[0][0] is None
        check(f"{label}: produce to {topic(t)}/{part} acknowledged", ok, f"{got[0][0] if got else 'no delivery report'}")
        if not ok:
            continue
        offset = got[0][1].offset()
        c.assign([TopicPartition(topic(t), part, offset)])
        m = c.consume(1, 10)
        check(f"{label}: fetch from {topic(t)}/{part} returns it", bool(m) and m[0].error() is None and m[0].value() == value,
              f"{m[0].error() if m and m[0].error() else m}")
    c.close()


def saturate(server, b, ledger):
    """More connections than corral has descriptors: accept fails, corral neither dies nor
    spins, and serves again once they close."""
    # a client connected before the descriptors run out, to see whether it is still answered
    early = Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "retries": 0, "message.timeout.ms": 10000})
    warm = []
    early.produce(topic(PROBES[0][0]), value=b"warm-up", partition=PROBES[0][1], on_delivery=lambda e, m: (warm.append(e), ledger.on_delivery(e, m)))
    early.flush(10)
    check("saturation: a client connected beforehand is answered", warm == [None], f"{warm}")
    # and a committer connected to its coordinator, which has not written to its group's shard
    # since start-up (OffsetFetch is answered from memory): the shard's file is closed by now
    committer = Committer(b)
    got = committer.c.committed([TopicPartition(topic(0), 0)], timeout=10)[0].offset
    check("saturation: a committer connected beforehand reads its committed offset (none yet)", got == -1001, f"{got}")
    expected_commit = -1001

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * NOFILE), hard))
    host, port = b.rsplit(":", 1)
    fds_before = server.fds()
    warned_before = sum(1 for l in server.log_lines() if "accept failed" in l)
    socks = []
    try:
        # connect until corral's descriptor table is full, then some more, which wait in the
        # listen backlog (corral's is 128 deep: more than that and connect() itself times out)
        def connect():
            try:
                socks.append(socket.create_connection((host, int(port)), timeout=3))
                return True
            except OSError as e:  # the backlog is full too
                note(f"connection {len(socks) + 1} failed: {e!r}")
                return False

        while len(socks) < NOFILE + 100 and server.fds() < NOFILE and connect():
            if server.fds() < NOFILE:
                time.sleep(0.002)
        full_at = len(socks)
        waiting = sum(1 for _ in range(BACKLOGGED) if connect())
        note(f"corral holds {server.fds()} descriptors after {full_at} client connections; {waiting} more wait in the backlog")
        deadline = time.time() + 10
        while time.time() < deadline and sum(1 for l in server.log_lines() if "accept failed" in l) == warned_before:
            time.sleep(0.1)
        accept_failures = [l.strip() for l in server.log_lines() if "accept failed" in l][warned_before:]
        fds = server.fds()
        note(f"{len(socks)} extra connections open; corral holds {fds} descriptors (was {fds_before}); "
             f"first accept failure logged: {accept_failures[0].split('Z ', 1)[-1] if accept_failures else 'none'}")
        check(f"saturation: corral's accept fails with EMFILE ({fds} of {NOFILE} descriptors in use)",
              any("Too many open files" in l for l in accept_failures),
              f"no 'accept failed: Too many open files' logged; log tail:\n{server.log_tail()}")

        cpu0, w0 = server.cpu_s(), len([l for l in server.log_lines() if "accept failed" in l])
        time.sleep(SPIN_WINDOW_S)
        cpu = server.cpu_s() - cpu0
        warns = len([l for l in server.log_lines() if "accept failed" in l]) - w0
        note(f"over {SPIN_WINDOW_S:.0f} s saturated: {cpu:.2f} s of CPU, {warns} 'accept failed' lines logged")
        check(f"saturation: corral does not spin (CPU {cpu:.2f} s over {SPIN_WINDOW_S:.0f} s, at most {SPIN_MAX_CPU_S})",
              cpu <= SPIN_MAX_CPU_S, f"{cpu:.2f} s of CPU")
        check("saturation: corral is still running", server.alive(), server.log_tail())

        # the early client's connection was accepted before: it is still answered. The data
        # dir keeps at most half the limit open (corral: "the rest is for connections"), so a
        # partition whose file was closed meanwhile needs a descriptor now: the connections
        # must not have taken the data dir's share
        during = []
        for t, part in PROBES:
            early.produce(topic(t), value=f"during-saturation/{t}/{part}".encode(), partition=part,
                          on_delivery=lambda e, m: (during.append(e), ledger.on_delivery(e, m)))
        early.flush(15)
        names = [e.name() if e else "acknowledged" for e in during]
        e = committer.commit(2, 5)
        note(f"over connections opened before the saturation: produce {names}, commit {outcome(e)}")
        for (t, part), what, x in zip(PROBES, ("its file open", "its file closed by the cache"), during):
            check(f"saturation: a connection accepted before gets its produce to {topic(t)}/{part} ({what}) acknowledged",
                  x is None, outcome(x))
        check("saturation: a connection accepted before gets its commit acknowledged (its shard's file closed by the cache)",
              e is None, outcome(e))
    finally:
        for s in socks:
            s.close()
    deadline = time.time() + 15
    while time.time() < deadline and server.fds() > fds_before + 5:
        time.sleep(0.1)
    note(f"extra connections closed; corral holds {server.fds()} descriptors")
    check("after the saturation: corral is still running", server.alive(), server.log_tail())
    served(b, "after the saturation, a new client", ledger)
    # the commit made during the saturation may still be retried by the client: let it finish
    # first, so that the commits are acknowledged in order
    e = committer.wait(2, 30)
    note(f"the commit made during the saturation finally: {outcome(e)}")
    if e is None:
        expected_commit = 2
    # a shard whose append failed reloads in the background (with backoff): retry a little
    deadline = time.time() + 15
    while True:
        e = committer.commit(3, 10)
        if e is None or time.time() > deadline:
            break
        committer.results.pop(3, None)
        time.sleep(0.2)
    check("after the saturation: the committer's commit is acknowledged", e is None, outcome(e))
    if e is None:
        expected_commit = 3
    committer.c.close()
    check_commit(b, expected_commit, "after the saturation")
    early.flush(5)
    del early
    return expected_commit


class Committer:
    """Commits many-0/0 for GROUP asynchronously, so that a commit the client keeps retrying
    (while the coordinator's shard cannot load) never blocks the test."""

    def __init__(self, b):
        self.results = {}
        self.c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": GROUP, "enable.auto.commit": False,
                           "on_commit": self._done})

    def _done(self, err, partitions):
        for tp in partitions:
            self.results[tp.offset] = err if err is not None else tp.error

    def commit(self, offset, wait_s):
        """None when acknowledged, the KafkaError when refused, "pending" with no answer yet."""
        self.c.commit(offsets=[TopicPartition(topic(0), 0, offset)], asynchronous=True)
        return self.wait(offset, wait_s)

    def wait(self, offset, wait_s):
        deadline = time.time() + wait_s
        while offset not in self.results and time.time() < deadline:
            self.c.poll(0.1)
        return self.results.get(offset, "pending")


def outcome(e):
    if e is None:
        return "acknowledged"
    if isinstance(e, str):  # "pending" (a KafkaError compares only with ints)
        return "no answer yet"
    return e.name() if isinstance(e, KafkaError) else str(e)


def check_commit(b, expected, label):
    """GROUP's committed offset of many-0/0, as the coordinator answers it (retried while the
    shard loads), is the last acknowledged commit."""
    c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": GROUP, "enable.auto.commit": False})
    deadline, got = time.time() + 20, None
    while got is None:
        try:
            got = c.committed([TopicPartition(topic(0), 0)], timeout=10)[0].offset
        except KafkaException as e:
            if time.time() > deadline:
                got = f"error {e}"
            else:
                time.sleep(0.2)
    c.close()
    check(f"{label}: the committed offset is the last acknowledged one ({expected})", got == expected, f"coordinator answers {got}")


def report_log(server):
    """corral's log lines about descriptors (each distinct one once, with how often), then its
    other warnings and errors."""
    lines = server.log_lines()
    print("# corral's log lines about descriptors:")
    about = [l.strip() for l in lines if any(w in l for w in ("open file limit", "descriptors", "Too many open files"))]
    shown, repeats = [], {}
    for l in about:
        msg = l.split("Z ", 1)[-1]
        repeats[msg] = repeats.get(msg, 0) + 1
        if repeats[msg] == 1:
            shown.append(l)
    for l in shown:
        msg = l.split("Z ", 1)[-1]
        print(f"#   {l}" + (f"   (x{repeats[msg]})" if repeats[msg] > 1 else ""))
    others = {}
    for l in lines:
        if (" WARN " in l or " ERROR " in l or "panicked" in l) and l.strip() not in about:
            msg = l.split("Z ", 1)[-1].strip()
            others[msg] = others.get(msg, 0) + 1
    if others:
        print(f"# other warnings and errors ({sum(others.values())} lines):")
        for msg, n in list(others.items())[:12]:
            print(f"#   {n:4d} x {msg[:220]}")


def arm_watchdog(seconds, cleanup):
    """A client call that never returns must not hang the run: after `seconds`, report, clean
    up and exit 1 (from a thread, since a blocked librdkafka call holds the main one)."""

    def fire():
        print(f"FAIL few-descriptors watchdog: still running after {seconds} s", flush=True)
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
        print(f"FAIL few-descriptors: no corral binary at {BIN} (cargo build)")
        sys.exit(1)
    work = tempfile.mkdtemp(prefix="corral-few-descriptors-")
    server = Server(os.path.join(work, "data"), os.path.join(work, "corral.log"))
    ledger = Ledger()

    def cleanup(code):
        server.kill9()
        report_log(server)
        if code:
            kept = shutil.copy(server.log, tempfile.mktemp(prefix="corral-few-descriptors-", suffix=".log"))
            print(f"# corral log kept at {kept}")
        shutil.rmtree(work, ignore_errors=True)
        print(f"# few-descriptors: {time.time() - started:.1f} s, {len(failures)} failures"
              + ("" if code == 0 or failures else ", aborted"), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    watchdog = arm_watchdog(WATCHDOG_S, lambda: cleanup(1))
    code = 1
    try:
        b = server.start()
        limits = server.nofile()
        note(f"corral on {b} with RLIMIT_NOFILE {limits}, data dir {server.data}")
        check(f"corral runs with its open-file limit at {NOFILE} (soft, hard)", limits == [str(NOFILE)] * 2, f"{limits}")
        check(f"corral logs 'open file limit: {NOFILE}'", any(f"open file limit: {NOFILE}" in l for l in server.log_lines()),
              server.log_tail())

        t0 = time.time()
        admin = AdminClient({"bootstrap.servers": b, "log_level": 0})
        futures = admin.create_topics([NewTopic(topic(t), num_partitions=PARTS, replication_factor=1) for t in range(TOPICS)],
                                      request_timeout=60)
        errors = []
        for name, f in futures.items():
            try:
                f.result(90)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{name}: {e}")
        check(f"{TOPICS} topics x {PARTS} partitions created ({time.time() - t0:.1f} s)", not errors, "; ".join(errors[:3]))
        md = admin.list_topics(timeout=30)
        counts = {topic(t): len(md.topics[topic(t)].partitions) if topic(t) in md.topics else 0 for t in range(TOPICS)}
        check(f"Metadata lists {TOPICS * PARTS} partitions", sum(counts.values()) == TOPICS * PARTS, f"{counts}")

        t0 = time.time()
        failed = ledger.produce_everywhere(b, 1)
        check(f"one message acknowledged on each of {TOPICS * PARTS} partitions ({time.time() - t0:.1f} s)",
              failed == 0 and len(ledger.acked) == TOPICS * PARTS,
              f"{failed} failed ({sorted({e.name() for e in ledger.failed.values()})}), {len(ledger.acked)} acknowledged")
        check("every one of them at offset 0", all(k[2] == 0 for k in ledger.acked), "some offset is not 0")
        note(f"corral holds {server.fds()} descriptors")
        check_everything(b, ledger, "first start")

        expected_commit = saturate(server, b, ledger)

        rc = server.stop()
        check("SIGTERM stops corral cleanly (exit 0)", rc == 0, f"exit {rc}; log tail:\n{server.log_tail()}")
        t0 = time.time()
        server.start()
        limits = server.nofile()
        check(f"restarted on the same data dir with RLIMIT_NOFILE {limits}", limits == [str(NOFILE)] * 2, f"{limits}")
        note(f"restart took {time.time() - t0:.1f} s to listen; corral holds {server.fds()} descriptors")
        check_everything(b, ledger, "after the restart")
        check_commit(b, expected_commit, "after the restart")
        before = len(ledger.acked)
        failed = ledger.produce_everywhere(b, 2)
        check(f"after the restart: one more message acknowledged on each of {TOPICS * PARTS} partitions",
              failed == 0 and len(ledger.acked) == before + TOPICS * PARTS,
              f"{failed} failed ({sorted({e.name() for e in ledger.failed.values()})})")
        check_everything(b, ledger, "after the restart, second round")
        check("corral is still running at the end", server.alive(), server.log_tail())
        code = 1 if failures else 0
    finally:
        watchdog.cancel()
        cleanup(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
