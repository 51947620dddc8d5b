"""The CLI's consoles: the terminal's width on a terminal, and a wide one in CI logs and pipes, where rich would
otherwise cut tables and wrap lines at 80 columns (COLUMNS, when set, still wins)."""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200


def console(*, stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    if c.is_terminal or os.environ.get("COLUMNS"):
        return c
    return Console(stderr=stderr, width=LOG_WIDTH)
