"""Small LanceDB helpers shared by the store's modules."""

from __future__ import annotations

import random
import time


def table_names(db) -> list[str]:
    names, token = [], None
    while True:
        resp = db.list_tables(page_token=token) if token else db.list_tables()
        names += list(resp.tables)
        token = resp.page_token
        if not token:
            return names


def sql_str(s: str) -> str:
    """A SQL string literal: the one place user and data values are quoted for Lance filters."""
    return "'" + str(s).replace("'", "''") + "'"


def sql_list(values) -> str:
    """`'a','b'` for an IN (...) list."""
    return ",".join(sql_str(v) for v in values)


def is_conflict(e: BaseException) -> bool:
    """A Lance commit conflict ("Retryable commit conflict", "... preempted by concurrent transaction")."""
    text = str(e).lower()
    return isinstance(e, (OSError, RuntimeError, ValueError)) and ("conflict" in text or "preempted" in text)


def retry(fn, tries: int = 8, base_s: float = 0.05, max_s: float = 2.0):
    """Delete/update/merge-insert do not retry a commit conflict on their own (notes).

    Exponential backoff with jitter, so two writers that collided do not collide again in step.
    """
    for i in range(tries):
        try:
            return fn()
        except (OSError, RuntimeError, ValueError) as e:
            if not is_conflict(e) or i == tries - 1:
                raise
            time.sleep(min(max_s, base_s * 2**i) * (0.5 + random.random()))


def yielding(fn, tries: int = 3) -> bool:
    """Housekeeping (compaction, index builds) that gives way to writers: retried a little on a
    commit conflict, then skipped (False), since the data is committed and the next ingest redoes it."""
    try:
        retry(fn, tries=tries)
        return True
    except (OSError, RuntimeError, ValueError) as e:
        if is_conflict(e):
            return False
        raise
