"""corral under a small open-file limit (RLIMIT_NOFILE 256, soft and hard, so it cannot raise
it): thousands of partitions through a bounded descriptor cache, a connection cap that keeps
the data dir's share of descriptors, and an accept loop that survives running out of them.

    python3 tests/limits/few_descriptors.py [path/to/corral]

Checks, printed as PASS/FAIL lines:
  * corral starts with the limit it was given and logs it with the connection cap it derives
    from it ("open file limit: 256; serving at most 64 connections at once": 256 - 128 - 64);
  * 10 topics x 500 partitions (5,000) created through the admin API; one message produced to
    every partition, each read back at its offset;
  * the default cap, flooded with more client connections (356) than descriptors: every one
    connects (none refused or reset); corral accepts exactly 64 at once, the rest wait in the
    kernel's backlog unanswered; corral never fails an accept and keeps descriptors spare, does
    not spin; connections accepted before the flood get their produce acknowledged, also to a
    partition whose file the descriptor cache had closed (checked in /proc), and their commit
    too; as connections close, the waiting ones are accepted and answered, never more than 64
    at once, until every one of them has been served; then a new client is served;
  * stopped (SIGTERM) and started with `max.connections = 100000` (a --config file), which
    lifts the cap: corral logs that cap; flooded until its descriptor table is full, accept
    fails with EMFILE and corral logs it once ("accept failed: Too many open files"), not once
    per 50 ms retry: one line each time accept starts failing (an accept that gets through
    in between, when corral frees a descriptor, logs "accepting connections again" and the
    next failure starts over), "still failing" at most every 10 s, a few lines in all; corral
    does not spin (CPU over 2 s stays small) and stays up; over connections accepted before,
    produce to a partition whose file is open is acknowledged, to one whose file the cache had
    closed either acknowledged or refused with KAFKA_STORAGE_ERROR (corral cannot reopen the
    file), a commit acknowledged, refused with a coordinator error or still being retried by
    the client; everything acknowledged reads back and nothing refused does; once the flood
    closes, corral serves a new client and has logged "accepting connections again" last
    (its first accept that works says so), commits are
    acknowledged again, and a coordinator shard whose reload kept failing meanwhile is back
    within 5 s (its retry backoff's cap);
  * stopped (SIGTERM) and started again on the same data dir with the default cap: every
    acknowledged message is still there, no refused one, the last acknowledged commit too, and
    one more message to every partition is acknowledged and read back.
"""
import datetime
import os
import resource
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/corral")
NOFILE = 256
# the cap corral derives: what is left once the data dir has its share (half the limit, at most
# 4096), less 64
DERIVED_CAP = NOFILE - min(NOFILE // 2, 4096) - 64
UNCAPPED = 100000
TOPICS, PARTS = 10, 500
FLOOD = NOFILE + 100
BACKLOGGED = 32
GROUP = "few-descriptors-committers"
# partitions probed around a flood: one written just before (its file is open) and one
# written long before (its file closed by the data dir's descriptor cache since); one such
# pair per phase, so that each cold one is cold
PROBES_CAPPED = ((1, 0), (5, 321))
PROBES_UNCAPPED = ((1, 0), (7, 123))
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

    def start(self, config=None):
        """Starts corral (with `--config config` if given); returns its address."""
        # the data dir's descriptor budget is logged at debug level
        env = {**os.environ, "NO_COLOR": "1", "RUST_LOG": "info,corral::log=debug"}
        env.pop("CORRAL_CONFIG", None)
        args = [BIN, "--data-dir", self.data, "--listen", self.listen] + (["--config", config] if config else [])
        self.started_at = len(self.log_lines())
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=open(self.log, "a"), env=env,
                                     preexec_fn=limit_descriptors)
        line = self.proc.stdout.readline().decode()
        if " listening on " not in line:
            self.proc.wait(10)
            raise SystemExit(f"FAIL few-descriptors start: corral did not start (exit {self.proc.returncode}): "
                             f"{line!r}; log tail:\n{self.log_tail()}")
        self.listen = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        self.port = int(self.listen.rsplit(":", 1)[1])
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self.listen

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)

    def fd_targets(self):
        """What each of corral's descriptors points at (paths, socket:[inode], ...)."""
        out = []
        for fd in os.listdir(f"/proc/{self.proc.pid}/fd"):
            try:
                out.append(os.readlink(f"/proc/{self.proc.pid}/fd/{fd}"))
            except OSError:
                pass
        return out

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def connections(self):
        """(accepted, waiting): established connections to corral's port that corral holds a
        descriptor for, and those the kernel has completed but corral has not accepted (in the
        listen backlog, owned by no descriptor)."""
        inodes = {t[len("socket:["):-1] for t in self.fd_targets() if t.startswith("socket:[")}
        accepted = waiting = 0
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = f.readlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) != self.port or cols[3] != "01":  # 01: ESTABLISHED
                    continue
                if cols[9] in inodes:
                    accepted += 1
                elif cols[9] == "0":
                    waiting += 1
        return accepted, waiting

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

    def log_since(self, mark):
        return self.log_lines()[mark:]

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


