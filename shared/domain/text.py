"""What text an input may hold: the one rule for names, ids and free text alike."""

from __future__ import annotations

MAX_TEXT = 64 * 1024  # characters of one string
_FREE_TEXT_CONTROLS = frozenset("\t\n\r")  # allowed in free text (a script), never in a name or an id


def bad_text(value: str, *, free_text: bool = False) -> str | None:
    """Why ``value`` is refused as text, or None: lone surrogates, control characters (free text may hold tabs
    and line breaks), over-long strings."""
    if len(value) > MAX_TEXT:
        return f"{len(value)} characters; at most {MAX_TEXT}"
    for i, ch in enumerate(value):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return f"a lone surrogate (U+{code:04X}) at character {i}"
        if (code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029)) and not (
                free_text and ch in _FREE_TEXT_CONTROLS):
            return f"a control character (U+{code:04X}) at character {i}"
    return None


def check_name(value: str) -> str:
    """A pydantic validator body for names and ids: ValueError naming what is wrong."""
    why = bad_text(value)
    if why:
        raise ValueError(f"holds {why}")
    return value
