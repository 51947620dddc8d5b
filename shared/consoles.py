"""The CLI's consoles: the terminal's width on a terminal; in CI logs and pipes a wide one, where rich would
otherwise cut tables and wrap lines at 80 columns (or at a COLUMNS a CI runner sets for its own terminal)."""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200


def console(*, stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    if c.is_terminal:
        return c
    columns = os.environ.get("COLUMNS", "")
    return Console(stderr=stderr, width=max(LOG_WIDTH, int(columns) if columns.isdigit() else 0))
