#!/usr/bin/env python3
"""Time from start to the first full frame, and CPU while idle, of the dashboard in a real PTY.

usage: scripts/bench-startup.py [BINARY] [-- ARGS...]
default: target/release/homeinfra-tui --offline --hosts hosts.json
Prints: first frame after N ms (median of 5), idle CPU over 30 s in % of one core.
"""
import os, pty, select, signal, statistics, sys, time

def args():
    argv = sys.argv[1:]
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

def read_until(fd, needle, timeout):
    buf = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            buf += chunk
            if needle in buf:
                return True
    return False

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
    times = []
    for _ in range(5):
        t0 = time.monotonic()
        pid, fd = spawn(binary, extra)
        ok = read_until(fd, needle, 10)
        times.append((time.monotonic() - t0) * 1000)
        if not ok:
            print("first frame never appeared", file=sys.stderr)
            sys.exit(1)
        stop(pid, fd)
    print(f"first frame: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}) over {len(times)} runs")
    pid, fd = spawn(binary, extra)
    read_until(fd, needle, 10)
    drain(fd, 2)
    hz = os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu_ticks(pid), time.monotonic()
    written = drain(fd, 30)
    c1, t1 = cpu_ticks(pid), time.monotonic()
    print(f"idle 30 s: CPU {(c1 - c0) / hz / (t1 - t0) * 100:.2f} % of one core, {written} bytes written to the terminal")
    stop(pid, fd)

if __name__ == "__main__":
    main()