def served(b, label, ledger, probes):
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
    for t, part in probes:
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


def api_versions(corr):
    """An ApiVersions v0 request (it has no body) with correlation id `corr`."""
    client = b"flood"
    body = struct.pack(">hhih", 18, 0, corr, len(client)) + client
    return struct.pack(">i", len(body)) + body


class Flood:
    """Raw connections to corral, each sending an ApiVersions request as soon as it connects.
    Tracks each one: "waiting" (no answer yet), "answered" (a whole response carrying its
    correlation id), or "closed: ..." (corral closed or reset it, or answered wrongly)."""

    def __init__(self, b):
        host, port = b.rsplit(":", 1)
        self.addr = (host, int(port))
        self.socks, self.bufs, self.state, self.open = [], [], [], []
        self.sel = selectors.DefaultSelector()
        self.refused = []

    def connect(self):
        try:
            s = socket.create_connection(self.addr, timeout=3)
            i = len(self.socks)
            s.sendall(api_versions(i))
        except OSError as e:  # refused, or the backlog is full too (connect times out)
            self.refused.append(repr(e))
            return False
        s.setblocking(False)
        self.socks.append(s)
        self.bufs.append(b"")
        self.state.append("waiting")
        self.open.append(True)
        self.sel.register(s, selectors.EVENT_READ, i)
        return True

    def _settle(self, i, state):
        self.state[i] = state
        self.sel.unregister(self.socks[i])

    def poll(self, wait_s):
        """Reads answers for `wait_s` seconds; returns how many came."""
        deadline, came = time.time() + wait_s, 0
        while (left := deadline - time.time()) > 0:
            if not self.sel.get_map():
                time.sleep(left)
                break
            for key, _ in self.sel.select(min(left, 0.1)):
                i = key.data
                try:
                    data = self.socks[i].recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    self._settle(i, f"closed: {e!r}")
                    continue
                if not data:
                    self._settle(i, "closed: EOF")
                    continue
                self.bufs[i] += data
                buf = self.bufs[i]
                if len(buf) >= 8 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                    corr = struct.unpack(">i", buf[4:8])[0]
                    self._settle(i, "answered" if corr == i else f"closed: answered correlation id {corr}, not {i}")
                    came += 1
        return came

    def settle(self, quiet_s=0.7, max_s=10):
        """Reads answers until none came for `quiet_s` (or `max_s` passed)."""
        deadline = time.time() + max_s
        while time.time() < deadline and self.poll(quiet_s):
            pass

    def count(self, state):
        return sum(1 for s in self.state if s == state)

    def closed(self):
        return [(i, s) for i, s in enumerate(self.state) if s.startswith("closed")]

    def close(self, which):
        for i in which:
            if self.open[i]:
                if self.state[i] == "waiting":
                    self.sel.unregister(self.socks[i])
                self.socks[i].close()
                self.open[i] = False

    def close_all(self):
        self.close(range(len(self.socks)))
        self.sel.close()


def partition_dir(data, value):
    """The directory of the partition whose log holds `value`."""
    root = os.path.join(data, "partitions")
    for d in os.listdir(root):
        for f in os.listdir(os.path.join(root, d)):
            if f.endswith(".log"):
                with open(os.path.join(root, d, f), "rb") as fh:
                    if value in fh.read():
                        return os.path.join(root, d)
    return None


def raise_own_limit():
    """This script holds a socket per flooding connection: room for them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8 * NOFILE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * NOFILE), hard))


def accept_lines(lines):
    """corral's lines about its accept loop: failures, and recoveries."""
    return [l.split("Z ", 1)[-1].strip() for l in lines
            if any(w in l for w in ("accept failed", "accept still failing", "accepting connections again"))]


