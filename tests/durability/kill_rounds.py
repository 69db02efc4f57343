"""Real clients across real crashes: confluent-kafka producers and committers keep working
while corral is SIGKILLed at random moments and restarted on the same data dir.

    python3 tests/durability/kill_rounds.py [path/to/corral] [rounds]

Checks, printed as PASS/FAIL lines:
  * every message the producer saw acknowledged (acks=all) is there afterwards, at its offset;
  * every commit the committer saw acknowledged is recovered after each restart, and
    committed offsets never go backwards;
  * a transactional producer runs small transactions across the partitions of another topic,
    committing most and aborting some; read_committed afterwards shows every transaction whose
    commit_transaction returned, whole; none whose commit was never asked for (aborted, or cut
    off by a kill before its commit); a transaction whose commit was under way at a kill either
    whole or not at all; no transaction in part; and no transaction left open.

KILL_ROUNDS_VERBOSE=1 prints each error the transactional producer meets, as it meets it.
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, IsolationLevel, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/corral"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
TOPIC, GROUP, PARTS = "crashy", "crash-committers", 3
TXN_TOPIC, TXN_ID, TXN_TIMEOUT_MS = "crashy-txn", "crash-txn", 3000
# corral aborts a transaction past its timeout at most this long after the timeout
CONFIG = '"transaction.abort.timed.out.transaction.cleanup.interval.ms" = 500\n'
failures = []


def check(name, ok, why=""):
    print(f"{'PASS' if ok else 'FAIL'} durability {name}{'' if ok else ': ' + why}", flush=True)
    if not ok:
        failures.append(name)


class Server:
    """corral on one data dir. The first start takes a port the kernel picks (--listen
    127.0.0.1:0) and corral names it on its first line, `corral ... listening on ADDR, ...`;
    every restart listens on that same address again, so clients reconnect to it."""

    def __init__(self, data, config):
        self.data, self.config, self.listen, self.proc = data, config, "127.0.0.1:0", None

    def start(self):
        self.proc = subprocess.Popen([BIN, "--data-dir", self.data, "--listen", self.listen, "--config", self.config],
                                     stdout=subprocess.PIPE, stderr=open(self.data + ".log", "a"))
        watchdog = threading.Timer(30, self.proc.kill)  # no start line in 30 s: killed, and the assert fails
        watchdog.start()
        line = self.proc.stdout.readline().decode()
        watchdog.cancel()
        assert " listening on " in line, line
        self.listen = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        # keep reading stdout, so that corral never writes into a closed pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return self.listen

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def main():
    work = tempfile.mkdtemp()
    data = os.path.join(work, "data")
    config = os.path.join(work, "corral.toml")
    with open(config, "w") as f:
        f.write(CONFIG)
    server = Server(data, config)
    b = server.start()
    admin = AdminClient({"bootstrap.servers": b})
    for fut in admin.create_topics([NewTopic(t, num_partitions=PARTS, replication_factor=1) for t in (TOPIC, TXN_TOPIC)]).values():
        fut.result(10)

    acked = {}  # (partition, offset) -> value
    lock = threading.Lock()
    stop = threading.Event()

    def producer_loop():
        p = Producer({"bootstrap.servers": b, "log_level": 0, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                      "message.timeout.ms": 60000, "retry.backoff.ms": 50, "reconnect.backoff.ms": 20})
        n = 0

        def on_delivery(err, msg):
            if err is None:
                with lock:
                    acked[(msg.partition(), msg.offset())] = msg.value()

        while not stop.is_set():
            try:
                p.produce(TOPIC, key=str(n % 11), value=f"v{n}".encode(), on_delivery=on_delivery)
                n += 1
            except BufferError:
                pass
            p.poll(0.001)
        p.flush(60)

    committed = {p: -1 for p in range(PARTS)}  # last acknowledged commit per partition
    commit_errors = []

    def committer_loop():
        c = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": GROUP, "enable.auto.commit": False,
                      "reconnect.backoff.ms": 20, "retry.backoff.ms": 50})
        n = 0
        while not stop.is_set():
            n += 1
            part = n % PARTS
            offset = committed[part] + 1
            try:
                c.commit(offsets=[TopicPartition(TOPIC, part, offset)], asynchronous=False)
                committed[part] = offset
            except KafkaException as e:
                commit_errors.append(str(e))
                time.sleep(0.02)
        c.close()

    # transactions: id -> [records (key, partition), state]; the state says how far the client got:
    #   "open"       begun, records produced, commit never asked for (cut off by an error/kill)
    #   "aborted"    abort asked for (returned or not): commit never asked for either
    #   "committing" commit_transaction called, did not return: either outcome, but whole
    #   "committed"  commit_transaction returned
    txns = {}
    txn_errors = []
    txn_hit = []  # transactions under way (not yet committed or aborted) when corral was killed
    rng = random.Random()

    def txn_loop():
        conf = {"bootstrap.servers": b, "log_level": 0, "transactional.id": TXN_ID,
                "transaction.timeout.ms": TXN_TIMEOUT_MS, "linger.ms": 2, "reconnect.backoff.ms": 20,
                "reconnect.backoff.max.ms": 500, "retry.backoff.ms": 50}

        def new_producer():
            while True:  # corral may be down: retry until it answers (or the rounds are over)
                p = Producer(conf)
                try:
                    p.init_transactions(10)
                    return p
                except KafkaException as e:
                    txn_errors.append(f"init_transactions: {e.args[0].name()}")
                    if stop.is_set():
                        return None
                    time.sleep(0.1)

        p = new_producer()
        n = 0
        while p is not None and not stop.is_set():
            n += 1
            recs = [(f"t{n}.{j}", (n + j) % PARTS) for j in range(rng.randint(2, 5))]
            txn = txns[n] = [recs, "open"]
            try:
                p.begin_transaction()
                for key, part in recs:
                    p.produce(TXN_TOPIC, key=key, value=f"{key}:{len(recs)}", partition=part)
                if n % 4 == 0:
                    p.flush(10)  # the records reach the log (else the abort just drops them unsent)
                    txn[1] = "aborted"
                    p.abort_transaction(10)
                else:
                    txn[1] = "committing"
                    deadline = time.time() + 20
                    while True:
                        try:
                            p.commit_transaction(10)
                            break
                        except KafkaException as e:
                            if not e.args[0].retriable() or time.time() > deadline:
                                raise
                            txn_errors.append(f"commit_transaction (retried): {e.args[0].name()}")
                    txn[1] = "committed"
            except KafkaException as e:
                err = e.args[0]
                kind = "fatal" if err.fatal() else "abortable" if err.txn_requires_abort() else \
                    "retriable" if err.retriable() else "other"
                txn_errors.append(f"{txn[1]}: {err.name()} ({kind})")
                if os.environ.get("KILL_ROUNDS_VERBOSE"):
                    print(f"# {time.strftime('%H:%M:%S')} t{n} {txn[1]}: {err.str()}", file=sys.stderr)
                if not err.fatal():
                    try:
                        p.abort_transaction(10)  # the outcome of a "committing" one stays unknown
                        continue
                    except KafkaException as e2:
                        txn_errors.append(f"abort_transaction: {e2.args[0].name()}")
                        if os.environ.get("KILL_ROUNDS_VERBOSE"):
                            print(f"# t{n} abort_transaction: {e2.args[0].str()}", file=sys.stderr)
                p = new_producer()  # fatal (fenced after a timeout, ...): a new instance fences the old

    threads = [threading.Thread(target=producer_loop), threading.Thread(target=committer_loop),
               threading.Thread(target=txn_loop)]
    for t in threads:
        t.start()
    regressions = []
    recovered_ok = True
    for r in range(ROUNDS):
        time.sleep(random.uniform(0.2, 1.5))
        before = dict(committed)
        if txns and txns[max(txns)][1] in ("open", "committing") and max(txns) not in txn_hit:
            txn_hit.append(max(txns))
        server.kill9()
        assert server.start() == b, "corral moved"
        # after the restart, the coordinator answers with what was acknowledged before the kill
        probe = Consumer({"bootstrap.servers": b, "log_level": 0, "group.id": GROUP})
        deadline = time.time() + 30
        while True:
            try:
                got = probe.committed([TopicPartition(TOPIC, p) for p in range(PARTS)], timeout=10)
                break
            except KafkaException:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        probe.close()
        for tp in got:
            if tp.offset < before[tp.partition]:
                regressions.append(f"round {r}: partition {tp.partition} committed {tp.offset} < acknowledged {before[tp.partition]}")
                recovered_ok = False
    stop.set()
    deadline = time.time() + 90
    for t in threads:
        t.join(max(0.1, deadline - time.time()))
    stuck = [t.name for t in threads if t.is_alive()]
    check("client-threads-stop", not stuck, f"still running 90 s after the rounds: {stuck}")
    check(f"commits-recovered-{ROUNDS}-kills", recovered_ok, "; ".join(regressions[:5]))

    final = Consumer({"bootstrap.servers": b, "group.id": GROUP})
    got = final.committed([TopicPartition(TOPIC, p) for p in range(PARTS)], timeout=20)
    final.close()
    exact = all(tp.offset == committed[tp.partition] for tp in got)
    check("final-commits-exact", exact, f"committed {[tp.offset for tp in got]} vs acknowledged {[committed[p] for p in range(PARTS)]}")

    reader = Consumer({"bootstrap.servers": b, "group.id": "crash-reader", "enable.auto.commit": False})
    reader.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTS)])
    seen = {}
    deadline = time.time() + 60
    with lock:
        want = dict(acked)
    while len([k for k in want if k in seen]) < len(want) and time.time() < deadline:
        for m in reader.consume(10000, 1.0):
            if m.error() is None:
                seen[(m.partition(), m.offset())] = m.value()
    reader.close()
    missing = [k for k in want if seen.get(k) != want[k]]
    check(f"acknowledged-messages-kept ({len(want)} acknowledged)", not missing and len(want) > 0,
          f"{len(missing)} missing or different, e.g. {missing[:5]}")
    print(f"# {ROUNDS} SIGKILLs; {sum(committed.values()) + PARTS} commits and {len(want)} messages acknowledged; "
          f"{len(commit_errors)} commit attempts failed during outages", file=sys.stderr)

    check_transactions(b, admin, txns, txn_errors)
    print(f"# {len(txn_hit)} transactions were under way at a kill; they came out "
          f"{[txns[n][1] for n in txn_hit]}", file=sys.stderr)
    server.kill9()
    sys.exit(1 if failures else 0)


def check_transactions(b, admin, txns, txn_errors):
    # by the transaction timeout (and corral's sweep) at the latest, nothing the producer left
    # open stays open: the last stable offset of every partition reaches its high watermark
    req = {TopicPartition(TXN_TOPIC, p): OffsetSpec.latest() for p in range(PARTS)}
    ends, why = {}, ""
    deadline = time.time() + TXN_TIMEOUT_MS / 1000 + 5
    while True:
        try:
            for iso in (IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED):
                got = admin.list_offsets(req, isolation_level=iso, request_timeout=10)
                ends[iso] = {tp.partition: f.result(15).offset for tp, f in got.items()}
            lso, hw = ends[IsolationLevel.READ_COMMITTED], ends[IsolationLevel.READ_UNCOMMITTED]
            why = f"LSO {lso}, high watermark {hw}"
            if lso == hw:
                break
        except KafkaException as e:
            why = f"ListOffsets failed: {e}"
        if time.time() > deadline:
            break
        time.sleep(0.5)
    check("txn-none-left-open (read_committed end == high watermark)", why.startswith("LSO") and lso == hw, why)

    reader = Consumer({"bootstrap.servers": b, "group.id": "crash-txn-reader", "enable.auto.commit": False,
                       "isolation.level": "read_committed", "enable.partition.eof": True, "log_level": 0})
    reader.assign([TopicPartition(TXN_TOPIC, p, OFFSET_BEGINNING) for p in range(PARTS)])
    seen, eof = {}, set()
    deadline = time.time() + 60
    while len(eof) < PARTS and time.time() < deadline:
        for m in reader.consume(10000, 0.5):
            if m.error() is None:
                seen.setdefault(m.key().decode(), []).append((m.partition(), m.value().decode()))
                eof.discard(m.partition())
            elif m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
    reader.close()

    states = {}
    half, lost, leaked, doubled, unknown_outcome = [], [], [], [], {"committed": 0, "aborted": 0}
    for n, (recs, state) in sorted(list(txns.items())):
        states[state] = states.get(state, 0) + 1
        vis = [k for k, part in recs if any(sp == part and v == f"{k}:{len(recs)}" for sp, v in seen.get(k, []))]
        doubled += [k for k, _ in recs if len(seen.get(k, [])) > 1]
        if 0 < len(vis) < len(recs):
            half.append(f"t{n} ({state}): {len(vis)} of {len(recs)} visible")
        if state == "committed" and len(vis) < len(recs):
            lost.append(f"t{n}: {len(vis)} of {len(recs)} visible")
        if state in ("open", "aborted") and vis:
            leaked.append(f"t{n} ({state}): {len(vis)} of {len(recs)} visible")
        if state == "committing":
            unknown_outcome["committed" if len(vis) == len(recs) else "aborted"] += 1
    known = {k for recs, _ in list(txns.values()) for k, _ in recs}
    strays = [k for k in seen if k not in known]
    at_end = len(eof) == PARTS
    ran = states.get("committed", 0) > 0 and states.get("aborted", 0) > 0
    check(f"txn-workload-ran ({len(txns)} transactions: {states})", ran and at_end,
          f"needs committed and aborted transactions, and a read to the end (reached: {at_end})")
    check("txn-no-transaction-half-visible", not half and not doubled and not strays,
          f"{half[:5]}; records twice: {doubled[:5]}; records of no transaction: {strays[:5]}")
    check("txn-every-acknowledged-commit-visible-whole", not lost, "; ".join(lost[:5]))
    check("txn-no-aborted-transaction-visible", not leaked, "; ".join(leaked[:5]))
    errs = {}
    for e in txn_errors:
        errs[e] = errs.get(e, 0) + 1
    print(f"# transactions: {states}; those with the commit under way at a kill came out {unknown_outcome}; "
          f"client errors {errs}", file=sys.stderr)


if __name__ == "__main__":
    main()
