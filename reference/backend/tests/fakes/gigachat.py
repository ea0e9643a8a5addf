"""A fake GigaChat: the OAuth endpoint and chat completions, checking credentials.

`POST /api/v2/oauth` wants `Authorization: Basic <auth_key>`, a uuid4 `RqUID` and
scope=GIGACHAT_API_PERS, and issues a fresh token valid `token_ttl_s`.
`POST /api/v1/chat/completions` wants a live `Bearer` token and answers with a
reply that echoes the question and the number of passages it was given.
`expire_tokens()` kills every issued token; `fail_next(status)` makes the next
completion fail with that status; `garble_next()` answers it 200 without choices.
"""

from __future__ import annotations

import ssl
import time
import uuid
from dataclasses import dataclass, field

from .base import FakeServer, Reply, Request

OAUTH_PATH = "/api/v2/oauth"
COMPLETIONS_PATH = "/api/v1/chat/completions"


@dataclass
class GigaChatCalls:
    """What the fake received."""

    oauth: list[dict[str, str]] = field(default_factory=list)
    completions: list[dict[str, object]] = field(default_factory=list)
    refused_tokens: int = 0


class FakeGigaChat(FakeServer):
    """The fake; `oauth_url` and `api_url` are what the client is configured with."""

    def __init__(
        self,
        auth_key: str = "ZmFrZS1pZDpmYWtlLXNlY3JldA==",
        token_ttl_s: float = 1800,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(tls)
        self.auth_key = auth_key
        self.token_ttl_s = token_ttl_s
        self.calls = GigaChatCalls()
        self._live: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self._failures: list[int] = []
        self._garbled = 0

    @property
    def oauth_url(self) -> str:
        """The OAuth endpoint's URL."""
        return self.url + OAUTH_PATH

    @property
    def api_url(self) -> str:
        """The API base URL (chat/completions is under it)."""
        return self.url + "/api/v1"

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid (as after its 30 minutes)."""
        with self.lock:
            self._live.clear()

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` completions with `status`."""
        with self.lock:
            self._failures.extend([status] * times)

    def garble_next(self, times: int = 1) -> None:
        """Answer the next `times` completions 200 with a body that has no choices."""
        with self.lock:
            self._garbled += times

    def handle(self, request: Request) -> Reply:
        """Route to the OAuth or completions handler."""
        if request.method == "POST" and request.path == OAUTH_PATH:
            return self._oauth(request)
        if request.method == "POST" and request.path == COMPLETIONS_PATH:
            return self._complete(request)
        return 404, {"status": 404, "message": "not found"}

    def _oauth(self, request: Request) -> Reply:
        form = request.form()
        with self.lock:
            self.calls.oauth.append({"rquid": request.headers.get("rquid", ""), **form})
        if request.headers.get("authorization") != f"Basic {self.auth_key}":
            return 401, {"code": 6, "message": "credentials doesn't match db data"}
        try:
            uuid.UUID(request.headers.get("rquid", ""), version=4)
        except ValueError:
            return 400, {"code": 5, "message": "RqUID is not a uuid4"}
        if form.get("scope") != "GIGACHAT_API_PERS":
            return 400, {"code": 7, "message": "scope is invalid"}
        token = "tok-" + uuid.uuid4().hex
        expires = time.time() + self.token_ttl_s
        with self.lock:
            self._live[token] = expires
        return 200, {"access_token": token, "expires_at": int(expires * 1000)}

    def _complete(self, request: Request) -> Reply:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        with self.lock:
            alive = auth.startswith("Bearer ") and self._live.get(token, 0) > time.time()
            if not alive:
                self.calls.refused_tokens += 1
                return 401, {"status": 401, "message": "Token has expired"}
            failure = self._failures.pop(0) if self._failures else None
            garbled = failure is None and self._garbled > 0
            if garbled:
                self._garbled -= 1
        if garbled:
            return 200, {"choices": [], "object": "chat.completion"}
        if failure is not None:
            return failure, {"status": failure, "message": "injected failure"}
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return 422, {"status": 422, "message": "messages required"}
        with self.lock:
            self.calls.completions.append(body)
        messages = body["messages"]
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        passages = system.count("\n[") + system.startswith("[")
        content = f"FAKE ANSWER to «{question}» from {passages} passages"
        return 200, {
            "choices": [
                {"message": {"role": "assistant", "content": content}, "index": 0,
                 "finish_reason": "stop"}
            ],
            "created": int(time.time()),
            "model": body.get("model", "GigaChat"),
            "object": "chat.completion",
        }
