"""A fresh PostgreSQL database per test on the server `.ci/run` starts (`$CN_TEST_PG_URL`).

Without a server the tests skip, except in CI (`CI=true`), where a missing server is a failure:
the shared-catalog path must be exercised there, never silently skipped.
"""

from __future__ import annotations

import os
import uuid

import pytest


def pg_server_url() -> str:
    url = os.environ.get("CN_TEST_PG_URL")
    if url:
        return url
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("CI=true but no PostgreSQL given: .ci/run sets CN_TEST_PG_URL (see .ci/pg_server.sh)")
    pytest.skip("no PostgreSQL server: set CN_TEST_PG_URL (e.g. url=$(.ci/pg_server.sh start DIR))")


@pytest.fixture
def pg_url():
    """The URL of a new, empty database, dropped after the test."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(pg_server_url())
    name = f"cn_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
