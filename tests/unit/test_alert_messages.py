"""app/alerts/telegram.py next_message: alert lines packed under Telegram's limit, whole or in marked parts."""

from __future__ import annotations

from app.alerts.telegram import CONTINUED, CONTINUES, MAX_TEXT, Message, next_message, utf16_units


def test_utf16_units_count_astral_characters_twice():
    assert utf16_units("abc") == 3
    assert utf16_units("📉") == 2
    assert utf16_units("é注₹") == 3
    assert utf16_units("👨‍👩‍👧") == 8  # three emoji and two joiners


def test_whole_lines_are_joined_up_to_the_limit_and_the_rest_waits():
    lines = ["a" * 2000, "b" * 2000, "c" * 100]
    assert next_message(lines) == Message("a" * 2000 + "\n" + "b" * 2000, 2)
    assert next_message(["a" * 2047, "b" * 2048]) == Message("a" * 2047 + "\n" + "b" * 2048, 2)  # 4,096 exactly
    assert next_message(["a" * 2048, "b" * 2048]) == Message("a" * 2048, 1)
    assert next_message(["📉" * 1024, "b" * 2048]) == Message("📉" * 1024, 1)  # 2,048 units + 1 + 2,048 > 4,096


def test_a_line_too_long_for_one_message_goes_as_marked_parts_that_rebuild_it():
    line = "RECONCILE FAILED kite: " + "🚨 margin call " * 800
    texts, start, lines = [], 0, [line, "next"]
    while True:
        message = next_message(lines, start=start)
        texts.append(message.text)
        assert utf16_units(message.text) <= MAX_TEXT
        if message.offset is None:
            break
        assert message.lines == 0 and message.offset > start
        start = message.offset
    assert message.lines == 2 and texts[-1].endswith("\nnext")
    assert texts[0].endswith(CONTINUES) and all(text.startswith(CONTINUED) for text in texts[1:])
    rebuilt = "".join(text.removeprefix(CONTINUED).removesuffix(CONTINUES) for text in texts[:-1])
    rebuilt += texts[-1].removeprefix(CONTINUED).removesuffix("\nnext")
    assert rebuilt == line
    assert all(text.removesuffix(CONTINUES).endswith(" ") for text in texts[:-1])  # cut after a space


def test_a_line_without_spaces_is_cut_between_characters_never_inside_one():
    message = next_message(["📉" * 3000])
    assert message.text == "📉" * 2042 + CONTINUES and message.offset == 2042  # 4,084 + 12 units
    assert next_message(["📉" * 3000], start=2042) == Message(CONTINUED + "📉" * 958, 1)
