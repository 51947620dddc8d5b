"""Limits every input meets before anything reads it: size and nesting depth before parsing, then every value.

An input that breaks one is refused with a :class:`RequestError` naming the limit, never an exception of another
kind: a 1,000-deep JSON document would otherwise exhaust Python's recursion (``RecursionError``), a lone surrogate
(``"\\ud800"``) would fail the first ``.encode()`` (``UnicodeEncodeError``), ``NaN`` would compare unequal to
itself and pass every range check, and a 5,000-digit integer would fail ``int()`` (CPython's digit limit).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ..domain.errors import RequestError
from ..domain.text import bad_text

MAX_BODY = 256 * 1024  # bytes of one message, event or HTTP body
MAX_DEPTH = 32  # nesting of objects and arrays; a rollout request needs 4
MAX_ITEMS = 20_000  # values in one document, all levels together


def _depth_bound(body: bytes) -> int:
    """The deepest nesting of ``body`` (brackets inside strings ignored), without parsing it."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return 0  # cannot be deeper than the number of openings
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise RequestError(f"{name} is not a number JSON allows (NaN and Infinity are refused)")


def load_json(body: bytes | str, what: str) -> Any:
    """Parse ``body`` as JSON within the limits above, then check every value (:func:`check_values`)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if len(raw) > MAX_BODY:
        raise RequestError(f"{what} is {len(raw)} bytes; at most {MAX_BODY} are accepted")
    depth = _depth_bound(raw)
    if depth > MAX_DEPTH:
        raise RequestError(f"{what} nests {depth} levels deep; at most {MAX_DEPTH} are accepted")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{what} is not UTF-8 text: byte {exc.start} is invalid") from exc
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RequestError as exc:
        raise RequestError(f"{what}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise RequestError(f"{what} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except (ValueError, RecursionError) as exc:  # an integer beyond CPython's digit limit; depth is checked above
        raise RequestError(f"{what} is not acceptable JSON: {str(exc)[:200]}") from exc
    check_values(data, what)
    return data


def check_values(data: Any, what: str) -> None:
    """Every string, key and number of a parsed document: no surrogates or stray controls, no NaN/inf, and
    within the depth and item limits (iterative, so a deep document cannot exhaust the stack)."""
    stack: list[tuple[Any, str, int]] = [(data, what, 0)]
    seen = 0
    while stack:
        value, path, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise RequestError(f"{what} holds more than {MAX_ITEMS} values")
        if depth > MAX_DEPTH:
            raise RequestError(f"{path} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            why = bad_text(value, free_text=True)
            if why:
                raise RequestError(f"{path}: {why}")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise RequestError(f"{path}: {value} is refused (only finite numbers)")
        elif isinstance(value, int):
            if abs(value) > 2**63:
                raise RequestError(f"{path}: integer out of range")
        elif isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    raise RequestError(f"{path}: key {k!r} is not text")
                why = bad_text(k)
                if why:
                    raise RequestError(f"{path}: a key holds {why}")
                stack.append((v, f"{path}.{k[:40]}", depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        else:
            raise RequestError(f"{path}: {type(value).__name__} is not a JSON value")


def text_field(value: Any, where: str, *, required: bool = True, max_length: int = 256) -> str | None:
    """A name or id read from an input: a string (or, where events carry numbers, an integer), no control
    characters, within ``max_length``. None when absent and not required."""
    if value is None or value == "":
        if required:
            raise RequestError(f"{where} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RequestError(f"{where}: expected text (got {type(value).__name__})")
    text = str(value)
    why = bad_text(text)
    if why:
        raise RequestError(f"{where}: {why}")
    if len(text) > max_length:
        raise RequestError(f"{where}: {len(text)} characters; at most {max_length}")
    return text
