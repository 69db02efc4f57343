"""Real clients across real crashes: confluent-kafka producers and committers keep working
while corral is SIGKILLed at random moments and restarted on the same data dir.

    python3 tests/durability/kill_rounds.py [path/to/corral] [rounds]

Checks, printed as PASS/FAIL lines:
  * every message the producer saw acknowledged (acks=all) is there afterwards, at its offset;
  * every commit the committer saw acknowledged is recovered after each restart, and
    committed offsets never go backwards.
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/debug/corral"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 12
TOPIC, GROUP, PARTS = "crashy", "crash-committers", 3
failures = []


def check(name, ok, why=""):
    print(f"{'PASS' if ok else 'FAIL'} durability {name}{'' if ok else ': ' + why}", flush=True)
    if not ok:
        failures.append(name)


class Server:
    """corral on one data dir. The first start takes a port the kernel picks (--listen
    127.0.0.1:0) and corral names it on its first line, `corral ... listening on ADDR, ...`;
    every restart listens on that same address again, so clients reconnect to it."""

    def __init__(self, data):
        self.data, self.listen, self.proc = data, "127.0.0.1:0", None

    def start(self):
        self.proc = subprocess.Popen([BIN, "--data-dir", self.data, "--listen", self.listen],
                                     stdout=subprocess.PIPE, stderr=open(self.data + ".log", "a"))
        line = self.proc.stdout.readline().decode()
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
    server = Server(data)
    b = server.start()
    admin = AdminClient({"bootstrap.servers": b})
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTS, replication_factor=1)])[TOPIC].result(10)

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

    threads = [threading.Thread(target=producer_loop), threading.Thread(target=committer_loop)]
    for t in threads:
        t.start()
    regressions = []
    recovered_ok = True
    for r in range(ROUNDS):
        time.sleep(random.uniform(0.2, 1.5))
        before = dict(committed)
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
    for t in threads:
        t.join(90)
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
    server.kill9()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
