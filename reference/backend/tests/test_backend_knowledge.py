"""/api/knowledge and /api/agent on a real PostgreSQL: chunks, FTS ranking, answers, isolation."""

# ruff: noqa: RUF001 - the Russian test texts are meant to be Cyrillic.
from __future__ import annotations

import uuid

import pytest
from backend_support import Api, Database, User, make_api
from fakes.gigachat import FakeGigaChat

pytestmark = pytest.mark.anyio

DELIVERY = (
    "Доставка по Москве занимает один день. Доставка в регионы России занимает от трёх "
    "до семи дней. Стоимость доставки в регионы считается по весу заказа."
)
PAYMENT = "Оплатить заказ можно банковской картой или по счёту. Доставка оплачивается отдельно."
ABOUT = "Наша компания работает с 2015 года. Офис находится в Москве на Тверской улице."


async def _add(api: Api, user: User, title: str, content: str, project: str | None = None) -> dict:
    answer = await api.client.post("/api/knowledge/sources", headers=user.headers, json={
        "project_id": project or user.project_id, "title": title, "content": content})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_source_is_chunked_listed_and_deleted_with_its_chunks(api: Api) -> None:
    user = await api.signup()
    long_text = "\n\n".join(f"Абзац {i}. " + "Текст про доставку товаров. " * 20 for i in range(6))
    source = await _add(api, user, "Длинный", long_text)
    assert source["chunks"] > 1 and source["chars"] == len(long_text)
    ((count, longest),) = api.database.owner_execute(
        "select count(*), max(length(content)) from knowledge_chunks where source_id = %s",
        (source["id"],))
    assert count == source["chunks"] and longest <= 800

    listed = await api.client.get("/api/knowledge/sources", headers=user.headers,
                                  params={"project_id": user.project_id})
    assert [s["id"] for s in listed.json()["items"]] == [source["id"]]
    assert listed.json()["items"][0]["chunks"] == count

    gone = await api.client.delete(f"/api/knowledge/sources/{source['id']}", headers=user.headers)
    assert gone.status_code == 204
    ((left,),) = api.database.owner_execute(
        "select count(*) from knowledge_chunks where source_id = %s", (source["id"],))
    assert left == 0
    again = await api.client.delete(f"/api/knowledge/sources/{source['id']}", headers=user.headers)
    assert again.status_code == 404


async def test_full_text_search_ranks_the_most_relevant_chunk_first(api: Api) -> None:
    user = await api.signup()
    about = await _add(api, user, "О компании", ABOUT)
    delivery = await _add(api, user, "Доставка", DELIVERY)
    payment = await _add(api, user, "Оплата", PAYMENT)
    found = await api.client.get("/api/knowledge/search", headers=user.headers, params={
        "project_id": user.project_id, "q": "Сколько стоит доставка в регионы?"})
    assert found.status_code == 200
    items = found.json()["items"]
    # Delivery matches most words (доставк*, регион*, стоим* is not "стоит": 2 of 3);
    # payment mentions delivery once; the company text not at all.
    assert [i["source_id"] for i in items] == [delivery["id"], payment["id"]]
    assert items[0]["rank"] > items[1]["rank"] > 0
    assert about["id"] not in {i["source_id"] for i in items}

    nothing = await api.client.get("/api/knowledge/search", headers=user.headers, params={
        "project_id": user.project_id, "q": "и в на"})  # stopwords only
    assert nothing.json()["items"] == []


async def test_the_agent_answers_from_the_knowledge_base_and_cites_it(api: Api) -> None:
    user = await api.signup()
    delivery = await _add(api, user, "Доставка", DELIVERY)
    await _add(api, user, "Оплата", PAYMENT)
    answer = await api.client.post("/api/agent/ask", headers=user.headers, json={
        "project_id": user.project_id, "question": "Сколько дней доставка в регионы?"})
    assert answer.status_code == 200, answer.text
    body = answer.json()["answer"]
    assert body["provider"] == "extractive"
    assert "от трёх до семи дней" in body["text"]
    assert body["sources"][0]["source_id"] == delivery["id"]


