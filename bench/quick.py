"""Quick foundation measurements (the full side-by-side benchmark is corral-bench).

    python3 bench/quick.py [path/to/corral] [runs]

Reports, as medians over `runs` fresh processes:
  * spawn -> first answered Metadata (ms)
  * idle RSS after start and one Metadata (KiB)
  * broker CPU per single-message Produce request (us): 20,000 sequential acks=-1 Produce
    requests over one connection, each carrying one record (a frame captured from kcat), CPU
    time of the corral process (utime+stime) divided by the request count.
"""
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/corral"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
HERE = os.path.dirname(os.path.abspath(__file__))
PRODUCE = open(os.path.join(HERE, "..", "fixtures", "kcat", "0006-c02-Produce-v7.bin"), "rb").read()
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def metadata_v1(corr):
    body = struct.pack(">hhih", 3, 1, corr, -1) + struct.pack(">i", -1)
    return struct.pack(">i", len(body)) + body


def read_frame(sock):
    def exact(n):
        b = b""
        while len(b) < n:
            chunk = sock.recv(n - len(b))
            if not chunk:
                raise ConnectionError("closed")
            b += chunk
        return b
    size = struct.unpack(">i", exact(4))[0]
    return exact(size)


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def one_run(measure_produce):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([BIN, "--ephemeral", "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(metadata_v1(1))
                read_frame(s)
                break
            except (ConnectionRefusedError, ConnectionError):
                time.sleep(0.0005)
        startup_ms = (time.perf_counter() - t0) * 1000
        time.sleep(0.2)
        rss = rss_kib(proc.pid)
        per_produce_us = None
        if measure_produce:
            # the kcat fixture's topic; produce to it once so it exists (acks in the frame: -1)
            meta = struct.pack(">hhih", 3, 4, 2, -1) + struct.pack(">ih", 1, 2) + b"fx" + b"\x01"
            s.sendall(struct.pack(">i", len(meta)) + meta)
            read_frame(s)
            n = 20000
            c0 = cpu_seconds(proc.pid)
            for _ in range(n):
                s.sendall(PRODUCE)
                read_frame(s)
            per_produce_us = (cpu_seconds(proc.pid) - c0) / n * 1e6
        s.close()
        return startup_ms, rss, per_produce_us
    finally:
        proc.terminate()
        proc.wait()


def main():
    starts, rsss, cpus = [], [], []
    for i in range(RUNS):
        st, rss, cpu = one_run(measure_produce=(i < 3))
        starts.append(st)
        rsss.append(rss)
        if cpu is not None:
            cpus.append(cpu)
    print(f"binary: {BIN}")
    print(f"spawn -> first Metadata: median {statistics.median(starts):.1f} ms (runs: {', '.join(f'{x:.1f}' for x in starts)})")
    print(f"idle RSS: median {statistics.median(rsss)} KiB")
    print(f"broker CPU per single-message Produce: median {statistics.median(cpus):.1f} us (runs: {', '.join(f'{x:.1f}' for x in cpus)})")


if __name__ == "__main__":
    main()
