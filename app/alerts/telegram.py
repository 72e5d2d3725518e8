"""Telegram Bot API `sendMessage` (docs/alerts.md): the only place that talks to Telegram.

`POST {api}/bot<token>/sendMessage` with `chat_id` and `text`; a 429 carries
`parameters.retry_after` seconds. The bot token is part of the URL, so no error message here ever
includes the URL.
"""

from __future__ import annotations

import requests

MAX_TEXT = 4096  # Telegram's limit for one message


class TelegramError(Exception):
    """A message was not sent."""


class RetryAfter(TelegramError):
    """Telegram asks us to wait (429 with parameters.retry_after)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Telegram asks to retry after {seconds:g}s")
        self.seconds = seconds


class Refused(TelegramError):
    """Telegram refused the message for good (wrong token, unknown chat, bot blocked): fix the settings."""


class Unavailable(TelegramError):
    """Telegram did not answer or failed (network, 5xx): worth retrying later."""


class TelegramClient:
    """One bot writing to one chat, over a keep-alive session."""

    def __init__(self, api_url: str, bot_token: str, chat_id: str, *, timeout: float = 10.0) -> None:
        self._url = f"{api_url.rstrip('/')}/bot{bot_token}/sendMessage"
        self.chat_id = chat_id
        self.timeout = timeout
        self.session = requests.Session()

    def send(self, text: str) -> None:
        """Send one message; raises RetryAfter, Refused or Unavailable."""
        payload = {"chat_id": self.chat_id, "text": text[:MAX_TEXT], "disable_web_page_preview": True}
        try:
            response = self.session.post(self._url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"Telegram unreachable ({type(exc).__name__})") from None
        if response.status_code == 200:
            return
        description, retry_after = _error_details(response)
        if response.status_code == 429:
            raise RetryAfter(retry_after if retry_after is not None else 5.0)
        if response.status_code >= 500:
            raise Unavailable(f"Telegram answered HTTP {response.status_code}")
        hint = {
            401: "check TELEGRAM_BOT_TOKEN",
            403: "the bot cannot write to TELEGRAM_CHAT_ID (add it to the chat, or /start it)",
            404: "check TELEGRAM_BOT_TOKEN",
            400: "check TELEGRAM_CHAT_ID",
        }.get(response.status_code, "check the Telegram settings")
        raise Refused(f"Telegram refused the message (HTTP {response.status_code}: {description}); {hint}")


def _error_details(response: requests.Response) -> tuple[str, float | None]:
    """Telegram's `description` and `parameters.retry_after`, if the answer carries them."""
    try:
        body = response.json()
    except ValueError:
        return "no description", None
    if not isinstance(body, dict):
        return "no description", None
    description = str(body.get("description") or "no description")[:200]
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    retry_after = parameters.get("retry_after")
    if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool) and 0 <= retry_after <= 3600:
        return description, float(retry_after)
    return description, None
