"""A minimal Telegram Bot API client over httpx, for the calls adapto makes itself.

The bot token is part of every URL (/bot<token>/<method>), so no URL is ever
put in a message: errors name the API base and the method, and every text that
leaves this module has the token (and any other secret given) replaced by ****.
"""

from __future__ import annotations

from typing import Any

from adapto_ops.errors import OperationFailed
from adapto_ops.telegram.webhook import BotCall


class BotApiError(OperationFailed):
    """The Bot API refused a call, or could not be reached (exit code 1)."""


class BotApi:
    """Calls `method` of one bot at `api_base`; answers are Telegram's `result`."""

    def __init__(self, token: str, api_base: str = "https://api.telegram.org", *,
                 timeout_s: float = 10.0, secrets: tuple[str, ...] = ()) -> None:
        import httpx

        self._token = token
        self.api_base = api_base.rstrip("/")
        self._hidden = sorted({s for s in (token, *secrets) if s}, key=len, reverse=True)
        # trust_env=False: no proxy settings from the environment see the token.
        self._client = httpx.Client(timeout=timeout_s, trust_env=False)

    def scrub(self, text: str) -> str:
        """``text`` with the token and the other secrets replaced by ****."""
        for value in self._hidden:
            text = text.replace(value, "****")
        return text

    def call(self, call: BotCall) -> Any:
        """POST the call as JSON; its `result`, or BotApiError in one line."""
        import httpx

        where = f"Bot API {call.method} at {self.api_base}"
        try:
            response = self._client.post(f"{self.api_base}/bot{self._token}/{call.method}",
                                         json=call.params)
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BotApiError(self.scrub(f"{where}: {reason}")) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or "ok" not in answer:
            raise BotApiError(self.scrub(
                f"{where}: HTTP {response.status_code}, not a Bot API answer "
                f"(is telegram.api_base right?)"))
        if not answer["ok"]:
            code = answer.get("error_code", response.status_code)
            description = " ".join(str(answer.get("description") or "no description").split())
            hint = " (the bot token is wrong or revoked)" if code == 401 else ""
            raise BotApiError(self.scrub(f"{where}: error {code}: {description}{hint}"))
        return answer.get("result")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()