async def test_a_web_chat_message_gets_the_agents_reply_in_the_dialog(api: Api) -> None:
    user = await api.signup()
    await _add(api, user, "Оплата", PAYMENT)
    dialog = await api.dialog(user)
    sent = await api.client.post(f"/api/chat/{dialog['id']}/messages", headers=user.headers,
                                 json={"content": "Можно оплатить картой?"})
    assert sent.status_code == 201, sent.text
    messages = (await api.client.get(f"/api/chat/{dialog['id']}/messages",
                                     headers=user.headers)).json()["items"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert "банковской картой" in messages[1]["content"]


async def test_invalid_input_names_the_fields(api: Api) -> None:
    user = await api.signup()
    answer = await api.client.post("/api/knowledge/sources", headers=user.headers,
                                   json={"project_id": "nope", "title": ""})
    assert answer.status_code == 422
    assert {"project_id", "title", "content"} <= set(answer.json()["fields"])


async def test_a_user_never_reads_or_changes_another_users_knowledge(api: Api) -> None:
    alice, bob = await api.signup(), await api.signup()
    secret = await _add(api, alice, "Секрет", "Промокод АЛИСА2026 даёт скидку десять процентов.")
    as_bob = {"headers": bob.headers}

    listed = await api.client.get("/api/knowledge/sources",
                                  params={"project_id": alice.project_id}, **as_bob)
    assert listed.status_code == 200 and listed.json()["items"] == []
    read = await api.client.get(f"/api/knowledge/sources/{secret['id']}", **as_bob)
    assert read.status_code == 404
    deleted = await api.client.delete(f"/api/knowledge/sources/{secret['id']}", **as_bob)
    assert deleted.status_code == 404
    searched = await api.client.get("/api/knowledge/search", params={
        "project_id": alice.project_id, "q": "промокод скидка"}, **as_bob)
    assert searched.json()["items"] == []
    asked = await api.client.post("/api/agent/ask", json={
        "project_id": alice.project_id, "question": "какой промокод?"}, **as_bob)
    assert asked.status_code == 404
    planted = await api.client.post("/api/knowledge/sources", json={
        "project_id": alice.project_id, "title": "x", "content": "чужой текст"}, **as_bob)
    assert planted.status_code == 404
    guessed = await api.client.get(f"/api/knowledge/sources/{uuid.uuid4()}", **as_bob)
    assert guessed.status_code == 404

    # Alice still has exactly her source, untouched.
    mine = await api.client.get("/api/knowledge/sources", headers=alice.headers,
                                params={"project_id": alice.project_id})
    assert [s["id"] for s in mine.json()["items"]] == [secret["id"]]


async def test_an_admin_reads_every_users_knowledge(api: Api) -> None:
    alice, admin = await api.signup(), await api.signup(admin=True)
    secret = await _add(api, alice, "Секрет", "Промокод БОРИС даёт скидку.")
    read = await api.client.get(f"/api/knowledge/sources/{secret['id']}", headers=admin.headers)
    assert read.status_code == 200 and read.json()["title"] == "Секрет"


async def test_without_a_token_every_knowledge_endpoint_is_401(api: Api) -> None:
    for method, path in [("GET", "/api/knowledge/sources"), ("POST", "/api/knowledge/sources"),
                         ("GET", "/api/knowledge/search"), ("POST", "/api/agent/ask")]:
        answer = await api.client.request(method, path)
        assert answer.status_code == 401, path


async def test_with_gigachat_credentials_the_agent_answers_through_gigachat(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGigaChat() as fake:
        monkeypatch.setenv("GIGACHAT_AUTH_KEY", fake.auth_key)
        monkeypatch.setenv("GIGACHAT_OAUTH_URL", fake.oauth_url)
        monkeypatch.setenv("GIGACHAT_API_URL", fake.api_url)
        user = await api.signup()
        await _add(api, user, "Доставка", DELIVERY)
        asked = []
        for _ in range(2):
            answer = await api.client.post("/api/agent/ask", headers=user.headers, json={
                "project_id": user.project_id, "question": "доставка в регионы"})
            asked.append(answer.json()["answer"])
        assert [a["provider"] for a in asked] == ["gigachat", "gigachat"]
        assert asked[0]["text"] == "FAKE ANSWER to «доставка в регионы» from 1 passages"
        assert len(fake.calls.oauth) == 1  # the token is reused
        [first, _] = fake.calls.completions
        assert "Доставка в регионы России" in first["messages"][0]["content"]

        # GigaChat down: the visitor still gets the knowledge base's answer.
        fake.fail_next(503)
        down = await api.client.post("/api/agent/ask", headers=user.headers, json={
            "project_id": user.project_id, "question": "доставка в регионы"})
        assert down.json()["answer"]["provider"] == "extractive"
        assert "регионы" in down.json()["answer"]["text"]


async def test_the_agent_stays_silent_in_web_chat_when_the_knowledge_has_nothing(
    api: Api,
) -> None:
    user = await api.signup()
    await _add(api, user, "Оплата", PAYMENT)
    dialog = await api.dialog(user)
    await api.client.post(f"/api/chat/{dialog['id']}/messages", headers=user.headers,
                          json={"content": "Какая погода на Марсе?"})
    messages = (await api.client.get(f"/api/chat/{dialog['id']}/messages",
                                     headers=user.headers)).json()["items"]
    assert [m["role"] for m in messages] == ["user"]


async def test_without_a_database_the_agent_endpoints_answer_503_first(
    database: Database,
) -> None:
    async with make_api(database, database_url=None) as api:
        for method, path in [
            ("GET", "/api/knowledge/sources"), ("POST", "/api/agent/ask"),
            ("GET", "/api/widget/settings"),
            ("GET", "/api/widget/00000000-0000-0000-0000-000000000000/config"),
            ("POST", "/api/telegram/bot/webhook"),
            ("GET", "/api/telegram/settings/00000000-0000-0000-0000-000000000000"),
        ]:
            answer = await api.client.request(method, path)
            assert (answer.status_code, answer.json()) == (
                503, {"error": "database not configured"}), path
