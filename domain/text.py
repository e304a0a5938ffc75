"""Names and references typed by people: NFKC-normalised and trimmed; control and format characters
(zero-width spaces, RTL marks, NUL) refused, and a blank one refused where one is required (a
reviewer that is only whitespace or an RTL mark names nobody). Pure."""

from __future__ import annotations

import unicodedata

from domain.errors import InvalidInput

REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def clean_text(value: str, field: str, max_length: int = 200, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise InvalidInput(field, "must be text")
    text = unicodedata.normalize("NFKC", value).strip()
    bad = next((c for c in text if unicodedata.category(c) in REFUSED_CATEGORIES), None)
    if bad is not None:
        raise InvalidInput(field, f"contains the control or format character U+{ord(bad):04X}")
    if required and not text:
        raise InvalidInput(field, "is blank (or only invisible characters)")
    if len(text) > max_length:
        raise InvalidInput(field, f"is longer than {max_length} characters")
    return text
