"""A fake Telegram Bot API on loopback: sendMessage and the webhook methods, as documented.

https://core.telegram.org/bots/api#sendmessage: POST /bot<token>/sendMessage
with chat_id and text (JSON or form), answered {"ok": true, "result": Message};
errors are {"ok": false, "error_code": N, "description": "..."}, and flood
control is 429 with parameters.retry_after. The monitor's real client talks
to it through the inventory's `telegram_api_base`.

setWebhook / getWebhookInfo / deleteWebhook (#setwebhook, #getwebhookinfo,
#deletewebhook): setWebhook stores url, secret_token, allowed_updates and
max_connections (recorded in `webhook`, which the tests read: Telegram never
shows the secret back) and answers {"ok": true, "result": true, "description":
"Webhook was set"}; a non-HTTPS url or a secret token outside [A-Za-z0-9_-]{1,256}
is a 400 as on the real API. getWebhookInfo answers the WebhookInfo object;
`pending_update_count` and `last_error` are set by tests to play Telegram's side.
`adapto telegram webhook` talks to it through the inventory's telegram.api_base.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

METHODS = ("sendMessage", "setWebhook", "getWebhookInfo", "deleteWebhook")


@dataclass
class Received:
    chat_id: str
    text: str
    at: float  # time.time() when it arrived


@dataclass
class FakeTelegram:
    token: str
    chat_id: str = ""
    messages: list[Received] = field(default_factory=list)
    # setWebhook's parameters as received (secret_token included); {} when none is set.
    webhook: dict[str, Any] = field(default_factory=dict)
    pending_update_count: int = 0
    # (unix date, message) of the last failed delivery, as getWebhookInfo reports it.
    last_error: tuple[int, str] | None = None
    # Every (method, parameters) received with the right token, in order.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Answers to give before behaving normally again: (HTTP status, retry_after or None).
    scripted: list[tuple[int, int | None]] = field(default_factory=list)
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def api_base(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def texts(self) -> list[str]:
        with self._lock:
            return [m.text for m in self.messages]

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.texts()) >= count:
                return True
            time.sleep(0.05)
        return len(self.texts()) >= count

    def answer(self, path: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests += 1
            if self.scripted:
                status, retry_after = self.scripted.pop(0)
                if status == 429:
                    return 429, {"ok": False, "error_code": 429,
                                 "description": f"Too Many Requests: retry after {retry_after}",
                                 "parameters": {"retry_after": retry_after}}
                return status, {"ok": False, "error_code": status,
                                "description": "Internal Server Error"}
        route = re.fullmatch(r"/bot([^/]*)/([A-Za-z]+)", path.split("?")[0])
        if route is None or route[2] not in METHODS:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if route[1] != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        if content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        else:
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.calls.append((route[2], dict(params)))
        if route[2] != "sendMessage":
            return self._webhook_method(route[2], params)
        if str(params.get("chat_id")) != self.chat_id:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: chat not found"}
        text = str(params.get("text") or "")
        if not text:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: message text is empty"}
        with self._lock:
            self.messages.append(Received(str(params["chat_id"]), text, time.time()))
            message_id = len(self.messages)
        return 200, {"ok": True, "result": {
            "message_id": message_id, "date": int(time.time()), "text": text,
            "chat": {"id": int(self.chat_id) if self.chat_id.lstrip("-").isdigit()
                     else self.chat_id, "type": "private"},
            "from": {"id": 1, "is_bot": True, "first_name": "adapto-test"}}}

    def _webhook_method(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "getWebhookInfo":
            return 200, {"ok": True, "result": self.webhook_info()}
        if params.get("drop_pending_updates") in (True, "true", "True"):
            with self._lock:
                self.pending_update_count = 0
        if method == "deleteWebhook":
            with self._lock:
                had, self.webhook = bool(self.webhook), {}
            return 200, {"ok": True, "result": True,
                         "description": "Webhook was deleted" if had
                         else "Webhook is already deleted"}
        url = str(params.get("url") or "")
        if not url:  # setWebhook with an empty url removes the webhook
            with self._lock:
                self.webhook = {}
            return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
        if not url.startswith("https://"):
            return 400, {"ok": False, "error_code": 400, "description":
                         "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"}
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            return 400, {"ok": False, "error_code": 400, "description":
                         "Bad Request: secret token contains unallowed characters"}
        allowed = params.get("allowed_updates")
        if isinstance(allowed, str):  # form-encoded: a JSON-serialized array
            allowed = json.loads(allowed)
        with self._lock:
            self.webhook = {"url": url, "secret_token": secret, "allowed_updates": allowed,
                            "max_connections": int(params.get("max_connections") or 40)}
        return 200, {"ok": True, "result": True, "description": "Webhook was set"}

    def webhook_info(self) -> dict[str, Any]:
        """The WebhookInfo object getWebhookInfo answers (never the secret token)."""
        with self._lock:
            info: dict[str, Any] = {"url": self.webhook.get("url", ""),
                                    "has_custom_certificate": False,
                                    "pending_update_count": self.pending_update_count}
            if self.webhook:
                info["max_connections"] = self.webhook["max_connections"]
                info["ip_address"] = "127.0.0.1"
                if self.webhook.get("allowed_updates") is not None:
                    info["allowed_updates"] = self.webhook["allowed_updates"]
            if self.last_error is not None:
                info["last_error_date"], info["last_error_message"] = self.last_error
        return info

    def start(self, address: str = "127.0.0.1") -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the Bot API takes GET too (getWebhookInfo)
                self.do_POST()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload = fake.answer(self.path, self.rfile.read(length),
                                              self.headers.get("Content-Type") or "")
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures
                pass

        self._server = ThreadingHTTPServer((address, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