def log_time(line):
    """A corral log line's timestamp (UTC), as seconds since the epoch."""
    whole, _, frac = line.split(" ", 1)[0].rstrip("Z").partition(".")
    t = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
    return t + (float("0." + frac) if frac.isdigit() else 0.0)


def check_accept_log(lines, seconds, label):
    """Failing accepts (retried every 50 ms, some 20 a second) are logged once when they start,
    then at most every 10 s with a count, and once when an accept works again: split the lines
    into such episodes; each has one 'accept failed' line and no more 'still failing' lines
    than its length allows; and all of it is a few lines, not dozens."""
    lines = accept_lines(lines)
    episodes, bad = [], []
    for l in lines:
        if "accept failed" in l:
            if episodes and episodes[-1]["open"]:
                bad.append(f"'accept failed' again with no 'accepting connections again' between: {l}")
            episodes.append({"open": True, "still": 0})
        elif "accept still failing" in l:
            if not episodes or not episodes[-1]["open"]:
                bad.append(f"'still failing' outside an episode: {l}")
            else:
                episodes[-1]["still"] += 1
        elif episodes:
            episodes[-1]["open"] = False
    too_many_still = [e for e in episodes if e["still"] > seconds // 10]
    check(f"{label}: the accept failure is logged once, not once per retry ({len(lines)} lines in {seconds:.0f} s "
          f"of failing accepts: {len(episodes)} time(s) failing, each logged once)",
          bool(episodes) and "accept failed: Too many open files" in lines[0] and not bad and not too_many_still
          and len(lines) <= 10, "\n".join(bad[:3] + lines[:12]))


def cpu_over_window(server, label):
    cpu0 = server.cpu_s()
    time.sleep(SPIN_WINDOW_S)
    cpu = server.cpu_s() - cpu0
    check(f"{label}: corral does not spin (CPU {cpu:.2f} s over {SPIN_WINDOW_S:.0f} s, at most {SPIN_MAX_CPU_S})",
          cpu <= SPIN_MAX_CPU_S, f"{cpu:.2f} s of CPU")


def early_clients(b, ledger, probes, label):
    """A producer connected before a flood (its warm-up written to the first probe, whose file
    is then open) and a committer connected to its coordinator."""
    early = Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "retries": 0, "message.timeout.ms": 10000})
    warm = []
    early.produce(topic(probes[0][0]), value=f"{label}/warm-up".encode(), partition=probes[0][1],
                  on_delivery=lambda e, m: (warm.append(e), ledger.on_delivery(e, m)))
    early.flush(10)
    check(f"{label}: a client connected beforehand is answered", warm == [None], f"{warm}")
    committer = Committer(b)
    got = committer.c.committed([TopicPartition(topic(0), 0)], timeout=10)[0].offset
    return early, committer, got


def probe_during(server, early, ledger, probes, label):
    """Produce over the early connection to each probe; returns their delivery errors (None:
    acknowledged). Checks first that the cold probe's files are closed in corral."""
    t, part = probes[1]
    cold = partition_dir(server.data, f"{topic(t)}/{part}/round1".encode())
    open_now = [x for x in server.fd_targets() if cold and x.startswith(cold + "/")]
    check(f"{label}: {topic(t)}/{part}'s files are closed (none among corral's descriptors) before the probe",
          cold is not None and not open_now, f"dir {cold}, open: {open_now}")
    during = {}
    for t, part in probes:
        early.produce(topic(t), value=f"{label}/during/{t}/{part}".encode(), partition=part,
                      on_delivery=lambda e, m, k=(t, part): (during.__setitem__(k, e), ledger.on_delivery(e, m)))
    early.flush(15)
    return [during.get(k, "no delivery report") for k in probes]


