"""Text field rules shared by the customer-service request models."""

from __future__ import annotations

from livecommerce.api.types import NON_BLANK

__all__ = ["KEYWORD", "NON_BLANK"]

# A letter or a digit: Latin (with accents), Greek, Cyrillic, CJK ideographs, kana, hangul,
# fullwidth ones — ranges rather than ``\w``, so the JSON Schema's ECMA-262 regex means the same
# as Python's. Punctuation (，。！?), symbols and emoji are not.
WORD_CHAR = (
    r"0-9A-Za-z\u00AA\u00B5\u00BA\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F"
    r"\u0386\u0388-\u03FF\u0400-\u0481\u048A-\u04FF"
    r"\u3005\u3007\u3041-\u3096\u30A1-\u30FA\u30FC-\u30FF"
    r"\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7A3\uF900-\uFAFF"
    r"\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A"
)
# A FAQ keyword holds at least one letter or digit (and no NUL): one made of punctuation alone
# ("，") would match almost every message.
KEYWORD = r"^[^\x00]*[" + WORD_CHAR + r"][^\x00]*$"
