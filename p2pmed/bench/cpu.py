"""CPU seconds a process has used, from ``/proc/<pid>/stat``.

The benchmark divides the CPU a node used during a step by the step's wall time:
1.0 means the node kept one core busy. Reading ``/proc`` (Linux only) needs no
dependency and costs one small read; the figure covers every thread of the
process, user and kernel time, at the kernel's clock-tick resolution (10 ms).
"""

from __future__ import annotations

import os

__all__ = ["cpu_seconds"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_UTIME_FIELD = 13  # 0-based index of utime in the whole line; stime follows (proc(5))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far; ``OSError`` if it is gone."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        line = stat.read()
    # The command name (field 2) is in parentheses and may hold spaces or ")": split after the last one.
    fields = line[line.rindex(b")") + 2 :].split()
    utime, stime = int(fields[_UTIME_FIELD - 2]), int(fields[_UTIME_FIELD - 1])
    return (utime + stime) / _TICKS_PER_S
