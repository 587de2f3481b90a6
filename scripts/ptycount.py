#!/usr/bin/env python3
"""Run a command under its own PTY and pass its terminal through, counting what it writes.

usage: scripts/ptycount.py LOG -- COMMAND [ARG...]

The child gets a PTY of this terminal's size (and follows resizes); keys typed here reach it.
LOG gets the lines `pid PID` and `start T` (CLOCK_MONOTONIC seconds) when the child starts, then one line per chunk the child wrote:
`SECONDS BYTES` (monotonic seconds since the start, cumulative bytes), and `frame SECONDS`
when the first full frame is out (the last pane's title, Findings, written). scripts/bench.py runs
the dashboard this way inside tmux: tmux draws the screen it reads the panes from, and the
count is the dashboard's own output, before any terminal (tmux included) touches it.
"""
import fcntl, os, pty, select, signal, struct, sys, termios, time, tty


MARK = b"Findings"


def size(fd):
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return struct.pack("HHHH", 60, 200, 0, 0)


def main():
    argv = sys.argv[1:]
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(__doc__)
    log_path, cmd = argv[0], argv[2:]
    winsize = size(sys.stdin.fileno())
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, winsize)
    log = open(log_path, "w", buffering=1)
    log.write(f"pid {pid}\n")
    log.write(f"start {t0:.6f}\n")

    def resize(*_):
        try:
            fcntl.ioctl(fd, termios.TIOCSWINSZ, size(sys.stdin.fileno()))
        except OSError:
            pass

    signal.signal(signal.SIGWINCH, resize)
    stdin = sys.stdin.fileno()
    try:
        old = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    except termios.error:
        old = None
    total = 0
    tail = b""
    marked = False
    try:
        while True:
            try:
                r, _, _ = select.select([fd, stdin], [], [])
            except InterruptedError:
                continue
            if fd in r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                total += len(chunk)
                now = time.monotonic() - t0
                log.write(f"{now:.4f} {total}\n")
                if not marked:
                    # The first full frame: the last pane's title drawn.
                    tail = (tail + chunk)[-65536:]
                    if MARK in tail:
                        marked = True
                        log.write(f"frame {now:.4f}\n")
                os.write(sys.stdout.fileno(), chunk)
            if stdin in r:
                data = os.read(stdin, 1024)
                if not data:
                    break
                os.write(fd, data)
    finally:
        if old is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, old)
        _, status = os.waitpid(pid, 0)
        log.write(f"exit {status}\n")


if __name__ == "__main__":
    main()
