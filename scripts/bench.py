#!/usr/bin/env python3
"""End-to-end figures of the release binary against the simulator (scripts/bench.sh runs this).

For each cluster size N and mode (frozen: nothing moves; moving: metrics wiggle, logs flow, etcd
progresses): `sim --nodes N` in its own process, then the dashboard at 200x60 in tmux under a
PTY that counts its bytes (scripts/ptycount.py), then `check --json`. Figures, of the dashboard
process alone:
  first frame        from its start (the PTY's fork) until its first full frame is written
                     (the last pane's title, Findings, in its output)
  all panes          from its start until every pane shows its data (the screen read
                     through tmux every 20 ms; see PANES); each pane's own time too
  CPU, bytes/s       over IDLE seconds starting SETTLE seconds after all panes had data
                     (/proc/PID/stat; the PTY's count)
  RSS                at the end of that window (steady) and VmHWM (peak)
  check --json       wall time and peak RSS (wait4), median of CHECKS runs
Prints a markdown table and writes JSON (default target/bench/results.json).
"""
import argparse, json, os, platform, re, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/homeinfra-tui")
    ap.add_argument("--nodes", default="4,200,500", help="comma-separated cluster sizes")
    ap.add_argument("--modes", default="frozen,moving", help="frozen, moving or both")
    ap.add_argument("--pods-per-node", type=int, default=30, help="sim --pods-per-node (beyond 10 nodes)")
    ap.add_argument("--volumes-per-node", type=float, default=1.5, help="sim --volumes = N x this (beyond 10 nodes)")
    ap.add_argument("--ssh-refresh", type=int, default=60, help="[ssh] refresh_secs for the dashboard (60 = the default)")
    ap.add_argument("--ssh-fast", action="store_true", help="also measure each case with [ssh] refresh_secs = 10")
    ap.add_argument("--without", default="", help="comma-separated sources to turn off: kubernetes,etcd,mimir,loki,alertmanager,ssh")
    ap.add_argument("--per-source", action="store_true", help="also run each case once with each source off (CPU per source)")
    ap.add_argument("--runs", type=int, default=1, help="dashboard runs per case (figures are medians)")
    ap.add_argument("--checks", type=int, default=3, help="check --json runs per case")
    ap.add_argument("--settle", type=float, default=10)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--quick", action="store_true", help="200 nodes, frozen only")
    ap.add_argument("--offline", action=argparse.BooleanOptionalAction, default=True,
                    help="also the dashboard offline on the example hosts.json (first frame; 5 runs)")
    ap.add_argument("--out", default="target/bench/results.json")
    ap.add_argument("--label", default="", help="a name for this set of figures (kept in the JSON)")
    a = ap.parse_args()
    if a.quick:
        a.nodes, a.modes, a.offline = "200", "frozen", False
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"no binary at {a.binary}: cargo build --release first, or pass --binary")
    for tool in ("tmux",):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (the dashboard runs in it)")
    cases = []
    if a.offline:
        cases.append(dict(nodes=len(json.load(open(os.path.join(HERE, "..", "hosts.json")))),
                          mode="offline", ssh_refresh=a.ssh_refresh, without=[]))
    for n in [int(x) for x in a.nodes.split(",") if x]:
        for mode in [m for m in a.modes.split(",") if m]:
            if mode not in ("frozen", "moving"):
                sys.exit(f"unknown mode {mode}: frozen or moving")
            off = [s for s in a.without.split(",") if s]
            cases.append(dict(nodes=n, mode=mode, ssh_refresh=a.ssh_refresh, without=off))
            if a.ssh_fast:
                cases.append(dict(nodes=n, mode=mode, ssh_refresh=10, without=off))
            if a.per_source:
                for s in ("kubernetes", "etcd", "mimir", "loki", "alertmanager", "ssh"):
                    cases.append(dict(nodes=n, mode=mode, ssh_refresh=a.ssh_refresh, without=off + [s], checks=0))
    results = []
    load_before = os.getloadavg()
    for c in cases:
        r = run_case(a, c)
        results.append(r)
        print(row(r), file=sys.stderr)
    doc = {
        "label": a.label,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": git("rev-parse", "--short", "HEAD"),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                 "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "settings": {"settle_s": a.settle, "idle_s": a.idle, "runs": a.runs, "checks": a.checks,
                     "terminal": "200x60"},
        "results": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(table(doc))
    print(f"\nJSON: {a.out}")


def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def scale_args(a, n):
    if n <= 10:
        return []
    return ["--pods-per-node", str(a.pods_per_node), "--volumes", str(int(n * a.volumes_per_node))]


def medians(runs):
    """Each figure's median over the runs; each pane's arrival likewise (per pane)."""
    out = {}
    for k in runs[0]:
        if k == "pane_s":
            panes = {p for r in runs for p in r.get(k, {})}
            out[k] = {p: round(statistics.median(r[k][p] for r in runs if p in r.get(k, {})), 3)
                      for p in panes}
            out[k] = dict(sorted(out[k].items(), key=lambda x: x[1]))
            continue
        vals = [r[k] for r in runs if r.get(k) is not None]
        out[k] = round(statistics.median(vals), 3) if vals else None
    return out


def run_offline(a, c):
    """The dashboard on the example inventory, offline: the first frame, idle CPU, RSS."""
    d = tempfile.mkdtemp(prefix="homeinfra-bench-")
    out = dict(c)
    try:
        n = max(a.runs, 5)
        runs = [dashboard(a, d, None, i, offline=True, frame_only=i < n - 1) for i in range(n)]
        out.update(medians(runs))
        out["runs"] = runs
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def run_case(a, c):
    if c["mode"] == "offline":
        return run_offline(a, c)
    d = tempfile.mkdtemp(prefix="homeinfra-bench-")
    n = c["nodes"]
    sim_cmd = [a.binary, "--log-file", f"{d}/sim.log", "sim", "--dir", d, "--nodes", str(n)] + scale_args(a, n)
    if c["mode"] == "frozen":
        sim_cmd.append("--frozen")
    sim = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = dict(c, pods_per_node=a.pods_per_node if n > 10 else None,
               volumes=int(n * a.volumes_per_node) if n > 10 else n)
    try:
        t0 = time.monotonic()
        if sim.stdout.readline().strip() != "ready":
            sys.exit("the simulator did not start:\n" + sim.stderr.read())
        out["sim_start_s"] = round(time.monotonic() - t0, 2)
        config = f"{d}/config.toml"
        write_config(config, c)
        runs = [dashboard(a, d, config, i, without=c["without"]) for i in range(a.runs)]
        out.update(medians(runs))
        out["runs"] = runs
        out["sim_rss_mib"] = round(status(sim.pid, "VmRSS:") / 1024, 1)
        checks = [check(a, d, config) for _ in range(c.get("checks", a.checks))]
        if checks:
            out["check_wall_s"] = round(statistics.median(x[0] for x in checks), 3)
            out["check_peak_mib"] = round(statistics.median(x[1] for x in checks), 1)
            out["check_exit"] = checks[-1][2]
    finally:
        sim.terminate()
        try:
            sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sim.kill()
        shutil.rmtree(d, ignore_errors=True)
    return out


def write_config(path, c):
    """The simulator's config with the case's [ssh] refresh and the sources turned off."""
    lines = open(path).read().splitlines()
    section = None
    out = []
    for line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
        key = s.split("=", 1)[0].strip() if "=" in s else None
        if section == "ssh" and key == "refresh_secs":
            line = f"refresh_secs = {c['ssh_refresh']}"
        if section in c["without"]:
            if section in ("kubernetes", "etcd", "ssh") and key == "enabled":
                line = "enabled = false"
            if section in ("mimir", "loki", "alertmanager") and key == "url":
                continue
        out.append(line)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def tmux(sock, *args, check=True):
    return subprocess.run(["tmux", "-S", sock, "-f", "/dev/null", *args],
                          capture_output=True, text=True, check=check).stdout


# What each pane shows once its source answered (the dashboard at 200x60 shows panes 1-7 at
# once): host facts (a NixOS version and an uptime, no host row still all dashes), pods counted
# on nodes, a healthy etcd leader, a healthy volume, a sparkline, log lines, findings.
PANES = {
    # The NixOS version may be cut with an ellipsis when the columns are narrow.
    "Hosts": [r"\d+\.\d+\.\d{8}\.\w+…? +\w+ +\d+ +\d+[dhms] "],
    "Nodes": [r"Ready +v\d\S* +[1-9]\d* +\d+[dhms]"],
    "etcd": [r"★ http\S+ +healthy"],
    "Longhorn": [r"pvc-\S+ +\S+ +healthy"],
    "Metrics": [r"\d+% [▁▂▃▄▅▆▇█]"],
    "Logs": [r"Logs \([1-9]"],
    "Findings": [r"Findings \(\d+\)"],
}
NO_FACTS = re.compile(r"\d+\.\d+\.\d+\.\d+ +– ")


# The source each pane waits for (Findings needs none): a case with a source turned off does
# not wait for its pane.
PANE_SOURCE = {"Hosts": "ssh", "Nodes": "kubernetes", "Longhorn": "kubernetes", "etcd": "etcd",
               "Metrics": "mimir", "Logs": "loki"}


def watched_panes(without=()):
    """The panes to wait for: those of the sources left on."""
    return [p for p in PANES if PANE_SOURCE.get(p) not in without]


def missing_panes(screen, watched):
    """The panes of `watched` that do not show their data yet."""
    out = [p for p in watched if not all(re.search(x, screen) for x in PANES[p])]
    if "Hosts" in watched and NO_FACTS.search(screen) and "Hosts" not in out:
        out.append("Hosts")
    return out


STARTED = 0.0
FRAME = None


def read_log(path):
    pid, samples = None, []
    try:
        for line in open(path):
            parts = line.split()
            if parts[0] == "pid":
                pid = int(parts[1])
            elif parts[0] == "frame":
                global FRAME
                FRAME = float(parts[1])
            elif parts[0] == "start":
                global STARTED
                STARTED = float(parts[1])
            elif parts[0] != "exit":
                samples.append((float(parts[0]), int(parts[1])))
    except (OSError, ValueError, IndexError):
        pass
    return pid, samples


def bytes_at(samples, t):
    b = 0
    for ts, total in samples:
        if ts > t:
            break
        b = total
    return b


def dashboard(a, d, config, i, offline=False, frame_only=False, without=()):
    global FRAME
    FRAME = None
    sock, log = f"{d}/tmux{i}.sock", f"{d}/pty{i}.log"
    where = (f"--offline --hosts {os.path.join(HERE, '..', 'hosts.json')}" if offline
             else f"--config {config} --hosts {d}/hosts.json")
    cmd = (f"exec python3 {HERE}/ptycount.py {log} -- {os.path.abspath(a.binary)} {where} "
           f"--log-file {d}/tui{i}.log")
    t0 = time.monotonic()
    tmux(sock, "new-session", "-d", "-s", "b", "-x", "200", "-y", "60", cmd)
    r = {}
    try:
        pid = None
        while pid is None and time.monotonic() - t0 < 10:
            pid, _ = read_log(log)
            time.sleep(0.01)
        if pid is None:
            sys.exit("the dashboard did not start")
        # All panes: the screen read until every pane shows its data (no key pressed).
        watched = watched_panes(without)
        pending = [] if offline else watched
        while offline and FRAME is None and time.monotonic() - t0 < 10:
            read_log(log)
            time.sleep(0.01)
        deadline = t0 + 120
        screen = ""
        arrived = {}
        while pending and time.monotonic() < deadline:
            screen = tmux(sock, "capture-pane", "-p", "-t", "b")
            now = time.monotonic() - STARTED
            pending = missing_panes(screen, watched)
            for p in watched:
                if p not in pending:
                    arrived.setdefault(p, now)
            if pending:
                time.sleep(0.02)
        # Each pane: when it first showed its data (the last to come is the figure).
        r["pane_s"] = {p: round(t, 3) for p, t in sorted(arrived.items(), key=lambda x: x[1])}
        # From the dashboard's start (the PTY's fork), as the first frame.
        populated = time.monotonic() - STARTED
        if pending:
            print(f"panes {pending} not populated within 120 s; last screen:\n{screen}", file=sys.stderr)
        r["all_panes_s"] = None if pending or offline else round(populated, 3)
        read_log(log)
        r["first_frame_ms"] = None if FRAME is None else round(FRAME * 1000, 1)
        if frame_only:
            return r
        time.sleep(a.settle)
        hz = os.sysconf("SC_CLK_TCK")
        c0, w0 = ticks(pid), time.monotonic()
        _, samples = read_log(log)
        b0 = samples[-1][1] if samples else 0
        time.sleep(a.idle)
        c1, w1 = ticks(pid), time.monotonic()
        _, samples = read_log(log)
        b1 = samples[-1][1] if samples else 0
        r["idle_cpu_pct"] = round((c1 - c0) / hz / (w1 - w0) * 100, 3)
        r["bytes_per_s"] = round((b1 - b0) / (w1 - w0), 1)
        r["rss_mib"] = round(status(pid, "VmRSS:") / 1024, 1)
        r["peak_rss_mib"] = round(status(pid, "VmHWM:") / 1024, 1)
        r["threads"] = status(pid, "Threads:")
    finally:
        tmux(sock, "kill-server", check=False)
    return r


def check(a, d, config):
    t0 = time.monotonic()
    p = subprocess.Popen([a.binary, "--config", config, "--hosts", f"{d}/hosts.json", "--log-file",
                          f"{d}/check.log", "check", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, st, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(st)
    return wall, ru.ru_maxrss / 1024, p.returncode


def status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])


COLUMNS = [
    ("first frame", "first_frame_ms", "{:.0f} ms"),
    ("all panes", "all_panes_s", "{:.2f} s"),
    ("idle CPU", "idle_cpu_pct", "{:.2f} %"),
    ("RSS", "rss_mib", "{:.1f} MiB"),
    ("peak RSS", "peak_rss_mib", "{:.1f} MiB"),
    ("bytes/s", "bytes_per_s", "{:.0f}"),
    ("check wall", "check_wall_s", "{:.2f} s"),
    ("check peak", "check_peak_mib", "{:.1f} MiB"),
]


def case_name(r):
    name = f"{r['nodes']} nodes {r['mode']}" if r["mode"] != "offline" else f"offline, example hosts.json ({r['nodes']} hosts)"
    if r.get("pods_per_node"):
        name += f" ({r['pods_per_node']} pods/node, {r['volumes']} vols)"
    if r["ssh_refresh"] != 60:
        name += f", SSH every {r['ssh_refresh']} s"
    if r["without"]:
        name += ", without " + "+".join(r["without"])
    return name


def cell(r, key, fmt):
    v = r.get(key)
    return "–" if v is None else fmt.format(v)


def row(r):
    return "| " + " | ".join([case_name(r)] + [cell(r, k, f) for _, k, f in COLUMNS]) + " |"


def table(doc):
    h = doc["host"]
    lines = [
        f"Commit {doc['commit']} {doc['label']}, {doc['date']}; {h['cpus']} CPUs, loadavg "
        f"{h['loadavg_before'][0]:.1f} before / {h['loadavg_after'][0]:.1f} after; "
        f"{doc['settings']['runs']} run(s) per case, idle window {doc['settings']['idle_s']:.0f} s.",
        "",
        "| case | " + " | ".join(c for c, _, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    lines += [row(r) for r in doc["results"]]
    waits = [(case_name(r), r["pane_s"]) for r in doc["results"] if r.get("pane_s")]
    if waits:
        lines += ["", "Each pane's data first on screen (s from the start), in order:", ""]
        lines += [f"- {n}: " + ", ".join(f"{p} {t:.2f}" for p, t in w.items()) for n, w in waits]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        print(table(json.load(open(sys.argv[2]))))
    else:
        main()
