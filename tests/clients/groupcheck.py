"""Consumer-group scenarios shared by the Python client families and the mixed family.

Not a family (no check script): families import it with
``sys.path.insert(0, <tests/clients>)``.

Every group member runs in its own process (so one can be SIGKILLed) and speaks one
line protocol on stdout, one JSON object a line:

    {"ev": "assigned", "parts": [0, 1]}      the member's whole assignment after a rebalance
    {"ev": "revoked",  "parts": [0, 1]}      partitions taken away (eager: all of them)
    {"ev": "msgs", "recs": [[p, o, k, v]]}   a batch it consumed, printed after committing it
    {"ev": "error", "err": "..."}            anything that went wrong (commit failed, ...)
    {"ev": "closed"}                         it left the group cleanly (after SIGTERM)

"assigned" may carry "leader": true/false (kafkajs members know whether they lead).

Members are started as ``argv + [bootstrap, topic, group, assignor]`` with
session.timeout 6000 ms, heartbeat 1000 ms, auto commit off, auto offset reset
earliest; SIGTERM makes them close (LeaveGroup) and exit.

Messages are produced in phases, each while the group is stable, and every phase is
consumed (and committed) completely before membership changes. So a message seen twice
means a handover did not start from the committed offset, and one never seen means a
partition was left unowned: "every message consumed exactly once" is exact.

It also holds what the Python families share about the suite's mode (see ../run.sh):
PROXY (CORRAL_MODE=proxy: the bootstrap is a corral proxy in front of librdkafka's mock
cluster), EXPECT_BROKERS, mock_create() (topics are made through mock_upstream.py's control
port, the mock having no CreateTopics) and UPSTREAM_LACKS (the reason of a SKIP line).
"""

import atexit
import collections
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SESSION_TIMEOUT_S = 6.0

# --- the suite's mode ------------------------------------------------------------------

PROXY = os.environ.get("CORRAL_MODE", "broker") == "proxy"
EXPECT_BROKERS = int(os.environ.get("CORRAL_EXPECT_BROKERS", "1"))
CORRAL_NODE_ID = 1000000000  # corral's own node in proxy mode (the group coordinator)


def UPSTREAM_LACKS(what):
    """The reason of a SKIP line: the check needs an API the upstream does not serve."""
    return "the upstream, librdkafka's mock cluster, has no %s" % what


def mock_create(topic, partitions):
    """Create a topic on the proxy's upstream through mock_upstream.py's control port
    (CORRAL_MOCK_CONTROL). Raises unless the mock answers ok."""
    host, port = os.environ["CORRAL_MOCK_CONTROL"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(("create %s %d\n" % (topic, partitions)).encode())
        reply = s.makefile().readline().strip()
    if reply != "ok":
        raise RuntimeError("mock control: create %s %d: %s" % (topic, partitions, reply or "no reply"))

_live = []


def _reap():
    for m in _live:
        if m.proc.poll() is None:
            m.proc.kill()


atexit.register(_reap)


class Member:
    """One group member process and what it reported."""

    def __init__(self, name, argv, bootstrap, topic, group, assignor, logdir):
        self.name = name
        self.lock = threading.Lock()
        self.assigned = set()
        self.history = []  # (monotonic time, event, parts)
        self.records = []  # (partition, offset, key, value)
        self.errors = []
        self.closed = False
        self.leader = None  # only kafkajs members say whether they lead
        self.log = os.path.join(logdir, "%s.err" % name)
        self.proc = subprocess.Popen(argv + [bootstrap, topic, group, assignor],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=open(self.log, "w"), text=True, bufsize=1)
        _live.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            now = time.monotonic()
            with self.lock:
                ev = e.get("ev")
                if ev == "assigned":
                    self.assigned = set(e["parts"])
                    if "leader" in e:
                        self.leader = e["leader"]
                    self.history.append((now, ev, sorted(self.assigned)))
                elif ev == "revoked":
                    self.assigned -= set(e.get("parts", self.assigned))
                    self.history.append((now, ev, sorted(e.get("parts", []))))
                elif ev == "msgs":
                    self.records.extend(tuple(r) for r in e["recs"])
                elif ev == "error":
                    self.errors.append(e.get("err"))
                elif ev == "closed":
                    self.closed = True

    def parts(self):
        with self.lock:
            return set(self.assigned)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, n=5):
        try:
            with open(self.log) as f:
                lines = f.read().splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def describe(self):
        with self.lock:
            return "%s owns %s, %d records, errors %s, history %s" % (
                self.name, sorted(self.assigned), len(self.records), self.errors[:3],
                [(h[1], h[2]) for h in self.history[-4:]])


