"""schemathesis against the OpenAPI schema of a real instance: no input gets a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis")
from backend_support import PASSWORD, Database, uvicorn_server  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Bounded: the whole module well under a minute on a busy 2-core machine.
MAX_EXAMPLES = 5

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def instance(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real uvicorn instance on the test database."""
    with uvicorn_server(tmp_path_factory.mktemp("fuzz"), database.urls.app) as server:
        yield server


@pytest.fixture(scope="module")
def auth_headers(instance: Any) -> dict[str, str]:
    """A real user's token, so the authenticated operations get past the 401."""
    answer = httpx.post(instance.url + "/api/auth/signup",
                        json={"email": "fuzz@example.test", "password": PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture(scope="module")
def api_schema(instance: Any) -> Any:
    """The instance's own OpenAPI schema; /api/slow is left out (it sleeps up to 10 s)."""
    loaded = schemathesis.openapi.from_url(instance.url + "/openapi.json")
    loaded.config.update(base_url=instance.url)
    return loaded.exclude(path="/api/slow")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error(case: Any, auth_headers: dict[str, str]) -> None:
    response = case.call(headers=auth_headers, timeout=10)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
