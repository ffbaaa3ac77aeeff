"""Records how a trial ended, in its folder, for a daemon that may no longer be its parent.

Run by the trial's wrapper shell, which `exec`s this file with `python -I -S`
once the trial has exited, when the trial's parent (the daemon, watching it)
is no longer there: the process keeps the shell's accounting of the
children it waited for, so the CPU time of the whole tree and the peak
resident memory of its largest process are read here, with the wall-clock
end. Standard library only. The exit status is written last: its file is
the sign that the record is complete.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

EXIT_FILE = "exit_code"
USAGE_FILE = "usage.json"


def record(trial_dir: str, code: int) -> None:
    """Write the trial's end time, CPU-seconds and peak memory, then its exit status."""
    ended = time.time()
    times = os.times()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    usage = {
        "ended": ended,
        "cpu_seconds": times.user + times.system + times.children_user + times.children_system,
        "peak_rss_mib": children.ru_maxrss / 1024,
    }
    _write(os.path.join(trial_dir, USAGE_FILE), json.dumps(usage) + "\n")
    _write(os.path.join(trial_dir, EXIT_FILE), f"{code}\n")


def _write(path: str, text: str) -> None:
    """Replace a file at once, so a reader never sees half of it."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def main() -> None:
    """`trial_exit.py TRIAL_DIR CODE`: record, then end as the trial did (the same code, or its signal)."""
    code = int(sys.argv[2])
    try:
        record(sys.argv[1], code)
    finally:
        if code > 128:
            _raise(code - 128)
        sys.exit(code)


def _raise(signum: int) -> None:
    """End by the signal that ended the trial, so a parent that still waits sees it too."""
    try:
        if signum != signal.SIGKILL:
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    except (OSError, ValueError):  # an exit code above 128 that was no signal
        pass


if __name__ == "__main__":
    main()
