"""``shadow-rollout model rollback|versions --registry URL``: the model registry by hand."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from .consoles import console

err = console(stderr=True)
out = console()
model_app = typer.Typer(no_args_is_help=True, help="The model registry by hand: list versions, roll back.")

RegistryOpt = Annotated[str, typer.Option(
    "--registry", envvar="SHADOW_ROLLOUT_REGISTRY_URL",
    help="The model registry: https://<account>.blob.core.windows.net/<container> (identity; "
         "SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING for Azurite) or a directory.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@model_app.command("rollback")
def rollback(
    registry: RegistryOpt,
    to: Annotated[str, typer.Option("--to", help="The version to promote again (see `model versions`).")],
    reason: Annotated[str, typer.Option("--reason", help="Why: recorded with the pointer and under runs/.")],
    by: Annotated[str | None, typer.Option("--by", help="Who (default: the local user name).")] = None,
) -> None:
    """Move the promoted pointer back to an earlier version (ETag compare-and-swap; recorded with who and why).
    Rollout apps pick it up at their next registry check, without a restart."""
    from .bootstrap import model_registry, utcnow
    from .domain.errors import ShadowRolloutError
    from .learning.rollback import rollback as run_rollback

    try:
        pointer = run_rollback(model_registry(registry), to, by=by or getpass.getuser(), reason=reason,
                               now=utcnow())
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    out.print(f"rolled back: {pointer.promotion.previous} -> {pointer.version} ({pointer.promotion.reason})",
              highlight=False, soft_wrap=True)


@model_app.command("versions")
def versions(registry: RegistryOpt) -> None:
    """Every version in the registry, the promoted one marked."""
    from .bootstrap import model_registry
    from .domain.errors import ShadowRolloutError

    try:
        reg = model_registry(registry)
        pointer = reg.promoted()
        names = reg.versions()
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    for name in names:
        mark = "* " if pointer is not None and pointer.version == name else "  "
        out.print(f"{mark}{name}", highlight=False)
    if pointer is not None:
        out.print(f"promoted: {pointer.version} at {pointer.promotion.promoted_at.isoformat()}: "
                  f"{pointer.promotion.reason}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
