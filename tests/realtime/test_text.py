"""Comment cleaning (realtime/text.py): valid Unicode sequences survive, invisible tricks go —
examples, then properties over a generated Unicode corpus (hypothesis)."""

from __future__ import annotations

import unicodedata

import emoji
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from livecommerce.realtime.text import ZWJ, ZWNJ, clean_text

BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
INVISIBLE = frozenset("\u200b\u2060\ufeff\u00ad\u2061\u2062\u2063\u2064\u180e")
# Multi-code-point RGI sequences: ZWJ, tag, keycap, skin tone, presentation selector.
SEQUENCES = sorted(e for e in emoji.EMOJI_DATA if len(e) > 1)


@pytest.mark.parametrize(
    "text",
    [
        "👨‍👩‍👧",  # family: ZWJ sequence
        "🏳️‍🌈",  # rainbow flag: VS16 + ZWJ
        "🏴󠁧󠁢󠁥󠁮󠁧󠁿",  # England: tag sequence
        "1️⃣",  # keycap
        "👍🏽",  # skin tone
        "🧑🏽‍🚀",  # astronaut, skin tone, ZWJ
        "❤️",  # emoji presentation
        "می‌خواهم",  # Persian: ZWNJ between letters
        "क्‍ष",  # Devanagari: ZWJ after virama
        "e\u0301te\u0301",  # combining acute accents
        "葛\U000e0100",  # an ideographic variation sequence
        "\u0600\u0661\u0662",  # Arabic number sign (visible format character) + digits
    ],
)
def test_valid_sequences_are_kept(text: str) -> None:
    """Each valid sequence comes out exactly as it went in."""
    assert clean_text(text) == text
    assert clean_text(f"好 {text} ok") == f"好 {text} ok"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc\u202edef", "abcdef"),  # right-to-left override
        ("a\u2066b\u2069c", "abc"),  # isolates
        ("x\u200fy", "xy"),  # RLM
        ("sp\u200bam", "spam"),  # zero-width space
        ("w\u2060j\ufeff", "wj"),  # word joiner, BOM
        ("hi\U000e0068\U000e0069", "hi"),  # tag characters smuggling ASCII
        ("\u200dstart end\u200d", "start end"),  # joiners that join nothing
        ("a \u200d b", "a b"),
        ("a\x00b\x07c\x7fd\x9be", "abcde"),  # C0, DEL, C1 controls
        (
            "line\nbreak\ttab\r\nnel\x85end",
            "line break tab nel end",
        ),  # whitespace controls become a space
        ("pri\ue000vate", "private"),  # private use
        ("x\ufe0f\ufe0f\ufe0fy", "x\ufe0fy"),  # one variation selector, not a payload
        ("\ufe0fx", "x"),
        ("  many   spaces  ", "many spaces"),
    ],
)
def test_invisible_tricks_are_removed(text: str, expected: str) -> None:
    """Bidi controls, zero-width characters, controls, stray tags/joiners/selectors go."""
    assert clean_text(text) == expected


def in_emoji(text: str, index: int) -> bool:
    return any(m["match_start"] <= index < m["match_end"] for m in emoji.emoji_list(text))


# Any code point (no lone surrogates), the troublemakers, and whole emoji sequences, mixed.
corpus = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(sorted(BIDI | INVISIBLE | {ZWJ, ZWNJ, "\ufe0f", "\U000e0067", "\x00"})),
        st.sampled_from(SEQUENCES),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(corpus)
@example("👨\u200b\u200d🦰")
@example("a\u200c\u200cb")
def test_output_has_no_invisible_tricks(text: str) -> None:
    """Whatever goes in: no control, bidi, zero-width or private-use character comes out, tags
    and variation selectors only where the emoji data or a base character allows them, and no
    leading, trailing or doubled space."""
    out = clean_text(text)
    for i, ch in enumerate(out):
        cat = unicodedata.category(ch)
        assert cat not in ("Cc", "Cs", "Co"), (text, out)
        assert ch not in BIDI, (text, out)
        assert ch not in INVISIBLE, (text, out)
        if 0xE0000 <= ord(ch) <= 0xE007F:
            assert in_emoji(out, i), (text, out)
        if ch in (ZWJ, ZWNJ):
            assert 0 < i < len(out) - 1, (text, out)
    assert out == " ".join(out.split())


@settings(max_examples=400, deadline=None)
@given(corpus)
def test_cleaning_is_idempotent(text: str) -> None:
    """Cleaning clean text changes nothing."""
    once = clean_text(text)
    assert clean_text(once) == once


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(categories=["L", "N", "P"]), max_size=10),
    st.sampled_from(SEQUENCES),
    st.text(st.characters(categories=["L", "N", "P"]), max_size=10),
)
def test_every_rgi_sequence_survives_in_any_text(before: str, seq: str, after: str) -> None:
    """Any RGI emoji sequence, between arbitrary letters, digits and punctuation (spaced off),
    comes out whole."""
    assert seq in clean_text(f"{before} {seq} {after}")


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.characters(
            categories=["L", "M", "N", "P", "S", "Zs"], exclude_characters="\ufe0e\ufe0f"
        ),
        max_size=40,
    )
)
def test_visible_text_is_unchanged(text: str) -> None:
    """Letters, combining marks, digits, punctuation and symbols pass untouched (only
    whitespace is collapsed)."""
    plain = "".join(
        ch for ch in text if not (0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF)
    )
    assert clean_text(plain) == " ".join(plain.split())
