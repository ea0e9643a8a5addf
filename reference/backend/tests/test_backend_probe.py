"""/api/probe/record: guarded by the probe token, one row per request, RLS on its table."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from backend_support import Api, Database

pytestmark = pytest.mark.anyio

TOKEN = "probe-token-for-tests"


def rows_for(database: Database, request_id: str) -> list[tuple]:
    return database.owner_execute(
        "select request_id, port, pid, release, payload_bytes from probe_requests"
        " where request_id = %s order by seq", (request_id,))


async def test_without_a_configured_token_the_route_does_not_exist(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADAPTO_PROBE_TOKEN", raising=False)
    rid = f"t-{uuid.uuid4().hex}"
    answer = await api.client.post("/api/probe/record", json={"id": rid},
                                   headers={"X-Adapto-Probe": "anything"})
    assert answer.status_code == 404
    assert rows_for(api.database, rid) == []


@pytest.mark.parametrize("header", [None, "wrong", TOKEN + "x", ""])
async def test_a_missing_or_wrong_token_is_refused_and_nothing_is_stored(
        api: Api, monkeypatch: pytest.MonkeyPatch, header: str | None) -> None:
    monkeypatch.setenv("ADAPTO_PROBE_TOKEN", TOKEN)
    rid = f"t-{uuid.uuid4().hex}"
    headers = {} if header is None else {"X-Adapto-Probe": header}
    answer = await api.client.post("/api/probe/record", json={"id": rid}, headers=headers)
    assert answer.status_code == 403
    assert "X-Adapto-Probe" in answer.text and TOKEN not in answer.text
    assert rows_for(api.database, rid) == []


async def test_each_request_is_one_row_and_the_count_shows_a_second_processing(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTO_PROBE_TOKEN", TOKEN)
    headers = {"X-Adapto-Probe": TOKEN}
    rid, other = f"t-{uuid.uuid4().hex}", f"t-{uuid.uuid4().hex}"
    first = await api.client.post("/api/probe/record", headers=headers,
                                  json={"id": rid, "payload": "x" * 300})
    assert first.status_code == 200, first.text
    assert first.json()["count"] == 1 and first.json()["id"] == rid
    again = await api.client.post("/api/probe/record", headers=headers,
                                  json={"id": rid, "payload": "y"})
    assert again.json()["count"] == 2
    assert (await api.client.post("/api/probe/record", headers=headers,
                                  json={"id": other})).json()["count"] == 1
    stored = rows_for(api.database, rid)
    assert [(r[0], r[2], r[4]) for r in stored] == [(rid, first.json()["pid"], 300),
                                                    (rid, first.json()["pid"], 1)]


async def test_bad_bodies_are_422_and_store_nothing(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAPTO_PROBE_TOKEN", TOKEN)
    headers = {"X-Adapto-Probe": TOKEN}
    for body in ({"id": ""}, {"payload": "x"}, {"id": "a" * 201}, {"id": "a", "extra": 1}):
        answer = await api.client.post("/api/probe/record", headers=headers, json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert api.database.owner_execute(
        "select count(*) from probe_requests where request_id in ('', 'a')") == [(0,)]


def test_the_table_has_rls_and_a_policy_and_users_do_not_see_rows(database: Database) -> None:
    rid = f"t-{uuid.uuid4().hex}"
    database.owner_execute(
        "insert into probe_requests (request_id, port, pid, release, payload_bytes)"
        " values (%s, 1, 1, 'r', 0)", (rid,))
    (secured,), = database.owner_execute(
        "select relrowsecurity from pg_class where oid = 'public.probe_requests'::regclass")
    assert secured
    policies = database.owner_execute(
        "select policyname from pg_policies where tablename = 'probe_requests'")
    assert policies
    with psycopg.connect(database.urls.app, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("set local role authenticated")
            conn.execute("select set_config('request.jwt.claims',"
                         " '{\"role\":\"authenticated\",\"sub\":\"" + str(uuid.uuid4())
                         + "\"}', true)")
            assert conn.execute("select count(*) from probe_requests").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("set local role anon")
            conn.execute("select count(*) from probe_requests")
