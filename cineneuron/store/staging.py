"""A distributed job's rows staged in a Lance table of their own, then merged into clips once.

lance-ray's `write_lance` commits every worker's fragments in one commit, but appending is not
idempotent (a rerun would duplicate rows) and its distributed merge-insert is not released. So a
Ray job writes a staging table with mode="overwrite" (one commit, from any number of workers),
and the store streams it into `clips` with ONE merge-insert on clip_id (Store.merge_staged): one
clips version per job, and a rerun inserts only what is missing. The staging table is dropped
after the merge; one left by a job that died is overwritten when that job id reruns, or dropped
with `drop_staging`.
"""

from __future__ import annotations

STAGING_PREFIX = "staging_job"


def staging_name(job_id: int) -> str:
    return f"{STAGING_PREFIX}{int(job_id)}"


def table_uri(store, name: str) -> str:
    """The Lance URI of table `name` beside the store's own tables (query strings such as
    s3+ddb's ?ddbTableName=... stay at the end)."""
    base, _, query = str(store.uri).partition("?")
    uri = f"{base.rstrip('/')}/{name}.lance"
    return f"{uri}?{query}" if query else uri


def write_staging(store, dataset, name: str):
    """Write a Ray Dataset of clips rows (the clips schema) as table `name`; returns the table."""
    import lance_ray

    lance_ray.write_lance(dataset, table_uri(store, name), schema=store.clips.schema, mode="overwrite",
                          storage_options=store.storage_options)
    return store.db.open_table(name)


def drop_staging(store, name: str) -> None:
    from cineneuron.store.lance_util import table_names

    if name in table_names(store.db):
        store.db.drop_table(name)
