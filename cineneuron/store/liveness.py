"""Is the process that runs an ingest job still there? (pid + host + start time, or a heartbeat.)

A job records the pid and host of its process and that process's start time (from /proc, where
there is one, so a pid the OS reused for another program does not count as alive). On another
host the pid cannot be checked, so a job there counts as interrupted once its heartbeat (renewed
at every commit) is older than `STALE_S`.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

STALE_S = 600.0  # another host's job with no commit for this long is taken as interrupted


def host() -> str:
    return socket.gethostname()


def start_token(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        return stat.rsplit(")", 1)[1].split()[19]  # field 22 (starttime); the name may hold spaces
    except (OSError, IndexError):
        return ""


def pid_alive(pid: int, token: str = "") -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    return not token or not start_token(pid) or start_token(pid) == token


def job_alive(pid: int | None, job_host: str, token: str, heartbeat: datetime | None, now: datetime | None = None) -> bool:
    if pid is None:  # a job recorded before pids were: only its heartbeat (if any) can tell
        return heartbeat is None
    if job_host == host():
        return pid_alive(pid, token)
    if heartbeat is None:
        return True
    now = now or datetime.now(timezone.utc)
    hb = heartbeat if heartbeat.tzinfo else heartbeat.replace(tzinfo=timezone.utc)
    return (now - hb).total_seconds() < STALE_S
