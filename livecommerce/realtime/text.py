"""Comment text cleaning that keeps valid Unicode sequences and removes invisible tricks.

:func:`clean_text` keeps:

* every emoji sequence Unicode recommends (RGI) — ZWJ sequences (👨‍👩‍👧), keycaps (1️⃣), skin
  tones (👍🏽), tag sequences (🏴󠁧󠁢󠁥󠁮󠁧󠁿), presentation selectors (❤️) — found by the ``emoji``
  package, whose data follows each Unicode release; a zero-width joiner between two emoji that
  form no RGI sequence (a newer or vendor one) is kept too;
* combining marks, and one variation selector after a base character (a variation sequence);
* the zero-width joiner and non-joiner *between two letters or marks*, where Arabic, Persian and
  the Indic scripts need them (``می‌خواهم``);
* the visible prepended concatenation marks (Arabic number sign ...);

and removes:

* control characters (C0, C1, DEL; whitespace controls become a space), surrogates, private use
  characters and noncharacters;
* bidirectional formatting — embeddings, overrides, isolates, LRM/RLM/ALM — which can reorder
  what other viewers see;
* every other format character: zero-width space, word joiner, BOM, soft hyphen, invisible
  operators, tag characters outside an emoji tag sequence ("ASCII smuggling"), a joiner that
  joins nothing, and variation selectors past the first after a base;

then collapses runs of whitespace to one space and trims the ends.
"""

from __future__ import annotations

import unicodedata

import emoji

ZWJ, ZWNJ = "\u200d", "\u200c"
_PREPENDED_MARKS = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)
_DROPPED_CATEGORIES = frozenset({"Cc", "Cs", "Co"})


def _is_variation_selector(ch: str) -> bool:
    cp = ord(ch)
    return 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def _joinable(ch: str) -> bool:
    """A letter or a mark: what a ZWJ/ZWNJ may sit between outside emoji."""
    return unicodedata.category(ch)[0] in "LM"


def clean_text(text: str) -> str:
    """``text`` as a comment: valid sequences kept, invisible tricks removed (module docstring),
    whitespace collapsed. Idempotent: ``clean_text(clean_text(t)) == clean_text(t)``."""
    spans = {m["match_start"]: m["match_end"] for m in emoji.emoji_list(text)}
    out: list[str] = []
    prev_emoji = False  # the last character kept ends an emoji sequence
    i, n = 0, len(text)
    while i < n:
        end = spans.get(i)
        if end is not None:  # a whole emoji sequence, as the emoji data knows it
            out.append(text[i:end])
            prev_emoji = True
            i = end
            continue
        ch = text[i]
        i += 1
        kept = _keep(ch, out, prev_emoji, text[i] if i < n else "", i in spans)
        if kept:
            out.append(kept)
            prev_emoji = False
    return " ".join("".join(out).split())


def _keep(ch: str, out: list[str], prev_emoji: bool, nxt: str, next_emoji: bool) -> str:
    """What ``ch`` (outside an emoji sequence) becomes: itself, a space, or "" (dropped)."""
    if ch.isspace():
        return " "
    cat = unicodedata.category(ch)
    if cat in _DROPPED_CATEGORIES or _is_noncharacter(ord(ch)):
        return ""
    prev = out[-1][-1] if out else ""
    if cat == "Cf":
        if ch in _PREPENDED_MARKS:
            return ch
        if ch in (ZWJ, ZWNJ) and prev and nxt:
            if _joinable(prev) and _joinable(nxt):
                return ch
            if ch == ZWJ and prev_emoji and next_emoji:
                return ch
        return ""
    # A variation selector only right after a base character (not after whitespace, an emoji
    # sequence, which has its own, or another selector).
    if _is_variation_selector(ch) and (
        not prev or prev.isspace() or _is_variation_selector(prev) or prev_emoji
    ):
        return ""
    return ch
