"""An upstream Kafka cluster for `run.sh --proxy`: librdkafka's mock cluster with 3 brokers.

    python3 mock_upstream.py [--brokers N]

Loads the librdkafka shared library bundled in the confluent-kafka wheel with ctypes, makes a
producer handle only to host the mock cluster (rd_kafka_mock_cluster_new), and prints

    BOOTSTRAP host:port,host:port,host:port
    CONTROL host:port

on stdout. Then it serves a line protocol on the control port (one command a line, one reply a
line, as many commands a connection as the client likes):

    create <topic> <partitions>   ->  ok | error <why>

The mock's Metadata names controller 0, which is no broker; it is left so on purpose: corral
proxy gives clients a listed broker instead (a client that sends InitProducerId to the
controller, as kafkajs does, could not find node 0).

`create` makes the topic with replication factor min(3, brokers) and then moves partition p's
leader to broker (p % brokers) + 1, so every topic's partitions are spread over all brokers
(the mock would otherwise pick each leader at random).

What the mock is not: it has no CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
DescribeConfigs, DescribeCluster (nor the other admin APIs), and it auto-creates an unknown
topic with 4 partitions when a Metadata request allows auto creation. Those are the upstream's
limits; the suite reports the checks that need them as SKIP.

SIGTERM, SIGINT or the end of stdin (when it is a pipe) stop it.
"""
import argparse
import ctypes
import glob
import os
import signal
import socket
import socketserver
import sys
import threading


def find_librdkafka():
    import confluent_kafka  # noqa: F401 (its C extension loads the same library)
    pkg = os.path.dirname(confluent_kafka.__file__)
    pats = [os.path.join(pkg, "..", "confluent_kafka.libs", "librdkafka*.so*"),
            os.path.join(pkg, ".libs", "librdkafka*.so*"),
            os.path.join(pkg, "librdkafka*.so*")]
    for p in pats:
        hits = sorted(glob.glob(p))
        if hits:
            return os.path.realpath(hits[0])
    raise SystemExit("mock_upstream: no librdkafka shared library in the confluent-kafka wheel (%s)" % pkg)


def load(path):
    lib = ctypes.CDLL(path)
    vp, cp, i32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32
    sigs = {
        "rd_kafka_version_str": ([], cp),
        "rd_kafka_conf_new": ([], vp),
        "rd_kafka_conf_set": ([vp, cp, cp, cp, ctypes.c_size_t], ctypes.c_int),
        "rd_kafka_new": ([ctypes.c_int, vp, cp, ctypes.c_size_t], vp),
        "rd_kafka_destroy": ([vp], None),
        "rd_kafka_err2str": ([ctypes.c_int], cp),
        "rd_kafka_mock_cluster_new": ([vp, ctypes.c_int], vp),
        "rd_kafka_mock_cluster_destroy": ([vp], None),
        "rd_kafka_mock_cluster_bootstraps": ([vp], cp),
        "rd_kafka_mock_topic_create": ([vp, cp, ctypes.c_int, ctypes.c_int], ctypes.c_int),
        "rd_kafka_mock_partition_set_leader": ([vp, cp, i32, i32], ctypes.c_int),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = res
    return lib


class Mock:
    def __init__(self, brokers):
        self.lib = load(find_librdkafka())
        self.brokers = brokers
        self.lock = threading.Lock()
        lib = self.lib
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        for k, v in (("client.id", "corral-mock-upstream"), ("log_level", "3")):
            if lib.rd_kafka_conf_set(conf, k.encode(), v.encode(), errstr, len(errstr)) != 0:
                raise SystemExit("mock_upstream: conf %s: %s" % (k, errstr.value.decode()))
        self.rk = lib.rd_kafka_new(0, conf, errstr, len(errstr))  # RD_KAFKA_PRODUCER
        if not self.rk:
            raise SystemExit("mock_upstream: rd_kafka_new: %s" % errstr.value.decode())
        self.mc = lib.rd_kafka_mock_cluster_new(self.rk, brokers)
        if not self.mc:
            raise SystemExit("mock_upstream: rd_kafka_mock_cluster_new failed")
        self.bootstraps = lib.rd_kafka_mock_cluster_bootstraps(self.mc).decode()

    def err(self, code):
        return self.lib.rd_kafka_err2str(code).decode()

    def create(self, topic, partitions):
        with self.lock:
            rf = min(3, self.brokers)
            e = self.lib.rd_kafka_mock_topic_create(self.mc, topic.encode(), partitions, rf)
            if e:
                return "error %s (%d)" % (self.err(e), e)
            for p in range(partitions):
                e = self.lib.rd_kafka_mock_partition_set_leader(self.mc, topic.encode(), p, p % self.brokers + 1)
                if e:
                    return "error partition %d leader: %s (%d)" % (p, self.err(e), e)
            return "ok"

    def close(self):
        with self.lock:
            if self.mc:
                self.lib.rd_kafka_mock_cluster_destroy(self.mc)
                self.mc = None
            if self.rk:
                self.lib.rd_kafka_destroy(self.rk)
                self.rk = None


def command(mock, line):
    f = line.split()
    if not f:
        return "error empty command"
    if f[0] == "create":
        if len(f) != 3 or not f[2].isdigit() or int(f[2]) < 1:
            return "error usage: create <topic> <partitions>"
        return mock.create(f[1], int(f[2]))
    return "error unknown command %r (commands: create <topic> <partitions>)" % f[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", type=int, default=3)
    ap.add_argument("--control", default="127.0.0.1:0", help="HOST:PORT of the control port")
    a = ap.parse_args()
    mock = Mock(a.brokers)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            for raw in self.rfile:
                try:
                    reply = command(mock, raw.decode("utf-8", "replace").strip())
                except Exception as e:  # noqa: BLE001
                    reply = "error %r" % e
                self.wfile.write((reply + "\n").encode())
                self.wfile.flush()

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    host, port = a.control.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("BOOTSTRAP %s" % mock.bootstraps, flush=True)
    print("CONTROL %s:%d" % srv.server_address[:2], flush=True)
    print("# librdkafka %s mock cluster, %d brokers" % (mock.lib.rd_kafka_version_str().decode(), a.brokers),
          file=sys.stderr, flush=True)

    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())
    if not sys.stdin.isatty():
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except (OSError, ValueError):
                pass
            done.set()
        if os.fstat(sys.stdin.fileno()).st_mode & 0o170000 == 0o010000:  # a pipe (FIFO)
            threading.Thread(target=watch_stdin, daemon=True).start()
    while not done.wait(1):
        pass
    srv.shutdown()
    srv.server_close()
    mock.close()


if __name__ == "__main__":
    main()
