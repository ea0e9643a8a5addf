"""A fake Telegram Bot API on loopback: sendMessage as documented, nothing else.

https://core.telegram.org/bots/api#sendmessage: POST /bot<token>/sendMessage
with chat_id and text (JSON or form), answered {"ok": true, "result": Message};
errors are {"ok": false, "error_code": N, "description": "..."}, and flood
control is 429 with parameters.retry_after. The monitor's real client talks
to it through the inventory's `telegram_api_base`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Received:
    chat_id: str
    text: str
    at: float  # time.time() when it arrived


@dataclass
class FakeTelegram:
    token: str
    chat_id: str
    messages: list[Received] = field(default_factory=list)
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
        if path != f"/bot{self.token}/sendMessage":
            if path.endswith("/sendMessage"):
                return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        if content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        else:
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
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

    def start(self, address: str = "127.0.0.1") -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
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