def finish_commits(b, committer, expected_commit, during_offset, label, closed_at):
    """Lets the commit made during a flood finish (the client may retry it), then commits once
    more until acknowledged (a shard whose append failed reloads in the background, its
    retries backing off up to 5 s); checks that it is, and that the coordinator answers the
    last acknowledged commit."""
    e = committer.wait(during_offset, 20)
    note(f"{label}: the commit made during the flood finally: {outcome(e)}")
    if e is None:
        expected_commit = during_offset
    deadline = time.time() + 20
    while True:
        e = committer.commit(during_offset + 1, 10)
        if e is None or time.time() > deadline:
            break
        committer.results.pop(during_offset + 1, None)
        time.sleep(0.2)
    took = time.time() - closed_at
    check(f"{label}: the committer's next commit is acknowledged ({took:.1f} s after the flood closed)", e is None, outcome(e))
    if e is None:
        expected_commit = during_offset + 1
    committer.c.close()
    check_commit(b, expected_commit, label)
    return expected_commit


def flood_capped(server, b, ledger, expected_commit):
    """The default (derived) cap, flooded with more connections than corral has descriptors:
    64 are served, the rest wait in the backlog until others close; the data dir keeps its
    descriptors, so connections accepted before get produce and commits acknowledged."""
    label = "capped flood"
    early, committer, got = early_clients(b, ledger, PROBES_CAPPED, label)
    check(f"{label}: a committer connected beforehand reads its committed offset ({expected_commit})",
          got == expected_commit, f"{got}")
    raise_own_limit()
    mark, fds_before = len(server.log_lines()), server.fds()
    flood = Flood(b)
    try:
        for _ in range(FLOOD):
            flood.connect()
        flood.settle()
        accepted, waiting = server.connections()
        fds, answered = server.fds(), flood.count("answered")
        note(f"{label}: {len(flood.socks)} of {FLOOD} connected ({len(flood.refused)} failed: {flood.refused[:2]}); "
             f"corral holds {accepted} connections and {fds} descriptors (was {fds_before}), {waiting} wait in the "
             f"backlog; {answered} flood connections answered, {flood.count('waiting')} not, {len(flood.closed())} closed")
        check(f"{label}: all {FLOOD} connections connect (none refused or timed out)",
              len(flood.socks) == FLOOD and not flood.refused, f"{flood.refused[:3]}")
        check(f"{label}: corral serves exactly {DERIVED_CAP} connections at once", accepted == DERIVED_CAP,
              f"{accepted} accepted")
        check(f"{label}: the other connections wait in the backlog, open and unanswered "
              f"({flood.count('waiting')} unanswered, {waiting} in the backlog)",
              answered > 0 and flood.count("waiting") > 0 and waiting >= flood.count("waiting") and not flood.closed(),
              f"{answered} answered, closed by corral: {flood.closed()[:3]}")
        failed_accepts = accept_lines(server.log_since(mark))
        check(f"{label}: no accept fails ({fds} of {NOFILE} descriptors in use)", not failed_accepts and fds < NOFILE,
              f"{failed_accepts[:2]}")
        cpu_over_window(server, label)
        check(f"{label}: corral is still running", server.alive(), server.log_tail())

        # connections accepted before the flood: the data dir still has its descriptors, so a
        # partition whose file the cache closed can be reopened, and the coordinator's too
        during = probe_during(server, early, ledger, PROBES_CAPPED, label)
        e = committer.commit(2, 5)
        note(f"{label}: over connections opened before: produce {[outcome(x) for x in during]}, commit {outcome(e)}")
        for (t, part), what, x in zip(PROBES_CAPPED, ("its file open", "its file closed by the cache"), during):
            check(f"{label}: a connection accepted before gets its produce to {topic(t)}/{part} ({what}) acknowledged",
                  x is None, outcome(x))
        check(f"{label}: a connection accepted before gets its commit acknowledged", e is None, outcome(e))

        # the waiting connections are served as others close: close the answered ones, the
        # next ones are accepted, and so on until every one was answered
        most, rounds = accepted, 0
        while flood.count("waiting") and rounds < 3 * FLOOD // DERIVED_CAP:
            rounds += 1
            flood.close([i for i, st in enumerate(flood.state) if st == "answered"])
            flood.settle()
            most = max(most, server.connections()[0])
            if not any(st == "answered" and flood.open[i] for i, st in enumerate(flood.state)):
                break  # nothing answered this round: no progress
        note(f"{label}: closing answered connections in {rounds} rounds: {flood.count('answered')} answered, "
             f"{flood.count('waiting')} still waiting, {len(flood.closed())} closed by corral; at most {most} at once")
        check(f"{label}: as others close, every waiting connection is accepted and answered",
              flood.count("answered") == FLOOD, f"{flood.count('waiting')} never answered, closed: {flood.closed()[:3]}")
        check(f"{label}: never more than {DERIVED_CAP} connections at once", most <= DERIVED_CAP, f"{most}")
    finally:
        flood.close_all()
    deadline = time.time() + 15
    while time.time() < deadline and server.fds() > fds_before + 5:
        time.sleep(0.1)
    note(f"{label}: flood closed; corral holds {server.fds()} descriptors")
    check(f"after the {label}: corral is still running", server.alive(), server.log_tail())
    closed_at = time.time()
    served(b, f"after the {label}, a new client", ledger, PROBES_CAPPED)
    expected_commit = finish_commits(b, committer, expected_commit, 2, f"after the {label}", closed_at)
    early.flush(5)
    return expected_commit


