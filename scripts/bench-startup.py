#!/usr/bin/env python3
"""Time from start to the first full frame (and, optionally, until given texts are all on
screen), CPU while idle and resident memory of the dashboard in a real PTY.

usage: scripts/bench-startup.py [--until TEXT]... [--runs N] [--idle SECS] [BINARY] [-- ARGS...]
default: target/release/homeinfra-tui --offline --hosts hosts.json
Prints: first frame after N ms (median of the runs); with --until, when every TEXT was on
screen; then CPU over an idle period in % of one core and the RSS at its end.
"""
import os, pty, re, select, signal, statistics, sys, time

UNTIL = []
RUNS = 5
IDLE = 30.0
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")

def args():
    argv = sys.argv[1:]
    global UNTIL, RUNS, IDLE
    while argv and argv[0] in ("--until", "--runs", "--idle"):
        flag, value = argv[0], argv[1]
        argv = argv[2:]
        if flag == "--until":
            UNTIL.append(value.encode())
        elif flag == "--runs":
            RUNS = int(value)
        else:
            IDLE = float(value)
    binary = "target/release/homeinfra-tui"
    extra = ["--offline", "--hosts", "hosts.json"]
    if argv and argv[0] != "--":
        binary = argv.pop(0)
    if argv and argv[0] == "--":
        extra = argv[1:]
    return binary, extra

def spawn(binary, extra):
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm-256color"
        os.environ["COLUMNS"], os.environ["LINES"] = "160", "48"
        os.execv(binary, [binary] + extra)
    import fcntl, struct, termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    return pid, fd

def read_until(fd, needles, timeout):
    """Wait until every needle has appeared in the output (escape codes removed)."""
    if isinstance(needles, bytes):
        needles = [needles]
    seen = set()
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            buf = (buf + chunk)[-262144:]
            text = ANSI.sub(b"", buf)
            for n in needles:
                if n in text or n in buf:
                    seen.add(n)
            if len(seen) == len(needles):
                return True
    return False

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime + stime

def drain(fd, seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                n += len(os.read(fd, 65536))
            except OSError:
                break
    return n

def stop(pid, fd):
    os.write(fd, b"q")
    for _ in range(50):
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    os.close(fd)

def main():
    binary, extra = args()
    needle = b"Findings"
    times, full = [], []
    for _ in range(RUNS):
        t0 = time.monotonic()
        pid, fd = spawn(binary, extra)
        ok = read_until(fd, needle, 10)
        times.append((time.monotonic() - t0) * 1000)
        if not ok:
            print("first frame never appeared", file=sys.stderr)
            sys.exit(1)
        if UNTIL:
            if not read_until(fd, UNTIL, 60):
                print(f"never saw all of {UNTIL}", file=sys.stderr)
                sys.exit(1)
            full.append((time.monotonic() - t0) * 1000)
        stop(pid, fd)
    print(f"first frame: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}) over {len(times)} runs")
    if full:
        shown = ", ".join(n.decode() for n in UNTIL)
        print(f"all of [{shown}] on screen: median {statistics.median(full):.0f} ms (min {min(full):.0f}, max {max(full):.0f})")
    pid, fd = spawn(binary, extra)
    read_until(fd, UNTIL or needle, 60)
    drain(fd, 2)
    hz = os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu_ticks(pid), time.monotonic()
    written = drain(fd, IDLE)
    c1, t1 = cpu_ticks(pid), time.monotonic()
    print(f"idle {IDLE:.0f} s: CPU {(c1 - c0) / hz / (t1 - t0) * 100:.2f} % of one core, {written} bytes written to the terminal, RSS {rss_kib(pid) / 1024:.1f} MiB")
    stop(pid, fd)

if __name__ == "__main__":
    main()
