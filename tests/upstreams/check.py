"""corral proxy in front of a real upstream, with confluent-kafka (librdkafka 2.16) as the client.

    python3 check.py CORRAL_BIN UPSTREAM_BOOTSTRAP

Starts `corral proxy --upstream UPSTREAM_BOOTSTRAP` (offsets kept in the upstream topic, no data
dir), then checks through it: metadata with rewritten addresses, an idempotent produce and its
consumption, a consumer group that commits, the commits mirrored to the upstream (read with an
admin client pointed straight at it), and a SIGKILLed proxy restarted with no data dir whose
group resumes from its committed offsets. Prints PASS/FAIL lines; exits non-zero on any FAIL.
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

BIN, UPSTREAM = os.path.abspath(sys.argv[1]), sys.argv[2]
NAME = os.environ.get("UPSTREAM_NAME", "upstream")
FAILED = []


def ok(check, detail=""):
    print("PASS proxy-%s %s%s" % (NAME, check, " (%s)" % detail if detail else ""), flush=True)


def bad(check, why):
    FAILED.append(check)
    print("FAIL proxy-%s %s: %s" % (NAME, check, why), flush=True)


class Proxy:
    """`corral proxy` listening on 127.0.0.1:0 at every start: the kernel picks its port, and its
    node listeners take free ports too (with a fixed --listen port they would be derived from
    it, port + 1 + node id: ports nobody reserved, past 65535 for large node ids). Its first
    line names the address: `corral ... proxy listening on ADDR, ...`. A restart gets a new
    address; the clients made after it are given that one."""

    def __init__(self, cwd):
        self.cwd, self.proc, self.bootstrap = cwd, None, None

    def start(self):
        self.proc = subprocess.Popen([BIN, "proxy", "--upstream", UPSTREAM, "--listen", "127.0.0.1:0"],
                                     cwd=self.cwd, stdout=subprocess.PIPE, stderr=open(os.path.join(self.cwd, "..", "proxy.log"), "a"))
        line = self.proc.stdout.readline().decode()
        if "proxy listening on " not in line:
            raise RuntimeError("the proxy did not start: %r" % line)
        self.bootstrap = line.split(" listening on ", 1)[1].split(",", 1)[0].strip()
        # keep reading stdout, so that corral never writes into a closed pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        return line

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def main():
    work = tempfile.mkdtemp()
    cwd = os.path.join(work, "cwd")
    os.mkdir(cwd)
    proxy = Proxy(cwd)
    try:
        line = proxy.start()
        print("# " + line.strip(), file=sys.stderr)
        run(proxy, cwd)
    finally:
        proxy.stop()
    if os.listdir(cwd):
        bad("no-data-dir", "the proxy wrote %s into its working directory" % os.listdir(cwd))
    else:
        ok("no-data-dir", "offsets kept upstream only")
    return 1 if FAILED else 0


def run(proxy, cwd):
    b = proxy.bootstrap
    admin = AdminClient({"bootstrap.servers": b})
    md = admin.list_topics(timeout=15)
    up_ports = {int(a.rsplit(":", 1)[1]) for a in UPSTREAM.split(",")}
    ports = {br.port for br in md.brokers.values()}
    if 1_000_000_000 in md.brokers and not ports & up_ports and all(br.host == "127.0.0.1" for br in md.brokers.values()):
        ok("metadata", "%d brokers at corral listeners" % len(md.brokers))
    else:
        bad("metadata", {k: (v.host, v.port) for k, v in md.brokers.items()})

    topic = "proxy-%s-%s" % (NAME, uuid.uuid4().hex[:6])
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(15)
        ok("create-topic")
    except Exception as e:  # noqa: BLE001
        bad("create-topic", e)
        return

    N = 3000
    p = Producer({"bootstrap.servers": b, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    for i in range(N):
        p.produce(topic, key=str(i), value=str(i), partition=i % 3, on_delivery=lambda e, m: e and errors.append(e))
        if i % 500 == 0:
            p.poll(0)
    left = p.flush(30)
    (ok if left == 0 and not errors else lambda c: bad(c, "%d unflushed, %s" % (left, errors[:3])))("produce-idempotent")

    group = "g-" + uuid.uuid4().hex[:6]

    def consumer():
        return Consumer({"bootstrap.servers": proxy.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 6000})

    c = consumer()
    c.subscribe([topic])
    seen = set()
    started = time.time()
    first = None
    half = N // 2
    while len(seen) < half and time.time() - started < 60:
        for m in c.consume(500, 1.0):
            if m.error():
                continue
            if first is None:
                first = time.time() - started
            seen.add(int(m.value()))
            if len(seen) >= half:
                break
    try:
        c.commit(asynchronous=False)
    except Exception as e:  # noqa: BLE001
        bad("commit", e)
    # partitions the consumer has not read from yet have no committed offset (-1001)
    committed = {tp.partition: tp.offset for tp in c.committed([TopicPartition(topic, i) for i in range(3)], timeout=10)
                 if tp.offset >= 0}
    c.close()
    if len(seen) >= half and sum(committed.values()) == len(seen):
        ok("group-consume-commit", "first message after %.2f s, committed %s" % (first, committed))
    else:
        bad("group-consume-commit", "read %d, committed %s" % (len(seen), committed))

    # the commits are mirrored to the upstream, member-less
    direct = AdminClient({"bootstrap.servers": UPSTREAM})
    mirrored = {}
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            r = direct.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(10)
            mirrored = {tp.partition: tp.offset for tp in r.topic_partitions if tp.topic == topic}
        except Exception as e:  # noqa: BLE001
            mirrored = {"error": str(e)}
        if mirrored == committed:
            break
        time.sleep(0.5)
    (ok if mirrored == committed else lambda c: bad(c, "upstream has %s, corral %s" % (mirrored, committed)))("mirrored-offsets")

    # SIGKILL the proxy; a new one (no data dir) loads the group from the upstream topic
    proxy.kill9()
    proxy.start()
    c = consumer()
    c.subscribe([topic])
    rest = set()
    offsets_seen = {}
    started = time.time()
    while len(seen | rest) < N and time.time() - started < 60:
        for m in c.consume(500, 1.0):
            if m.error():
                continue
            offsets_seen.setdefault(m.partition(), m.offset())
            rest.add(int(m.value()))
    c.close()
    # where a partition resumes: at its committed offset, or at the start without one
    resumed_at_commit = all(off == committed.get(part, 0) for part, off in offsets_seen.items())
    if len(seen | rest) == N and resumed_at_commit:
        ok("restart-resume", "resumed at %s after a SIGKILL" % offsets_seen)
    else:
        bad("restart-resume", "all %d seen: %s; first offsets after restart %s, committed %s"
            % (N, len(seen | rest) == N, offsets_seen, committed))


if __name__ == "__main__":
    sys.exit(main())