def flood_uncapped(server, b, ledger, expected_commit):
    """`max.connections` lifted: connections take every descriptor, accept fails with EMFILE;
    corral logs it once, does not spin, stays up, and serves again once they close."""
    label = "uncapped flood"
    early, committer, got = early_clients(b, ledger, PROBES_UNCAPPED, label)
    check(f"{label}: a committer connected beforehand reads its committed offset ({expected_commit})",
          got == expected_commit, f"{got}")
    raise_own_limit()
    mark, fds_before = len(server.log_lines()), server.fds()
    flood = Flood(b)
    try:
        # connect until corral's descriptor table is full, then some more, which wait in the
        # listen backlog
        while len(flood.socks) < FLOOD and server.fds() < NOFILE and flood.connect():
            if server.fds() < NOFILE:
                time.sleep(0.002)
        full_at = len(flood.socks)
        for _ in range(BACKLOGGED):
            flood.connect()
        first = time.time()
        while time.time() < first + 10 and not accept_lines(server.log_since(mark)):
            time.sleep(0.1)
        fds = server.fds()
        accepted, waiting = server.connections()
        logged = accept_lines(server.log_since(mark))
        note(f"{label}: corral holds {fds} descriptors (was {fds_before}) and {accepted} connections after "
             f"{full_at} flood connections; {len(flood.socks) - full_at} more connected, {waiting} wait in the backlog; "
             f"first accept failure logged: {logged[0] if logged else 'none'}")
        check(f"{label}: corral's accept fails with EMFILE and says so ({fds} of {NOFILE} descriptors in use)",
              fds >= NOFILE - 2 and any(l.startswith("WARN") and "accept failed: Too many open files" in l for l in logged),
              f"no 'accept failed: Too many open files' logged; log tail:\n{server.log_tail()}")
        check(f"{label}: the connections past the table wait in the backlog (none refused)",
              not flood.refused and waiting >= BACKLOGGED, f"{waiting} in the backlog, failed: {flood.refused[:3]}")
        cpu_over_window(server, label)
        check(f"{label}: corral is still running", server.alive(), server.log_tail())

        # over connections accepted before: the open partition takes the write; the cold one
        # needs a descriptor that may not be there: KAFKA_STORAGE_ERROR, and the write changed
        # nothing (checked when everything is read back)
        during = probe_during(server, early, ledger, PROBES_UNCAPPED, label)
        e = committer.commit(12, 5)
        note(f"{label}: over connections opened before: produce {[outcome(x) for x in during]}, commit {outcome(e)}")
        check(f"{label}: a connection accepted before gets its produce to {topic(PROBES_UNCAPPED[0][0])}/"
              f"{PROBES_UNCAPPED[0][1]} (its file open) acknowledged", during[0] is None, outcome(during[0]))
        t, part = PROBES_UNCAPPED[1]
        check(f"{label}: its produce to {topic(t)}/{part} (its file closed by the cache) is acknowledged or refused "
              f"with KAFKA_STORAGE_ERROR", during[1] is None or isinstance(during[1], KafkaError)
              and during[1].code() == KafkaError.KAFKA_STORAGE_ERROR, outcome(during[1]))
        coordinator_errors = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                              KafkaError.COORDINATOR_NOT_AVAILABLE}
        check(f"{label}: its commit is acknowledged, refused with a coordinator error or still retried",
              e is None or e == "pending" or isinstance(e, KafkaError) and e.code() in coordinator_errors, outcome(e))
        check_accept_log(server.log_since(mark), time.time() - first, label)
        check(f"{label}: corral is still running after the probes", server.alive(), server.log_tail())
    finally:
        flood.close_all()
    deadline = time.time() + 15
    while time.time() < deadline and server.fds() > fds_before + 5:
        time.sleep(0.1)
    closed_at = time.time()
    note(f"{label}: flood closed; corral holds {server.fds()} descriptors")
    check(f"after the {label}: corral is still running", server.alive(), server.log_tail())
    served(b, f"after the {label}, a new client", ledger, PROBES_UNCAPPED)
    # recovery is logged by the first accept that works: the backlog may have emptied (the flood's
    # sockets reset) while accepts still failed, so it is the new client's connection that shows it
    lines = accept_lines(server.log_since(mark))
    failed = [l for l in lines if "accept failed" in l]
    again = [l for l in lines if "accepting connections again" in l]
    check(f"after the {label}: corral logs 'accepting connections again' (last, once per time accept failed)",
          bool(lines) and "accepting connections again" in lines[-1] and len(again) == len(failed), "\n".join(lines[-6:]))
    expected_commit = finish_commits(b, committer, expected_commit, 12, f"after the {label}", closed_at)
    # a shard whose append failed retries its reload while descriptors are out, backing off to
    # at most 5 s: once the flood closed, it is back within that
    shard = [l.strip() for l in server.log_since(mark)
             if "the shard reloads" in l or "reloading the shard failed" in l or "shard reloaded" in l]
    note(f"{label}: the coordinator logged {len(shard)} lines about shard reloads: "
         + " | ".join(l.split("Z ", 1)[-1][:150] for l in (shard[:2] + shard[-2:] if len(shard) > 4 else shard)))
    retried = [l for l in shard if "reloading the shard failed" in l]
    if retried:
        last_failed = log_time(retried[-1])
        back = [log_time(l) for l in shard if "shard reloaded" in l and log_time(l) > last_failed]
        check(f"after the {label}: the shard whose reload kept failing is reloaded within 5 s of the flood closing"
              + (f" ({len(retried)} failed attempts; reloaded {back[0] - closed_at:+.1f} s from the close)" if back else ""),
              bool(back) and back[0] - closed_at <= 5.5, "\n".join(shard[-3:]))
    else:
        note(f"{label}: no shard reload failed (the reload found a descriptor): nothing to time")
    early.flush(5)
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
    about = [l.strip() for l in lines if any(w in l for w in ("open file limit", "descriptors", "Too many open files", "accept"))]
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


