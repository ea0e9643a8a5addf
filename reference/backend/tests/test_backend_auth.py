"""/api/auth: sessions, Supabase-format tokens, and every bad token is a 401."""

from __future__ import annotations

import time

import jwt
import pytest
from aiplatform.auth.tokens import issue_access_token
from backend_support import JWT_SECRET, PASSWORD, Api, Database, make_api

pytestmark = pytest.mark.anyio


async def test_signup_login_refresh_me(api: Api) -> None:
    user = await api.signup()
    claims = jwt.decode(user.token, JWT_SECRET, algorithms=["HS256"], audience="authenticated")
    assert {k: claims[k] for k in ("sub", "role", "aud", "email")} == {
        "sub": user.id, "role": "authenticated", "aud": "authenticated", "email": user.email}
    assert claims["exp"] > claims["iat"]

    me = await api.client.get("/api/auth/me", headers=user.headers)
    assert me.status_code == 200
    assert me.json()["id"] == user.id and "password_hash" not in me.json()

    login = await api.client.post("/api/auth/login",
                                  json={"email": user.email.upper(), "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["id"] == user.id

    refreshed = await api.client.post("/api/auth/refresh",
                                      json={"refresh_token": user.refresh_token})
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"] != user.refresh_token
    # A refresh token works once: a stolen, replayed one is refused.
    again = await api.client.post("/api/auth/refresh", json={"refresh_token": user.refresh_token})
    assert again.status_code == 401

    # After logout the newest refresh token is dead too.
    newest = refreshed.json()["refresh_token"]
    out = await api.client.post("/api/auth/logout", json={"refresh_token": newest})
    assert out.status_code == 204
    after = await api.client.post("/api/auth/refresh", json={"refresh_token": newest})
    assert after.status_code == 401


async def test_passwords_are_stored_as_argon2(api: Api) -> None:
    user = await api.signup()
    ((stored,),) = api.database.owner_execute(
        "select password_hash from users where id = %s", (user.id,))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_wrong_password_unknown_email_and_duplicate(api: Api) -> None:
    user = await api.signup()
    wrong = await api.client.post("/api/auth/login",
                                  json={"email": user.email, "password": "wrong password"})
    unknown = await api.client.post("/api/auth/login",
                                    json={"email": "nobody@example.test", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()  # the answer does not say which one was wrong
    duplicate = await api.client.post("/api/auth/signup",
                                      json={"email": user.email, "password": PASSWORD})
    assert duplicate.status_code == 409


def _tokens(user_id: str) -> dict[str, str | None]:
    now = time.time()
    good = {"sub": user_id, "role": "authenticated", "aud": "authenticated",
            "email": "x@example.test", "iat": int(now), "exp": int(now) + 600}
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "forged": jwt.encode(good, "another-secret-as-long-as-ours-is!!", algorithm="HS256"),
        "expired": issue_access_token(JWT_SECRET, user_id, "x@example.test", 60, now=now - 3600),
        "alg none": jwt.encode(good, None, algorithm="none"),
        "wrong audience": jwt.encode({**good, "aud": "other"}, JWT_SECRET, algorithm="HS256"),
        "service role": jwt.encode({**good, "role": "service_role"}, JWT_SECRET,
                                   algorithm="HS256"),
        "no exp": jwt.encode({k: v for k, v in good.items() if k != "exp"}, JWT_SECRET,
                             algorithm="HS256"),
    }


@pytest.mark.parametrize("kind", list(_tokens("00000000-0000-0000-0000-000000000000")))
async def test_bad_tokens_get_401(api: Api, kind: str) -> None:
    user = await api.signup()
    token = _tokens(user.id)[kind]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("/api/auth/me", "/api/dialogs", "/api/projects",
                 f"/api/chat/{'0' * 8}-0000-0000-0000-{'0' * 12}/messages"):
        answer = await api.client.get(path, headers=headers)
        assert answer.status_code == 401, (kind, path, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"


async def test_422_names_the_fields(api: Api) -> None:
    answer = await api.client.post("/api/auth/signup",
                                   json={"email": "not-an-email", "password": "short"})
    assert answer.status_code == 422
    body = answer.json()
    assert body["error"] == "invalid input"
    assert set(body["fields"]) == {"email", "password"}
    extra = await api.client.post("/api/auth/login",
                                  json={"email": "a@b.cd", "password": PASSWORD, "pasword": 1})
    assert extra.status_code == 422 and set(extra.json()["fields"]) == {"pasword"}
    not_json = await api.client.post("/api/auth/login", content=b"{",
                                     headers={"content-type": "application/json"})
    assert not_json.status_code == 422


async def test_auth_endpoints_are_rate_limited(database: Database) -> None:
    async with make_api(database, auth_rate_limit=3, auth_rate_window_s=60) as api:
        body = {"email": "nobody@example.test", "password": PASSWORD}
        codes = [(await api.client.post("/api/auth/login", json=body)).status_code
                 for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        limited = await api.client.post("/api/auth/login", json=body)
        assert int(limited.headers["retry-after"]) >= 1
        # Per client address: the same limit does not lock out someone behind
        # another address (X-Real-IP from the loopback proxy).
        other = await api.client.post("/api/auth/login", json=body,
                                      headers={"X-Real-IP": "203.0.113.9"})
        assert other.status_code == 401
