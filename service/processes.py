"""Facts about other processes on this host."""

from __future__ import annotations

import os
import socket
import threading
from functools import cache


def alive(pid: int) -> bool:
    """Whether a process with this pid runs (one we may not signal still counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_stat(pid)[0] != "Z"


def _proc_stat(pid: int) -> tuple[str, str]:
    """(state, start time in clock ticks) from /proc, or ("?", "") where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # The command name (field 2) may hold spaces and parentheses: split after its last ")".
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return "?", ""
    return fields[0], fields[19]


@cache
def process_owner() -> str:
    """This process as the owner of jobs: `host:pid:start` (see `owner_of`)."""
    return owner_of(os.getpid())


def owner_of(pid: int) -> str:
    """The owner string of process `pid` of this host: `host:pid:start`.

    The start time tells a process from a later one that got the same pid (a restarted
    container is pid 1 again on the same host name); it is left out where /proc is not.
    """
    start = _proc_stat(pid)[1]
    return f"{socket.gethostname()}:{pid}" + (f":{start}" if start else "")


def owner_is_gone(owner: str) -> bool:
    """True when `owner` (a `process_owner()` string) ran on this host and that process is gone.

    False when it lives or when this host cannot tell (another host: only its heartbeats can).
    """
    host, _, rest = owner.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if not alive(int(pid)):
        return True
    return bool(start) and _proc_stat(int(pid))[1] not in ("", start)


def background_priority(nice: int) -> bool:
    """Run the calling thread (and the threads it starts later) at niceness `nice` or lower priority.

    Linux keeps a niceness per thread, and new threads inherit their creator's, so
    calling this at the top of a background thread (sync jobs, encoder batches,
    layouts) leaves the request threads of the same process first in line for the
    cores. Never raises priority (that needs privileges); False where unsupported.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return False
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, min(nice, 19))
    except OSError:
        return False
    return True
