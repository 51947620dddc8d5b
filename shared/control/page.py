"""The rollout pages (list and detail) as one self-contained HTML document each.

The page carries the JSON status it was served with and draws everything from it with its inline script, then
asks the same URL for JSON every few seconds and draws again: one renderer, whether fresh or refreshed. No
external script, font or stylesheet; a Content-Security-Policy with a per-response nonce forbids them.
"""

from __future__ import annotations

import json
import secrets
from functools import cache
from html import escape
from importlib import resources
from typing import Any

from .roles import Action

REFRESH_SECONDS = 3


def wants_html(accept: str | None) -> bool:
    """True when the client asks for HTML before JSON (a browser); API clients and curl get JSON."""
    if not accept:
        return False
    html = json_ = None
    for i, part in enumerate(accept.lower().split(",")):
        kind = part.split(";")[0].strip()
        if kind in ("text/html", "application/xhtml+xml") and html is None:
            html = i
        if kind in ("application/json", "*/*") and json_ is None:
            json_ = i
    return html is not None and (json_ is None or html < json_)


@cache
def _asset(name: str) -> str:
    return resources.files("shared.control").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(data: Any) -> str:
    """JSON that cannot close the script element it sits in."""
    return json.dumps(data, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def security_headers(nonce: str) -> dict[str, str]:
    return {"Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{nonce}'; "
                                       f"style-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self' data:; "
                                       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def render(kind: str, data: dict[str, Any], *, actions: frozenset[Action], title: str) -> tuple[str, dict[str, str]]:
    """The page (``kind``: ``list`` or ``detail``) and the headers to serve it with."""
    nonce = secrets.token_urlsafe(16)
    config = {"kind": kind, "actions": sorted(a.value for a in actions), "refresh_seconds": REFRESH_SECONDS}
    body = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{escape(title)}</title>
<style nonce="{nonce}">{_asset("page.css")}</style>
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header><h1 id="title">{escape(title)}</h1><p id="updated" aria-live="polite"></p></header>
<main id="main" tabindex="-1"><noscript>This page draws the rollout's status with a script; the same URL serves
the JSON status to API clients.</noscript></main>
<script type="application/json" id="config">{_json_for_script(config)}</script>
<script type="application/json" id="status">{_json_for_script(data)}</script>
<script nonce="{nonce}">{_asset("page.js")}</script>
</body>
</html>
"""
    return body, security_headers(nonce)