def check_start(server, cap, label):
    limits = server.nofile()
    check(f"{label}: corral runs with its open-file limit at {NOFILE} (soft, hard)", limits == [str(NOFILE)] * 2, f"{limits}")
    want = f"open file limit: {NOFILE}; serving at most {cap} connections at once"
    check(f"{label}: corral logs '{want}'", any(want in l for l in server.log_since(server.started_at)),
          "".join(server.log_since(server.started_at)[:5]))


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
        note(f"corral on {b} with RLIMIT_NOFILE {server.nofile()}, data dir {server.data}")
        check_start(server, DERIVED_CAP, "first start")

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

        # -- the default cap
        expected_commit = flood_capped(server, b, ledger, -1001)
        rc = server.stop()
        check("SIGTERM stops corral cleanly (exit 0)", rc == 0, f"exit {rc}; log tail:\n{server.log_tail()}")

        # -- the cap lifted: connections can take every descriptor
        config = os.path.join(work, "uncapped.toml")
        with open(config, "w") as f:
            f.write(f"max.connections = {UNCAPPED}\n")
        server.start(config)
        check_start(server, UNCAPPED, f"started with max.connections = {UNCAPPED}")
        check_everything(b, ledger, "restarted uncapped")
        check_commit(b, expected_commit, "restarted uncapped")
        expected_commit = flood_uncapped(server, b, ledger, expected_commit)
        check_everything(b, ledger, "after the uncapped flood")
        rc = server.stop()
        check("SIGTERM stops corral cleanly again (exit 0)", rc == 0, f"exit {rc}; log tail:\n{server.log_tail()}")

        # -- the default cap again, on the same data dir
        t0 = time.time()
        server.start()
        note(f"restart took {time.time() - t0:.1f} s to listen; corral holds {server.fds()} descriptors")
        check_start(server, DERIVED_CAP, "restarted with the default cap")
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
