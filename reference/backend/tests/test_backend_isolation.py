"""A user never reads or writes another user's rows, guessed ids included; admins see all."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from aiplatform.db import as_user
from backend_support import Api, User

pytestmark = pytest.mark.anyio


async def _post(api: Api, user: User, dialog_id: str, text: str) -> dict:
    answer = await api.client.post(f"/api/chat/{dialog_id}/messages", headers=user.headers,
                                   json={"content": text})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_another_users_rows_are_invisible_and_untouchable(api: Api) -> None:
    alice, bob = await api.signup(), await api.signup()
    dialog = await api.dialog(alice, "alice's")
    await _post(api, alice, dialog["id"], "secret of alice")
    h = bob.headers
    c = api.client
    did = dialog["id"]

    assert (await c.get("/api/dialogs", headers=h)).json()["items"] == []
    assert [p["id"] for p in (await c.get("/api/projects", headers=h)).json()["items"]] == [
        bob.project_id]
    # Guessed (here: known) ids of alice's rows read exactly like ids that do not exist.
    for answer in (
        await c.get(f"/api/dialogs/{did}", headers=h),
        await c.patch(f"/api/dialogs/{did}", headers=h, json={"title": "mine now"}),
        await c.delete(f"/api/dialogs/{did}", headers=h),
        await c.get(f"/api/chat/{did}/messages", headers=h),
        await c.post(f"/api/chat/{did}/messages", headers=h, json={"content": "intrusion"}),
        await c.post("/api/dialogs", headers=h,
                     json={"project_id": alice.project_id, "title": "in alice's project"}),
    ):
        assert answer.status_code == 404, answer.text
    # Nothing changed for alice.
    messages = (await c.get(f"/api/chat/{did}/messages", headers=alice.headers)).json()["items"]
    assert [m["content"] for m in messages] == ["secret of alice"]
    mine = await c.get(f"/api/dialogs/{did}", headers=alice.headers)
    assert mine.json()["title"] == "alice's"
    assert (await c.get("/api/dialogs", headers=alice.headers)).json()["items"][0]["id"] == did


async def test_the_database_refuses_what_the_api_would_not_stop(api: Api) -> None:
    """Below the API: queries as bob, aimed straight at alice's rows."""
    alice, bob = await api.signup(), await api.signup()
    dialog = await api.dialog(alice)
    bob_claims = {"sub": bob.id, "role": "authenticated"}
    async with as_user(bob_claims) as conn:
        cursor = await conn.execute("update dialogs set title = 'x' where id = %s",
                                    (dialog["id"],))
        assert cursor.rowcount == 0
        cursor = await conn.execute("select count(*) as n from dialogs where owner_id = %s",
                                    (alice.id,))
        assert (await cursor.fetchone())["n"] == 0
        cursor = await conn.execute("select id, email from users")
        assert [str(r["id"]) for r in await cursor.fetchall()] == [bob.id]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_user(bob_claims) as conn:
            await conn.execute(
                "insert into chat_messages (dialog_id, owner_id, role, content)"
                " values (%s, %s, 'user', 'forged')", (dialog["id"], alice.id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_user(bob_claims) as conn:
            # Claiming alice's id as owner of a new dialog in bob's own project.
            await conn.execute("insert into dialogs (owner_id, project_id) values (%s, %s)",
                               (alice.id, bob.project_id))
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_user(bob_claims) as conn:
            await conn.execute("select password_hash from users")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with as_user(bob_claims) as conn:
            await conn.execute("update users set is_admin = true")
    with pytest.raises(PermissionError):
        async with as_user({"sub": bob.id, "role": "postgres"}):
            pass


async def test_an_admin_sees_and_answers_everything(api: Api) -> None:
    alice, bob = await api.signup(), await api.signup()
    admin = await api.signup(admin=True)
    dialogs = [await api.dialog(alice), await api.dialog(bob)]
    seen = set()
    offset: int | None = 0
    while offset is not None:
        answer = await api.client.get("/api/dialogs", headers=admin.headers,
                                      params={"limit": 100, "offset": offset})
        seen |= {d["id"] for d in answer.json()["items"]}
        offset = answer.json()["next_offset"]
    assert {d["id"] for d in dialogs} <= seen
    reply = await _post(api, admin, dialogs[0]["id"], "operator here")
    # The admin's message belongs to alice's dialog, so alice sees it, as operator.
    assert (reply["role"], reply["owner_id"]) == ("operator", alice.id)
    listed = await api.client.get(f"/api/chat/{dialogs[0]['id']}/messages",
                                  headers=alice.headers)
    assert [m["content"] for m in listed.json()["items"]] == ["operator here"]
    me = await api.client.get("/api/auth/me", headers=admin.headers)
    assert me.json()["is_admin"] is True


async def test_lists_are_paginated(api: Api) -> None:
    user = await api.signup()
    made = [await api.dialog(user, f"d{i}") for i in range(5)]
    dialog_id = made[0]["id"]
    for i in range(5):
        await _post(api, user, dialog_id, f"m{i}")
    pages = []
    offset: int | None = 0
    while offset is not None:
        answer = await api.client.get("/api/dialogs", headers=user.headers,
                                      params={"limit": 2, "offset": offset})
        assert answer.status_code == 200
        body = answer.json()
        assert body["limit"] == 2 and len(body["items"]) <= 2
        pages.append([d["title"] for d in body["items"]])
        offset = body["next_offset"]
    assert pages == [["d4", "d3"], ["d2", "d1"], ["d0"]]  # newest first
    answer = await api.client.get(f"/api/chat/{dialog_id}/messages", headers=user.headers,
                                  params={"limit": 3, "offset": 3})
    assert [m["content"] for m in answer.json()["items"]] == ["m3", "m4"]
    assert answer.json()["next_offset"] is None
    by_project = await api.client.get("/api/dialogs", headers=user.headers,
                                      params={"project_id": str(uuid.uuid4())})
    assert by_project.json()["items"] == []


async def test_422_names_the_fields_of_lists_and_bodies(api: Api) -> None:
    user = await api.signup()
    answer = await api.client.get("/api/dialogs", headers=user.headers,
                                  params={"limit": 0, "offset": -1, "project_id": "nope"})
    assert answer.status_code == 422
    assert set(answer.json()["fields"]) == {"limit", "offset", "project_id"}
    answer = await api.client.post("/api/dialogs", headers=user.headers, json={"title": 5})
    assert answer.status_code == 422
    assert set(answer.json()["fields"]) == {"project_id", "title"}
    answer = await api.client.post(f"/api/chat/{uuid.uuid4()}/messages", headers=user.headers,
                                   json={"content": ""})
    assert answer.status_code == 422 and set(answer.json()["fields"]) == {"content"}
    answer = await api.client.get("/api/chat/not-a-uuid/messages", headers=user.headers)
    assert answer.status_code == 422 and set(answer.json()["fields"]) == {"dialog_id"}
