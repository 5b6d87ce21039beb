"""Small LanceDB helpers shared by the store's modules."""

from __future__ import annotations

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


def retry(fn, tries: int = 5):
    """Delete/update/merge-insert do not retry a commit conflict on their own (notes)."""
    for i in range(tries):
        try:
            return fn()
        except (OSError, RuntimeError) as e:
            if "conflict" not in str(e).lower() or i == tries - 1:
                raise
            time.sleep(0.05 * 2**i)
