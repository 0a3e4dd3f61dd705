#!/usr/bin/env python3
"""Run one command and print what it cost, as one JSON line (stdlib only).

    measure.py --log FILE -- CMD ARGS...

The command's stdout and stderr go to FILE.  Printed keys:
  wall_s       wall time (time.perf_counter around fork .. wait)
  user_s/sys_s CPU time of the command and every child it waited for
  max_rss_mb   peak RSS of the largest single process (wait4's ru_maxrss,
               the figure `/usr/bin/time -v` prints as "Maximum resident set size")
  tree_rss_mb  peak of the SUM of RSS over the process tree, sampled every
               50 ms from /proc (differs from max_rss_mb for multi-process tools)
  rc           exit status (128+N when killed by signal N)
  load_before/load_after  the 1/5/15-minute load averages
Exit status: always 0 unless the arguments are wrong (check "rc").
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


HAVE_CHILDREN_FILE = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def children(pid: int) -> list:
    """Direct children of pid: /proc/PID/task/*/children, or a scan of /proc."""
    out = []
    if HAVE_CHILDREN_FILE:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return out
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(x) for x in f.read().split())
            except OSError:
                pass
        return out
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                if int(s[s.rfind(")") + 2:].split()[1]) == pid:
                    out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def tree_rss_kb(root: int) -> int:
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += rss_kb(pid)
        stack.extend(children(pid))
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command after --")
    os.makedirs(os.path.dirname(os.path.abspath(a.log)), exist_ok=True)
    load_before = loadavg()
    peak = [0]
    with open(a.log, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss_kb(proc.pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
    print(json.dumps({
        "wall_s": round(wall, 3),
        "user_s": round(ru.ru_utime, 2),
        "sys_s": round(ru.ru_stime, 2),
        "max_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "tree_rss_mb": round(peak[0] / 1024, 1),
        "rc": rc,
        "load_before": load_before,
        "load_after": loadavg(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
