"""/api/widget on a real PostgreSQL: per-widget CORS, visitor dialogs, owner-only settings."""

from __future__ import annotations

import uuid

import pytest
from backend_support import Api, User

pytestmark = pytest.mark.anyio

SHOP = "https://shop.example"
OTHER = "https://evil.example"
FAQ = "Возврат товара возможен в течение четырнадцати дней. Доставка бесплатная от пяти тысяч."


async def _widget(api: Api, owner: User, origins: list[str] | None = None) -> dict:
    answer = await api.client.post("/api/widget/settings", headers=owner.headers, json={
        "project_id": owner.project_id, "allowed_origins": origins or [SHOP + "/"],
        "settings": {"title": "Магазин", "greeting": "Здравствуйте!"}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type, x-widget-token"}


async def test_cors_allows_the_widgets_origins_and_refuses_others(api: Api) -> None:
    owner = await api.signup()
    widget = await _widget(api, owner)
    assert widget["allowed_origins"] == [SHOP]  # normalized: no trailing slash
    base = f"/api/widget/{widget['widget_id']}"

    allowed = await api.client.options(f"{base}/dialogs", headers=_preflight(SHOP))
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SHOP
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-widget-token" in allowed.headers["access-control-allow-headers"].lower()

    refused = await api.client.options(f"{base}/dialogs", headers=_preflight(OTHER))
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers

    config = await api.client.get(f"{base}/config", headers={"Origin": SHOP})
    assert config.status_code == 200
    assert config.headers["access-control-allow-origin"] == SHOP
    assert config.json()["settings"]["title"] == "Магазин"

    foreign = await api.client.get(f"{base}/config", headers={"Origin": OTHER})
    assert foreign.status_code == 403
    assert "access-control-allow-origin" not in foreign.headers
    # A request from another origin changes nothing either.
    started = await api.client.post(f"{base}/dialogs", headers={"Origin": OTHER})
    assert started.status_code == 403
    ((dialogs,),) = api.database.owner_execute(
        "select count(*) from dialogs where project_id = %s and channel = 'widget'",
        (owner.project_id,))
    assert dialogs == 0

    # Not a browser (no Origin): no CORS header, the public config still answers.
    plain = await api.client.get(f"{base}/config")
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


async def test_a_visitor_talks_to_the_agent_through_the_widget(api: Api) -> None:
    owner = await api.signup()
    await api.client.post("/api/knowledge/sources", headers=owner.headers, json={
        "project_id": owner.project_id, "title": "FAQ", "content": FAQ})
    widget = await _widget(api, owner)
    base = f"/api/widget/{widget['widget_id']}"
    cors = {"Origin": SHOP}

    started = await api.client.post(f"{base}/dialogs", headers=cors)
    assert started.status_code == 201
    assert started.headers["access-control-allow-origin"] == SHOP
    dialog_id, token = started.json()["dialog_id"], started.json()["visitor_token"]
    assert started.json()["greeting"] == "Здравствуйте!"

    visitor = {**cors, "X-Widget-Token": token}
    sent = await api.client.post(f"{base}/dialogs/{dialog_id}/messages", headers=visitor,
                                 json={"text": "Можно ли вернуть товар?"})
    assert sent.status_code == 201, sent.text
    reply = sent.json()["reply"]
    assert reply["role"] == "assistant" and "четырнадцати дней" in reply["content"]
    assert reply["sources"][0]["title"] == "FAQ"

    history = await api.client.get(f"{base}/dialogs/{dialog_id}/messages", headers=visitor)
    assert [m["role"] for m in history.json()["items"]] == ["user", "assistant"]

    # The owner sees the visitor's dialog among their own.
    mine = await api.client.get("/api/dialogs", headers=owner.headers,
                                params={"project_id": owner.project_id})
    assert dialog_id in {d["id"] for d in mine.json()["items"]}

    # Someone else's token, or none, gets nowhere.
    other = (await api.client.post(f"{base}/dialogs", headers=cors)).json()["visitor_token"]
    wrong = await api.client.get(f"{base}/dialogs/{dialog_id}/messages",
                                 headers={**cors, "X-Widget-Token": other})
    assert wrong.status_code == 404
    assert wrong.headers["access-control-allow-origin"] == SHOP  # the page can read why
    missing = await api.client.post(f"{base}/dialogs/{dialog_id}/messages", headers=cors,
                                    json={"text": "hi"})
    assert missing.status_code == 401

    # Invalid input: the 422 names the field, and the allowed page can read it.
    empty = await api.client.post(f"{base}/dialogs/{dialog_id}/messages", headers=visitor,
                                  json={"text": ""})
    assert empty.status_code == 422 and "text" in empty.json()["fields"]
    assert empty.headers["access-control-allow-origin"] == SHOP
    foreign = await api.client.post(f"{base}/dialogs/{dialog_id}/messages",
                                    headers={**visitor, "Origin": OTHER}, json={"text": ""})
    assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers


async def test_an_unknown_widget_is_404(api: Api) -> None:
    unknown = await api.client.get(f"/api/widget/{uuid.uuid4()}/config", headers={"Origin": SHOP})
    assert unknown.status_code == 404 and "access-control-allow-origin" not in unknown.headers
    preflight = await api.client.options(f"/api/widget/{uuid.uuid4()}/config",
                                         headers=_preflight(SHOP, "GET"))
    assert preflight.status_code == 403


async def test_only_the_owner_edits_the_widget_and_cors_follows_at_once(api: Api) -> None:
    owner, stranger = await api.signup(), await api.signup()
    widget = await _widget(api, owner)
    path = f"/api/widget/settings/{widget['widget_id']}"

    assert (await api.client.get(path, headers=stranger.headers)).status_code == 404
    hijack = await api.client.patch(path, headers=stranger.headers,
                                    json={"allowed_origins": [OTHER]})
    assert hijack.status_code == 404
    listed = await api.client.get("/api/widget/settings", headers=stranger.headers)
    assert widget["widget_id"] not in {w["widget_id"] for w in listed.json()["items"]}
    planted = await api.client.post("/api/widget/settings", headers=stranger.headers,
                                    json={"project_id": owner.project_id})
    assert planted.status_code == 404
    assert (await api.client.patch(path, json={"settings": {}})).status_code == 401

    edited = await api.client.patch(path, headers=owner.headers,
                                    json={"allowed_origins": ["HTTP://LOCALHOST:5173"]})
    assert edited.status_code == 200
    assert edited.json()["allowed_origins"] == ["http://localhost:5173"]
    assert edited.json()["settings"]["title"] == "Магазин"  # untouched

    base = f"/api/widget/{widget['widget_id']}/config"
    now_allowed = await api.client.get(base, headers={"Origin": "http://localhost:5173"})
    assert now_allowed.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert (await api.client.get(base, headers={"Origin": SHOP})).status_code == 403

    bad = await api.client.patch(path, headers=owner.headers,
                                 json={"allowed_origins": ["https://shop.example/path", "*"]})
    assert bad.status_code == 422 and "allowed_origins" in bad.json()["fields"]

    assert (await api.client.delete(path, headers=stranger.headers)).status_code == 404
    assert (await api.client.delete(path, headers=owner.headers)).status_code == 204
    gone = await api.client.get(base, headers={"Origin": "http://localhost:5173"})
    assert gone.status_code == 404


async def test_an_admin_sees_every_widget(api: Api) -> None:
    owner, admin = await api.signup(), await api.signup(admin=True)
    widget = await _widget(api, owner)
    seen = await api.client.get(f"/api/widget/settings/{widget['widget_id']}",
                                headers=admin.headers)
    assert seen.status_code == 200 and seen.json()["owner_id"] == owner.id


async def test_a_visitor_flooding_the_widget_is_rate_limited(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIDGET_RATE_LIMIT", "3")
    owner = await api.signup()
    widget = await _widget(api, owner)
    base = f"/api/widget/{widget['widget_id']}"
    answers = [await api.client.post(f"{base}/dialogs", headers={"Origin": SHOP})
               for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert answers[-1].headers["access-control-allow-origin"] == SHOP
    assert int(answers[-1].headers["retry-after"]) >= 1
