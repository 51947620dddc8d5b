"""The ``shadow-rollout`` command."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .domain.errors import InvalidInput, ShadowRolloutError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Safe configuration rollouts for Azure VM scale sets: shadow pool, predict, prepare, "
                       "roll and recover.")
err = Console(stderr=True)
out = Console()

PHASES = {
    "inventory": "Taking the inventory",
    "shadow_pool": "Cloning a stratified sample into the Spot shadow pool",
    "baseline": "Baseline: driving source-level load onto the shadows",
    "apply_to_shadows": "Applying the change to the shadows",
    "bake": "Baking: watching the shadows",
    "decided": "Predicting per VM and deciding",
    "production": "Rolling production in waves",
    "watch": "Watching production after the last wave",
    "done": "Done",
    "halted_before_production": "Halted before production",
    "halted_in_production": "Halted in production",
    "failed": "Failed",
}


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@app.callback()
def main_callback() -> None:
    """shadow-rollout."""


@app.command()
def simulate(
    scenario: Annotated[Path | None, typer.Option(help="Scenario file (YAML or JSON); default: the bundled demo.")]
    = None,
    seed: Annotated[int | None, typer.Option(help="Seed; default: the scenario's own.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly the outcome JSON on stdout.")] = False,
    backend: Annotated[str, typer.Option(help="Adapters to run through: sim (in-process simulator) or azure-sdk "
                                               "(the Azure SDK adapters over HTTP, against the simulator's "
                                               "Azure-shaped stand-in).")] = "sim",
) -> None:
    """Run one whole rollout of a scenario on the fleet simulator."""
    from .adapters.simulator.scenario import load_scenario
    from .scenarios import default_scenario_path
    from .simulation import simulate as run_simulation

    if backend not in ("sim", "azure-sdk"):
        _fail(f"--backend {backend!r} is not available in this build; choose from: sim, azure-sdk")
    path = scenario or default_scenario_path()
    try:
        sc = load_scenario(path)
    except InvalidInput as exc:
        _fail(str(exc))
        return
    if not as_json:
        n = sum(s.capacity for s in sc.fleet.scale_sets)
        err.print(f"[bold]shadow-rollout[/] · scenario [cyan]{sc.name}[/] · {n} VMs in "
                  f"{len(sc.fleet.scale_sets)} scale sets · change [cyan]{sc.change.id}[/] ({sc.change.kind})")
    seen: list[str] = []

    def on_status(instance_id: str, status: Any) -> None:
        if as_json or ":" in instance_id or not isinstance(status, dict):
            return
        phase = str(status.get("phase", ""))
        label = PHASES.get(phase, phase)
        if phase == "production":
            label += f" (wave {status.get('wave')}/{status.get('waves')})"
        if not seen or seen[-1] != label:
            seen.append(label)
            err.print(f"  [dim]…[/] {label}")

    try:
        with err.status("simulating", spinner="dots") if not as_json else _nullcontext():
            if backend == "azure-sdk":
                from .adapters.simulator.standin.backend import simulate_azure_sdk

                run = simulate_azure_sdk(sc, seed=seed, on_status=on_status)
            else:
                run = run_simulation(sc, seed=seed, on_status=on_status)
    except ShadowRolloutError as exc:
        _fail(str(exc), 1)
        return
    if as_json:
        sys.stdout.write(json.dumps(run.outcome, sort_keys=False) + "\n")
        return
    _account(run.outcome)


@app.command()
def publish(
    topic: Annotated[str, typer.Option(envvar="SHADOW_ROLLOUT_TOPIC", help="Service Bus topic of rollout requests.")]
    = "rollout-requests",
    request: Annotated[Path | None, typer.Option(help="A rollout request as a JSON file (else built from the options "
                                                     "below).")] = None,
    rollout_id: Annotated[str | None, typer.Option(help="Rollout id, also the message id: a retried send is dropped "
                                                        "as a duplicate.")] = None,
    target: Annotated[list[str] | None, typer.Option(help="Scale set resource id (repeat for several).")] = None,
    change_id: Annotated[str | None, typer.Option(help="The change's id.")] = None,
    kind: Annotated[str, typer.Option(help="run-command | extension | model-update")] = "run-command",
    payload: Annotated[str, typer.Option(help="The change's payload as JSON.")] = "{}",
    policy: Annotated[str, typer.Option(help="Policy overrides as JSON.")] = "{}",
    requester: Annotated[str, typer.Option(envvar="BUILD_REQUESTEDFOR", help="Who asks (Azure DevOps sets "
                                                                              "BUILD_REQUESTEDFOR).")] = "pipeline",
    namespace: Annotated[str, typer.Option(envvar="SERVICEBUS_NAMESPACE", help="Fully qualified Service Bus "
                                           "namespace (DefaultAzureCredential).")] = "",
    connection_string: Annotated[str, typer.Option(envvar="SERVICEBUS_CONNECTION_STRING",
                                                   help="Or a connection string.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and print the message; send nothing.")] = False,
) -> None:
    """Send a rollout request to Service Bus (the step an Azure DevOps pipeline runs)."""
    from .adapters.azure.bus import RolloutBus, request_message

    try:
        if request is not None:
            body = json.loads(request.read_text(encoding="utf-8"))
        else:
            body = {"rollout_id": rollout_id, "targets": target or [],
                    "change": {"change_id": change_id, "kind": kind, "payload": json.loads(payload)},
                    "policy": json.loads(policy), "requester": requester, "source": "pipeline"}
        msg = request_message(body)
        if dry_run:
            sys.stdout.write(json.dumps({"message_id": msg.message_id, "subject": msg.subject,
                                         "body": json.loads(str(msg))}) + "\n")
            return
        if not namespace and not connection_string:
            _fail("publish needs --namespace (or SERVICEBUS_NAMESPACE) or --connection-string")
        bus = RolloutBus(topic=topic, fully_qualified_namespace=namespace, connection_string=connection_string)
        sent = bus.publish_request(body)
    except (OSError, json.JSONDecodeError) as exc:
        _fail(f"cannot read the request: {exc}")
        return
    except InvalidInput as exc:
        _fail(str(exc))
        return
    except ShadowRolloutError as exc:
        _fail(str(exc), 1)
        return
    err.print(f"sent rollout request [cyan]{sent}[/] to topic {topic}")
    sys.stdout.write(sent + "\n")


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _account(o: dict[str, Any]) -> None:
    """A readable account: what was decided and why, then the figures."""
    table = Table(title="What happened and why", show_lines=False, expand=True)
    table.add_column("min", justify="right", style="dim", no_wrap=True)
    table.add_column("decision", style="bold", no_wrap=True)
    table.add_column("reason")
    per_minute = Counter(d["minute"] for d in o["decisions"] if d["kind"] == "rollback_vm")
    shown: Counter[float] = Counter()
    for d in o["decisions"]:
        if d["kind"] == "rollback_vm":
            shown[d["minute"]] += 1
            if shown[d["minute"]] == 4:
                table.add_row(f"{d['minute']:.0f}", "[magenta]rollback_vm[/]",
                              f"… and {per_minute[d['minute']] - 3} more VMs")
            if shown[d["minute"]] > 3:
                continue
        style = {"halt_before_production": "red", "halt_in_production": "red", "skip_stratum": "yellow",
                 "stratum_failed": "yellow", "rollback_vm": "magenta", "scale_out": "cyan", "scale_in": "cyan",
                 "recovered": "green", "finished": "green"}.get(d["kind"], "")
        table.add_row(f"{d['minute']:.0f}", f"[{style}]{d['kind']}[/]" if style else d["kind"], d["reason"])
    out.print(table)
    v = o["vms"]
    summary = Table(title=f"Outcome: {o['outcome']}", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [
        ("production VMs", v["total"]), ("on the new config", v["on_new_config"]), ("rolled back", v["rolled_back"]),
        ("never touched (skipped or halted)", v["never_touched"]), ("failed, unrecovered", v["failed_unrecovered"]),
        ("unknown state", v["unknown_state"]), ("production VMs impaired", o["production_vms_impaired"]),
        ("impaired VM-minutes", o["impaired_vm_minutes"]),
        ("shadows / strata covered", f"{o['shadow']['instances']} / {o['shadow']['strata_covered']} of "
                                     f"{o['shadow']['strata_total']}"),
        ("shadow cost (USD) / fleet cost (USD)", f"{o['shadow']['cost_usd']:.2f} / {o['fleet_cost_usd']:.2f}"),
        ("snapshots taken", o["snapshots_taken"]),
        ("extra instances (max) / extra VM-minutes", f"{o['capacity']['max_extra_instances']} / "
                                                     f"{o['capacity']['extra_vm_minutes']}"),
        ("capacity shortfall (VM-minutes)", o["capacity"]["shortfall_vm_minutes"]),
        ("duration to last production action (min)", o["duration_minutes"]),
    ]
    for k, val in rows:
        summary.add_row(k, str(val))
    out.print(summary)


def main() -> None:
    app()
