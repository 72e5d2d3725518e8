"""app/text.py one_line: broker text shown as one line, in the order it was written (docs/alerts.md)."""

from __future__ import annotations

import pytest

from app.text import NEUTRALIZED, one_line

#: Every character the rule names (docs/alerts.md "Text from brokers").
LISTED = [chr(code) for first, last in NEUTRALIZED for code in range(first, last + 1)]


@pytest.mark.parametrize(
    "char",
    ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u202e", "\u2066", "\u061c"],
)
def test_line_breaks_controls_and_bidi_characters_are_escaped(char):
    assert one_line(f"a{char}b") == f"a\\u{ord(char):04X}b"


def test_every_listed_character_is_escaped_and_nothing_of_it_is_left():
    assert set(LISTED) >= {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, 0x061C]}
    assert set(LISTED) >= {chr(c) for c in [*range(0x2028, 0x202F), *range(0x2066, 0x206A)]}
    escaped = one_line("".join(LISTED))
    assert escaped.isascii() and escaped.isprintable()
    assert escaped == "".join(f"\\u{ord(char):04X}" for char in LISTED)


def test_a_forged_second_line_and_a_reversed_account_id_stay_visible_on_one_line():
    reason = "RMS: margin exceeds\nFILLED kite 999999 RELIANCE BUY 1000/1000 [AB\u202e4321]"
    assert one_line(reason) == "RMS: margin exceeds\\u000AFILLED kite 999999 RELIANCE BUY 1000/1000 [AB\\u202E4321]"
    assert len(one_line(reason).splitlines()) == 1


def test_ordinary_text_is_left_as_written_and_the_rule_is_idempotent():
    text = "RMS: margin exceeds — ₹12,345.67 📉 👨‍👩‍👧 注文 निफ्टी \\u000A <b>*_`"  # ZWJ and Devanagari marks kept
    assert one_line(text) == text
    hostile = "a\nb\u202ec\ud800"
    assert one_line(one_line(hostile)) == one_line(hostile) == "a\\u000Ab\\u202Ec\\uD800"
