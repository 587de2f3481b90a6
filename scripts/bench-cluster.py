#!/usr/bin/env python3
"""The dashboard against a large simulated cluster (the simulator in its own process, all on
loopback), in a real terminal (tmux): time until the Nodes, etcd and Longhorn panes are
populated, then CPU and RSS of the dashboard alone while nothing changes.

usage: scripts/bench-cluster.py [--nodes N] [--runs R] [--idle SECS] [--binary PATH]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--binary", default="target/release/homeinfra-tui")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="homeinfra-bench-")
    sim = subprocess.Popen([a.binary, "--log-file", f"{d}/sim.log", "sim", "--dir", d, "--nodes", str(a.nodes)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sock = f"{d}/tmux.sock"
    tmux = ["tmux", "-S", sock, "-f", "/dev/null"]
    try:
        if sim.stdout.readline().strip() != "ready":
            sys.exit("simulator did not start")
        print(f"sim --nodes {a.nodes}: RSS {rss(sim.pid) / 1024:.0f} MiB")
        needles = [f"Nodes ({a.nodes})", f"Longhorn ({a.nodes})", "3/3 healthy"]
        times = []
        for i in range(a.runs):
            name = f"r{i}"
            t0 = time.monotonic()
            subprocess.run(tmux + ["new-session", "-d", "-s", name, "-x", "200", "-y", "60",
                                   f"exec {a.binary} --config {d}/config.toml --hosts {d}/hosts.json --log-file {d}/tui.log"], check=True)
            while True:
                screen = subprocess.run(tmux + ["capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
                if all(n in screen for n in needles):
                    times.append((time.monotonic() - t0) * 1000)
                    break
                if time.monotonic() - t0 > 60:
                    sys.exit("panes not populated within 60 s:\n" + screen)
                time.sleep(0.05)
            if i < a.runs - 1:
                subprocess.run(tmux + ["kill-session", "-t", name])
        print(f"all panes populated (Nodes, Longhorn, etcd): median {statistics.median(times):.0f} ms "
              f"(min {min(times):.0f}, max {max(times):.0f}) over {len(times)} runs")
        pid = int(subprocess.run(tmux + ["display", "-p", "-t", name, "#{pane_pid}"], capture_output=True, text=True).stdout)
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")
        c0, t0 = ticks(pid), time.monotonic()
        time.sleep(a.idle)
        c1, t1 = ticks(pid), time.monotonic()
        print(f"dashboard idle {a.idle:.0f} s: CPU {(c1 - c0) / hz / (t1 - t0) * 100:.2f} % of one core, "
              f"RSS {rss(pid) / 1024:.1f} MiB (peak {hwm(pid) / 1024:.1f} MiB)")
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
        sim.terminate()
        sim.wait()
        shutil.rmtree(d, ignore_errors=True)

def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0

def rss(pid):
    return status(pid, "VmRSS:")

def hwm(pid):
    return status(pid, "VmHWM:")

def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])

if __name__ == "__main__":
    main()
