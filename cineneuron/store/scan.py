"""Plain table scans through LanceDB's own query API.

Going through the LanceDB table (not `to_lance()`) keeps every read working on any URI LanceDB
accepts (local, object storage, memory://) with the connection's storage options.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa


def _query(tbl, columns: list[str] | None, where: str | None):
    q = tbl.search()
    if where:
        q = q.where(where)
    if columns:
        q = q.select(list(columns))
    return q.limit(None)


def scan(tbl, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
    """The rows matching `where` (SQL), only `columns`, as one Arrow table."""
    return _query(tbl, columns, where).to_arrow()


def scan_batches(tbl, columns: list[str] | None = None, where: str | None = None,
                 batch_size: int = 1024) -> Iterator[pa.RecordBatch]:
    """The same, streamed in record batches of at most `batch_size` rows (never the whole table)."""
    yield from _query(tbl, columns, where).to_batches(batch_size)
