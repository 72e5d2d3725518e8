"""Text from outside (a broker's reject reason, an error a feed or a consumer sent) made safe to show as one line.

A newline in a reason would make a second, convincing line ("FILLED kite 999999 RELIANCE BUY ...") and a
right-to-left override would reverse an account id, so every character that breaks a line, controls the
terminal or reorders text is escaped as `\\uXXXX` (docs/alerts.md "Text from brokers"). The rule is plain
data (`NEUTRALIZED`), so the blotter can apply the same one.
"""

from __future__ import annotations

import re

#: What is escaped, as (first, last) code points: C0 controls (tab, newline, carriage return included),
#: DEL and C1 controls (NEL included), the bidi marks, embeddings, overrides and isolates, the line and
#: paragraph separators, and lone UTF-16 surrogates (which no UTF-8 text can carry).
NEUTRALIZED = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x2028, 0x202E),
    (0x2066, 0x2069),
    (0xD800, 0xDFFF),
)

_PATTERN = re.compile("[" + "".join(f"\\u{first:04x}-\\u{last:04x}" for first, last in NEUTRALIZED) + "]")


def _escape(match: re.Match[str]) -> str:
    """One neutralized character as a visible `\\uXXXX` (upper-case hex, always four digits here)."""
    return f"\\u{ord(match.group()):04X}"


def one_line(text: str) -> str:
    """The text with every NEUTRALIZED character escaped: one line, shown in the order it was written."""
    return _PATTERN.sub(_escape, text)
