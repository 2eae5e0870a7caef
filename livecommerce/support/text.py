"""Text field rules shared by the customer-service request models."""

from __future__ import annotations

# Not blank and no NUL character, as one pattern: a second ``Meta`` (``NO_NUL``) would replace
# the first one's pattern in the JSON Schema, so the document would not say both.
NON_BLANK = r"^\s*[^\x00\s][^\x00]*$"
