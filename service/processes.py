"""Facts about other processes on this host."""

from __future__ import annotations

import os
import threading


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal still counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