def wait_for(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def balanced(members, nparts, each):
    """The members' assignments are disjoint, cover 0..nparts-1, and each has `each`."""
    sets = [m.parts() for m in members]
    union = set()
    for s in sets:
        if len(s) != each or union & s:
            return False
        union |= s
    return union == set(range(nparts))


class GroupRun:
    """One group of member processes on one topic."""

    def __init__(self, bootstrap, topic, group, assignor, produce, nparts=6):
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.assignor = assignor
        self.produce = produce  # produce(topic, [(partition, key, value)]) -> None, raises on failure
        self.nparts = nparts
        self.members = []
        self.expected = []  # values produced so far
        self.logdir = tempfile.mkdtemp(prefix="groupcheck-")
        self.phase = 0

    def start(self, name, argv):
        m = Member(name, argv, self.bootstrap, self.topic, self.group, self.assignor, self.logdir)
        self.members.append(m)
        return m

    def live(self):
        return [m for m in self.members if m.alive() and not m.closed]

    def wait_balanced(self, members, each, timeout):
        return wait_for(lambda: balanced(members, self.nparts, each), timeout)

    def state(self):
        return "; ".join(m.describe() for m in self.members)

    def produce_phase(self, per_partition=50):
        self.phase += 1
        batch = []
        for i in range(per_partition * self.nparts):
            v = "%s-p%d-%d" % (self.group, self.phase, i)
            batch.append((i % self.nparts, "k%d" % (i % 17), v))
        self.produce(self.topic, batch)
        self.expected.extend(v for _, _, v in batch)

    def counts(self):
        c = collections.Counter()
        for m in self.members:
            with m.lock:
                c.update(r[3] for r in m.records)
        return c

    def wait_consumed(self, timeout):
        """Wait until every produced value has been seen; then a short grace period for
        late duplicates. Returns None when each was seen exactly once, else a reason."""
        want = set(self.expected)
        wait_for(lambda: want <= set(self.counts()), timeout)
        time.sleep(0.5)
        c = self.counts()
        missing = [v for v in self.expected if c[v] == 0]
        dup = {v: n for v, n in c.items() if n > 1}
        extra = [v for v in c if v not in want]
        if missing or dup or extra:
            return "%d produced, %d missing (e.g. %s), %d seen more than once (e.g. %s), %d unexpected" % (
                len(want), len(missing), missing[:3], len(dup), list(dup.items())[:3], len(extra))
        return None

    def owners_ok(self):
        """Each record was consumed by a member that, at some point, owned its partition."""
        bad = []
        for m in self.members:
            with m.lock:
                owned = set()
                for h in m.history:
                    if h[1] == "assigned":
                        owned |= set(h[2])
                for r in m.records:
                    if r[0] not in owned:
                        bad.append((m.name, r[0]))
        return bad

    def finish(self, failed):
        """Stop every member; keep their logs only when a check failed."""
        self.stop_all()
        if not failed:
            shutil.rmtree(self.logdir, ignore_errors=True)

    def stop_all(self):
        for m in self.members:
            m.stop()
        for m in self.members:
            try:
                m.proc.wait(15)
            except subprocess.TimeoutExpired:
                m.kill()
                m.proc.wait()


def scenario_leave(ok, bad, run, argvs, names=None, leaver=0, on_stable=None, label="", first_alone=False,
                   expect=None):
    """group-balance then group-leave: three members, 2 partitions each, a phase consumed
    exactly once; member `leaver` closes; the other two take 3 each well before the session
    timeout; a second phase is consumed exactly once overall. With first_alone, member 0
    forms the group alone first (so it is the leader: Kafka keeps the leader while it stays).
    expect: ({name: partitions} when balanced, {name: partitions} after the leave), checked
    exactly when given."""
    sfx = label
    failed = []

    def bad_(check, why):
        failed.append(check)
        bad(check, "%s [member logs: %s]" % (why, run.logdir))

    names = names or ["m%d" % i for i in range(len(argvs))]
    t0 = time.monotonic()
    todo = list(zip(names, argvs))
    if first_alone:
        first = run.start(*todo.pop(0))
        if not wait_for(lambda: first.parts() == set(range(run.nparts)), 30):
            bad_("group-balance" + sfx, "the first member alone did not get all %d partitions within 30 s: %s"
                 % (run.nparts, run.state()))
            bad_("group-leave" + sfx, "not attempted: the group never formed")
            run.finish(failed)
            return False
    for n, a in todo:
        run.start(n, a)
    if not run.wait_balanced(run.members, 2, 45):
        bad_("group-balance" + sfx, "no balanced assignment of %d partitions over %d members within 45 s: %s"
             % (run.nparts, len(argvs), run.state()))
        bad_("group-leave" + sfx, "not attempted: the group never balanced")
        run.finish(failed)
        return False
    t_bal = time.monotonic() - t0
    if on_stable:
        on_stable(run)
    try:
        run.produce_phase()
    except Exception as e:  # noqa: BLE001
        bad_("group-balance" + sfx, "produce failed: %r" % e)
        run.finish(failed)
        return False
    why = run.wait_consumed(30)
    wrong_owner = run.owners_ok()
    got = {m.name: sorted(m.parts()) for m in run.members}
    if expect and got != expect[0]:
        why = (why + "; " if why else "") + "assignment %s, expected %s" % (got, expect[0])
    if why is None and not wrong_owner:
        told = ["%s %s" % (m.name, "leads" if m.leader else "does not lead") for m in run.members if m.leader is not None]
        ok("group-balance" + sfx, "%s; 3 x 2 partitions %s after %.1f s; %d messages each consumed once%s"
           % (run.assignor, [sorted(m.parts()) for m in run.members], t_bal, len(run.expected),
              "; " + ", ".join(told) if told else ""))
    else:
        bad_("group-balance" + sfx, "%s%s; %s" % (why or "", " consumed from unowned partitions %s" % wrong_owner[:3]
                                                  if wrong_owner else "", run.state()))
    # clean leave
    leaving = run.members[leaver]
    rest = [m for m in run.members if m is not leaving]
    t1 = time.monotonic()
    leaving.stop()
    handed = run.wait_balanced(rest, 3, 30)
    t_leave = time.monotonic() - t1
    wait_for(lambda: not leaving.alive(), 10)
    if not handed:
        bad_("group-leave" + sfx, "after %s closed, the other two did not take 3 partitions each within 30 s: %s"
             % (leaving.name, run.state()))
        run.finish(failed)
        return False
    try:
        run.produce_phase()
    except Exception as e:  # noqa: BLE001
        bad_("group-leave" + sfx, "produce failed: %r" % e)
        run.finish(failed)
        return False
    why = run.wait_consumed(30)
    problems = []
    if not leaving.closed:
        problems.append("%s did not report a clean close (exit %s): %s" % (
            leaving.name, leaving.proc.poll(), leaving.stderr_tail()))
    after = {m.name: sorted(m.parts()) for m in rest}
    if expect and after != expect[1]:
        problems.append("assignment after the leave %s, expected %s" % (after, expect[1]))
    if t_leave >= SESSION_TIMEOUT_S:
        problems.append("handover took %.1f s, not less than the session timeout: the leave was not acted on"
                        % t_leave)
    if why:
        problems.append(why)
    if problems:
        bad_("group-leave" + sfx, "; ".join(problems) + "; " + run.state())
    else:
        ok("group-leave" + sfx, "%s left; its partitions handed over in %.1f s, now %s; %d messages each consumed once"
           % (leaving.name, t_leave, {m.name: sorted(m.parts()) for m in rest}, len(run.expected)))
    run.finish(failed)
    return True


def scenario_kill(ok, bad, run, argvs, names=None, victim=0, label=""):
    """group-kill: three members balanced and a phase consumed; SIGKILL one; after the
    session timeout the other two take 3 each; a second phase consumed exactly once."""
    sfx = label
    failed = []

    def bad_(check, why):
        failed.append(check)
        bad(check, "%s [member logs: %s]" % (why, run.logdir))

    names = names or ["k%d" % i for i in range(len(argvs))]
    for n, a in zip(names, argvs):
        run.start(n, a)
    if not run.wait_balanced(run.members, 2, 45):
        bad_("group-kill" + sfx, "not attempted: no balanced assignment within 45 s: %s" % run.state())
        run.finish(failed)
        return False
    problems = []
    try:
        run.produce_phase()
    except Exception as e:  # noqa: BLE001
        bad_("group-kill" + sfx, "produce failed: %r" % e)
        run.finish(failed)
        return False
    why = run.wait_consumed(30)
    if why:
        problems.append("before the kill: " + why)
    victim_m = run.members[victim]
    rest = [m for m in run.members if m is not victim_m]
    t1 = time.monotonic()
    victim_m.kill()
    handed = run.wait_balanced(rest, 3, SESSION_TIMEOUT_S + 30)
    t_kill = time.monotonic() - t1
    if not handed:
        bad_("group-kill" + sfx, "after SIGKILL of %s the other two did not take 3 partitions each within %d s: %s"
             % (victim_m.name, SESSION_TIMEOUT_S + 30, run.state()))
        run.finish(failed)
        return False
    try:
        run.produce_phase()
        why = run.wait_consumed(30)
        if why:
            problems.append(why)
    except Exception as e:  # noqa: BLE001
        problems.append("produce failed: %r" % e)
    if t_kill < SESSION_TIMEOUT_S - 1.5:
        # Kafka keeps a silent member until its session expires; far earlier means the
        # coordinator dropped it on connection close, which Kafka does not do.
        problems.append("reassigned after %.1f s, before the %.0f s session timeout" % (t_kill, SESSION_TIMEOUT_S))
    if problems:
        bad_("group-kill" + sfx, "; ".join(problems) + "; " + run.state())
    else:
        ok("group-kill" + sfx, "%s; %s killed; reassigned after %.1f s (session timeout %.0f s); %d messages each consumed once"
           % (run.assignor, victim_m.name, t_kill, SESSION_TIMEOUT_S, len(run.expected)))
    run.finish(failed)
    return True


# --- helpers for member scripts -------------------------------------------------------

def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def member_args():
    """bootstrap, topic, group, assignor of a member process."""
    return sys.argv[-4], sys.argv[-3], sys.argv[-2], sys.argv[-1]


def stop_flag():
    """A list that becomes truthy on SIGTERM; also sets a 10-minute lifetime cap."""
    flag = []
    signal.signal(signal.SIGTERM, lambda *_: flag.append(1))
    signal.signal(signal.SIGALRM, lambda *_: flag.append(1))
    signal.alarm(600)
    return flag


# ---------------------------------------------------------------- transactions (client-independent)


def txn_records(tag, per_partition, parts=3):
    """[(partition, key, value)]: per_partition records for each partition, in produce order."""
    return [(q, "%s-k%d-%d" % (tag, q, i), "%s-v%d-%d" % (tag, q, i)) for q in range(parts) for i in range(per_partition)]


def txn_layout(txns, parts=3):
    """The log a run of transactions leaves in a fresh topic: txns is [(records, committed)]
    in the order they ended. Returns (what read_committed must read, what read_uncommitted
    must read, each partition's end offset), the reads as sorted [(partition, offset, key, value)]."""
    nxt = dict.fromkeys(range(parts), 0)
    rc, ru = [], []
    for recs, committed in txns:
        for q, k, v in recs:
            r = (q, nxt[q], k, v)
            nxt[q] += 1
            ru.append(r)
            if committed:
                rc.append(r)
        for q in {r[0] for r in recs}:
            nxt[q] += 1  # the marker
    return sorted(rc), sorted(ru), nxt


def txn_diff(got, want):
    """None when the two sorted record lists are equal, else how they differ."""
    if got == want:
        return None
    g, w = set(got), set(want)
    return "%d records, expected %d; missing %s; unexpected %s%s" % (
        len(got), len(want), sorted(w - g)[:3], sorted(g - w)[:3], "; some twice" if len(g) != len(got) else "")
