"""Telegram Bot API `sendMessage` (docs/alerts.md): the only place that talks to Telegram.

`POST {api}/bot<token>/sendMessage` with `chat_id` and plain `text` (no parse mode: nothing in it is
markup); a 429 carries `parameters.retry_after` seconds, a 400 "message is too long" refuses a text
over 4,096 UTF-16 code units. The bot token is part of the URL, so no error message here ever
includes the URL. `next_message` packs alert lines into texts Telegram takes whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import requests

#: Telegram's limit for one message's text, in UTF-16 code units (an emoji or any character beyond
#: U+FFFF counts 2): core.telegram.org/bots/api#sendmessage, "1-4096 characters after entities parsing".
MAX_TEXT = 4096
#: The marks on the parts of a line too long for one message (docs/alerts.md).
CONTINUES = " [continues]"
CONTINUED = "[continued] "


def utf16_units(text: str) -> int:
    """The length of a text as Telegram counts it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True)
class Message:
    """One text to send, and how far through the lines it goes once Telegram accepts it."""

    text: str
    #: Lines this message completes (from the first line given).
    lines: int
    #: When it carries only a part of the next line: the characters of that line sent once it is accepted.
    offset: int | None = None


def next_message(lines: Sequence[str], limit: int = MAX_TEXT, start: int = 0) -> Message:
    """The next message for these lines, whole lines joined under `limit` units, the first from `start`.

    A line that does not fit next to others starts the next message; a line that does not fit in
    a message of its own goes as parts, each marked (CONTINUES / CONTINUED), never cut short.
    """
    chosen: list[str] = []
    used = 0
    for number, line in enumerate(lines):
        begin = start if number == 0 else 0
        head = CONTINUED if begin else ""
        piece = head + line[begin:]
        needed = utf16_units(piece) + (1 if chosen else 0)  # the newline before it
        if used + needed <= limit:
            chosen.append(piece)
            used += needed
            continue
        if chosen:
            break
        cut = _fit(line[begin:], limit - utf16_units(head + CONTINUES))
        return Message(piece[: len(head) + cut] + CONTINUES, 0, begin + cut)
    return Message("\n".join(chosen), len(chosen))


def _fit(text: str, budget: int) -> int:
    """How many characters of `text` fit in `budget` units, ending after a space when one is in the second half."""
    used = 0
    for count, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > budget:
            space = text.rfind(" ", 0, count)
            return space + 1 if space >= count // 2 else max(count, 1)
    return len(text)


class TelegramError(Exception):
    """A message was not sent."""


class RetryAfter(TelegramError):
    """Telegram asks us to wait (429 with parameters.retry_after)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Telegram asks to retry after {seconds:g}s")
        self.seconds = seconds


class Refused(TelegramError):
    """Telegram refused the message for good (wrong token, unknown chat, bot blocked): fix the settings."""


class TooLong(TelegramError):
    """Telegram answered 400 "message is too long": nothing of that message was delivered."""


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
        """Send one message as given (a cut would lose lines); raises RetryAfter, TooLong, Refused or Unavailable."""
        payload = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        try:
            response = self.session.post(self._url, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            raise Unavailable(f"Telegram unreachable ({type(exc).__name__})") from None
        if response.status_code == 200:
            if _accepted(response):
                return
            # A 200 that is not Telegram's answer (a proxy's page): nothing is known to be delivered.
            raise Unavailable('Telegram answered HTTP 200 without "ok": true')
        description, retry_after = _error_details(response)
        if response.status_code == 429:
            raise RetryAfter(retry_after if retry_after is not None else 5.0)
        if response.status_code >= 500:
            raise Unavailable(f"Telegram answered HTTP {response.status_code}")
        if response.status_code == 400 and "too long" in description.lower():
            raise TooLong(f"Telegram refused the message as too long ({description})")
        hint = {
            401: "check TELEGRAM_BOT_TOKEN",
            403: "the bot cannot write to TELEGRAM_CHAT_ID (add it to the chat, or /start it)",
            404: "check TELEGRAM_BOT_TOKEN",
            400: "check TELEGRAM_CHAT_ID",
        }.get(response.status_code, "check the Telegram settings")
        raise Refused(f"Telegram refused the message (HTTP {response.status_code}: {description}); {hint}")


def _accepted(response: requests.Response) -> bool:
    """True when the answer is Telegram's success: a JSON object with "ok": true."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("ok") is True


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
