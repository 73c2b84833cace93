#!/usr/bin/env python3
# The floor under CNI latency: N processes of BINARY started at once (a barrier), each asked for
# VERSION, and the p50/p99 of their wall times. Usage: spawn-floor.py BINARY N

import subprocess, threading, time, sys
bin_ = sys.argv[1]; n = int(sys.argv[2])
env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/bin:/bin"}
times = []; lock = threading.Lock(); bar = threading.Barrier(n)
def run():
    bar.wait()
    t = time.perf_counter()
    subprocess.run([bin_], input=b'{"cniVersion":"1.0.0"}', env=env, stdout=subprocess.DEVNULL)
    d = time.perf_counter() - t
    with lock: times.append(d)
ts = [threading.Thread(target=run) for _ in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
times.sort(); print(f"{bin_} x{n}: p50 {times[len(times)//2]*1000:.1f} ms p99 {times[int(len(times)*0.99)-1]*1000:.1f} ms")
