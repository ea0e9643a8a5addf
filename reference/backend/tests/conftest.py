"""Fixtures for the backend's tests: one real PostgreSQL cluster per test session.

The cluster (pg_cluster.py) is provisioned like a deployment (owner role,
login role, the three API roles) and migrated with the real CLI. Tests talk
to the app in-process (httpx over ASGI) or to real uvicorn processes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parent.parent
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))
# Cheap password hashes: the tests sign up hundreds of users, and the real
# cost (64 MiB x 3 passes) is a deliberate fraction of a second each.
os.environ.setdefault("ARGON2_TIME_COST", "1")
os.environ.setdefault("ARGON2_MEMORY_KIB", "1024")

from backend_support import (  # noqa: E402
    Api,
    Database,
    make_api,
    migrate,
)
from pg_cluster import Cluster, provision, running_cluster  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole session, on a free loopback port."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def database(pg_cluster: Cluster) -> Database:
    """The migrated test database and the URLs of its roles."""
    urls = provision(pg_cluster, "aiplatform_test", owner=("ai_owner", "owner-pw-1"),
                     app=("ai_app", "app-pw-2"))
    result = migrate(urls.owner)
    assert result.returncode == 0, result.stderr
    return Database(pg_cluster, urls)


@pytest.fixture
def anyio_backend() -> str:
    """The async tests run on asyncio (psycopg's async side)."""
    return "asyncio"


@pytest.fixture
async def api(database: Database) -> AsyncIterator[Api]:
    """The app in-process, with its lifespan (pool, listener) running."""
    async with make_api(database) as running:
        yield running
