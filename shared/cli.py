"""The ``shadow-rollout`` command."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .consoles import console
from .domain.errors import InvalidInput, ShadowRolloutError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Safe configuration rollouts for Azure VM scale sets: shadow pool, predict, prepare, "
                       "roll and recover.")
err = console(stderr=True)
out = console()

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
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def main_callback() -> None:
    """shadow-rollout."""


@app.command()
def simulate(
    scenario: Annotated[Path | None, typer.Option(help="Scenario file (YAML or JSON); default: the bundled demo.")]
    = None,
    seed: Annotated[int | None, typer.Option(help="Seed; default: the scenario's own.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print exactly the outcome JSON on stdout.")]
    = False,
    backend: Annotated[str, typer.Option(help="Adapters to run through: sim (in-process simulator) or azure-sdk "
                                               "(the Azure SDK adapters over HTTP, against the simulator's "
                                               "Azure-shaped stand-in).")] = "sim",
    chaos: Annotated[int | None, typer.Option(help="Seed of chaos: activities redelivered and the worker crashing "
                                                   "at seeded points (at-least-once delivery).")] = None,
    chaos_rate: Annotated[float, typer.Option(help="Chance of a strike after each activity (with --chaos).")]
    = 0.3,
    serve: Annotated[bool, typer.Option("--serve", metavar="", help="Serve the rollout page and the control API on "
                                                        "127.0.0.1 while the rollout runs, and after it ends "
                                                        "until interrupted; stdout's first line is its URL.")]
    = False,
    port: Annotated[int, typer.Option(help="With --serve: the port (0: any free one).")] = 7071,
    speed: Annotated[float, typer.Option(help="With --serve: simulated seconds per wall second.")] = 60.0,
    approval: Annotated[bool, typer.Option("--approval", metavar="", help="Require the approval gate "
                                                              "(policy approval_required).")] = False,
    azure_log: Annotated[Path | None, typer.Option(help="With --backend azure-sdk: write one JSON line per request "
                                                        "the stand-in answered (t, method, path, api_version, "
                                                        "status, principal, throttled).")] = None,
) -> None:
    """Run one whole rollout of a scenario on the fleet simulator."""
    from .adapters.simulator.scenario import load_scenario
    from .scenarios import default_scenario_path
    from .simulation import simulate as run_simulation

    if backend not in ("sim", "azure-sdk"):
        _fail(f"--backend {backend!r} is not available in this build; choose from: sim, azure-sdk")
    if azure_log is not None and backend != "azure-sdk":
        _fail("--azure-log needs --backend azure-sdk (the log is the stand-in's)")
    if chaos is not None and backend != "sim":
        _fail("--chaos runs on --backend sim only")
    if not 0.0 <= chaos_rate <= 1.0:
        _fail(f"--chaos-rate must be within 0..1 (got {chaos_rate})")
    path = scenario or default_scenario_path()
    try:
        sc = load_scenario(path)
    except InvalidInput as exc:
        _fail(str(exc))
        return
    if not as_json:
        n = sum(s.capacity for s in sc.fleet.scale_sets)
        sets = len(sc.fleet.scale_sets)
        err.print(f"[bold]shadow-rollout[/] · scenario [cyan]{sc.name}[/] · {n} VMs in "
                  f"{sets} scale set{'s' if sets != 1 else ''} · change [cyan]{sc.change.id}[/] ({sc.change.kind})")
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

    if serve:
        from .localserve import serve_until_interrupted

        if backend != "sim":
            _fail("--serve runs on the in-process simulator only (--backend sim)")
        if chaos is not None:
            _fail("--chaos does not combine with --serve")
        try:
            serve_until_interrupted(sc, seed=seed, port=port, speed=speed, approval=approval, on_status=on_status,
                                    echo=lambda line: err.print(line, highlight=False))
        except (OSError, ValueError) as exc:
            _fail(str(exc))
        return
    try:
        with err.status("simulating", spinner="dots") if not as_json else _nullcontext():
            if backend == "azure-sdk":
                from .adapters.simulator.standin.backend import simulate_azure_sdk

                run = simulate_azure_sdk(sc, seed=seed, on_status=on_status, azure_log=azure_log)
            else:
                from .runtime.chaos import Chaos

                run = run_simulation(sc, seed=seed, on_status=on_status,
                                     chaos=Chaos(chaos, chaos_rate) if chaos is not None else None)
    except ShadowRolloutError as exc:
        _fail(str(exc), 1)
        return
    if as_json:
        sys.stdout.write(json.dumps(run.outcome, sort_keys=False) + "\n")
        return
    _account(run.outcome)


@app.command()
def standin(
    scenario: Annotated[Path, typer.Option(help="Scenario file whose fleet the stand-in serves.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    azure_log: Annotated[Path | None, typer.Option(help="Write one JSON line per request (t, method, path, "
                                                        "api_version, status, principal, throttled).")] = None,
    speed: Annotated[float, typer.Option(help="How much faster than the wall clock the stand-in's clock runs.")]
    = 1.0,
) -> None:
    """Serve the Azure-shaped stand-in for a scenario's fleet over HTTPS until interrupted (point your Azure SDKs
    at it: any bearer token, the printed CA bundle). The first line on stdout says where, as JSON."""
    import signal
    import tempfile
    import time

    from .adapters.simulator.scenario import load_scenario
    from .adapters.simulator.standin.backend import serve_standin

    if speed <= 0:
        _fail("--speed must be positive")
    try:
        sc = load_scenario(scenario)
    except InvalidInput as exc:
        _fail(str(exc))
        return
    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C and TERM stop it even when it was started with SIGINT ignored (a background job's child, as in CI):
    # Python installs no KeyboardInterrupt handler for a signal ignored at start-up (as simulate --serve does)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    log = azure_log.open("w", encoding="utf-8", buffering=1) if azure_log is not None else None
    with tempfile.TemporaryDirectory(prefix="shadow-rollout-standin-") as tmp:
        server, info = serve_standin(sc, port=port, workdir=Path(tmp), speed=speed, azure_log=log)
        print(json.dumps(info), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
            if log is not None:
                log.close()


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the rollout request's JSON Schema (published as docs/rollout-request.schema.json)."""
    from .domain.request import request_json_schema

    text = json.dumps(request_json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")


@app.command()
def publish(
    request_file: Annotated[Path, typer.Argument(help="The rollout request (YAML or JSON, see the schema).")],
    rollout_id: Annotated[str | None, typer.Option(help="Override the request's rollout id.")] = None,
    requester: Annotated[str | None, typer.Option(help="Override the requester.")] = None,
    namespace: Annotated[str | None, typer.Option(envvar="SHADOW_ROLLOUT_SERVICEBUS_NAMESPACE",
                                                  help="<name>.servicebus.windows.net")] = None,
    topic: Annotated[str, typer.Option(envvar="SHADOW_ROLLOUT_REQUESTS_TOPIC")] = "rollout-requests",
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="",
                                          help="Validate and print the message; send nothing.")]
    = False,
    wait_for: Annotated[bool, typer.Option("--wait", metavar="", help="Wait for the outcome (see --until).")]
    = False,
    outcomes_topic: Annotated[str, typer.Option(envvar="SHADOW_ROLLOUT_OUTCOMES_TOPIC")] = "rollout-outcomes",
    outcomes_subscription: Annotated[str | None, typer.Option(help="A subscription of the outcomes topic filtered "
                                                                   "on this rollout id.")] = None,
    timeout_minutes: Annotated[float, typer.Option(help="Give up waiting after this long (exit 3).")] = 1440.0,
    until: Annotated[str, typer.Option(help="With --wait: production_done (every wave done, before the "
                                            "production watch) or finished (after the watch).")]
    = "production_done",
) -> None:
    """Publish a rollout request to the requests topic (what a pipeline does), optionally wait for its outcome."""
    from azure.core.exceptions import AzureError

    from . import publish as pub

    if until not in pub.UNTIL:
        _fail(f"--until must be one of {', '.join(pub.UNTIL)} (got {until!r})")

    try:
        req = pub.load_request(str(request_file), rollout_id=rollout_id, requester=requester)
    except InvalidInput as exc:
        _fail(str(exc))
        return
    if dry_run:
        sys.stdout.write(json.dumps(pub.message_of(req), indent=2) + "\n")
        return
    if not namespace:
        _fail("--namespace (or SHADOW_ROLLOUT_SERVICEBUS_NAMESPACE) is required to send")
        return
    if wait_for and not outcomes_subscription:
        _fail("--outcomes-subscription is required with --wait")
        return
    try:
        pub.send(req, namespace=namespace, topic=topic)
        err.print(f"published rollout [cyan]{req.rollout_id}[/] to {namespace}/{topic}", highlight=False)
        if not wait_for or not outcomes_subscription:
            return
        code = pub.wait(req.rollout_id, namespace=namespace, topic=outcomes_topic, subscription=outcomes_subscription,
                        timeout_minutes=timeout_minutes, echo=lambda line: err.print(line, highlight=False),
                        until=until)
    except (AzureError, ShadowRolloutError, OSError) as exc:  # one line, not a traceback: unreachable, no identity
        _fail(f"Service Bus {namespace}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", 1)
        return
    raise typer.Exit(code)


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
    if "leaks" in o:
        rows.append(("left behind: shadows / leases / extra instances",
                     f"{o['leaks']['shadows']} / {o['leaks']['leases']} / {o['leaks']['extra_instances']}"))
    if "chaos" in o:
        rows.append(("chaos: redelivered / crashes", f"{o['chaos']['redelivered']} / {o['chaos']['crashes']}"))
    for k, val in rows:
        summary.add_row(k, str(val))
    out.print(summary)


@app.command()
def bench(
    scenarios: Annotated[Path, typer.Option(help="Directory of scenario files (YAML or JSON).")]
    = Path("bench/scenarios"),
    strategies: Annotated[str, typer.Option(help="Comma-separated strategy names, or all.")] = "all",
    seeds: Annotated[int, typer.Option(help="Seeds per scenario: its own seed, seed+1, ..., seed+N-1.")] = 1,
    good_seeds: Annotated[int | None, typer.Option(help="More seeds for good-change scenarios (no effects), so "
                                                        "false halts are counted over enough good runs.")] = None,
    good_seed_strategies: Annotated[str | None, typer.Option(help="Give --good-seeds only to these strategies "
                                                                  "(comma-separated; default all).")] = None,
    seed_offset: Annotated[int, typer.Option(help="Start at the file's seed + K (runs on seeds the model was "
                                                  "trained or validated on are marked in_sample and left out of "
                                                  "the summary).")] = 0,
    max_vms: Annotated[int, typer.Option(help="Skip fleets of this many VMs or more.")] = 10_000,
    exclude_tags: Annotated[str, typer.Option(help="Skip scenarios with any of these tags (comma-separated); "
                                                   "the scale fleets are measured by bench-scale.")] = "scale",
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print exactly the benchmark JSON on stdout.")]
    = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the JSON here (gzipped if it ends in "
                                                               ".gz), and summary.json beside it.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report with PNG plots into this directory.")]
    = None,
    timeline: Annotated[str | None, typer.Option(help="Scenario (a file, or a name in --scenarios) whose "
                                                      "shadow-predictive rollout the report draws as a timeline "
                                                      "(default: the bundled demo).")] = None,
    chaos: Annotated[bool, typer.Option("--chaos", metavar="", help="Also run each shadow-predictive run under "
                                                                    "chaos seeded by its own seed, and compare it "
                                                                    "with the undisturbed run.")]
    = False,
    chaos_rate: Annotated[float, typer.Option(help="Chance of a strike after each activity (with --chaos).")]
    = 0.3,
) -> None:
    """Benchmark strategies on a corpus of scenarios (scenarios contract §3)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench.corpus import bench as run_bench
    from .bench.corpus import parse_strategies

    try:
        names = parse_strategies(strategies)
        if report is not None:
            from .bench.report import require_matplotlib

            require_matplotlib()
        progress = Progress(TextColumn("[bold]bench[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=err, transient=False)
        bar: dict[str, Any] = {}

        def on_plan(tasks: list[Any], corpus: Any) -> None:
            for s in corpus.skipped:
                err.print(f"  [dim]skipped {s['scenario']}: {s['reason']}[/]", highlight=False)
            bar["id"] = progress.add_task("", total=len(tasks))

        def on_run(task: Any, outcome: dict[str, Any]) -> None:
            progress.update(bar["id"], advance=1, description=f"{outcome['strategy']} · {outcome['scenario']}")

        with progress:
            result = run_bench(scenarios, names, seeds, good_seeds=good_seeds, seed_offset=seed_offset,
                               good_seed_strategies=parse_strategies(good_seed_strategies)
                               if good_seed_strategies else None, max_vms=max_vms,
                               exclude_tags=[t.strip() for t in exclude_tags.split(",") if t.strip()],
                               workers=workers, progress=on_run, on_plan=on_plan,
                               chaos_rate=chaos_rate if chaos else None)
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    result["meta"]["command"] = "shadow-rollout " + " ".join(sys.argv[1:])
    from .bench.report import evaluate_targets

    result["targets"] = evaluate_targets(result)
    if out_file is not None:  # first: a failure while drawing must not lose the runs
        _write_json(out_file, result)
    if report is not None:
        from .bench.report import timeline_of, write_report

        with err.status("drawing the report"):
            result["timeline"] = timeline_of(scenarios, timeline)
            write_report(result, report)
        err.print(f"report written to {report / 'index.html'}", highlight=False)
        if out_file is not None:
            _write_json(out_file, result)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    _bench_table(result)


@app.command()
def janitor(
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Say what would be returned; change "
                                                                        "nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print the report as JSON.")] = False,
) -> None:
    """Find and return what ended rollouts left behind: shadows (by tag), leases, borrowed instances.

    Uses the same wiring as the function app (SHADOW_ROLLOUT_BACKEND and its settings)."""
    from .bootstrap import services
    from .orchestration.cleanup import janitor as sweep

    try:
        report = sweep(services(), dry_run=dry_run)
    except ShadowRolloutError as exc:
        _fail(str(exc), 1)
        return
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        return
    verb = "would return" if dry_run else "returned"
    out.print(f"janitor {verb}: {len(report.shadows)} shadows, {report.leases} leases, "
              f"{sum(report.extra_instances.values())} extra instances", highlight=False)
    for reason in report.reasons:
        out.print(f"  · {reason}", highlight=False)


@app.command("bench-report")
def bench_report(
    result_file: Annotated[Path, typer.Argument(help="A bench JSON (.json or .json.gz) written by bench --out.")],
    report: Annotated[Path, typer.Option(help="Write index.html and the PNG plots into this directory.")],
    scenarios: Annotated[Path, typer.Option(help="Where --timeline names are looked up.")] = Path("bench/scenarios"),
    timeline: Annotated[str | None, typer.Option(help="Redraw the timeline from this scenario (default: keep the "
                                                      "one in the file, else the bundled demo).")] = None,
    readme: Annotated[Path | None, typer.Option(help="Also write the results as Markdown between the "
                                                     "<!-- results:begin/end --> markers of this file.")] = None,
) -> None:
    """Redraw the report of an earlier bench run without running it again (the file's targets and timeline are
    brought up to date too)."""
    import gzip

    from .bench.report import evaluate_targets, require_matplotlib, timeline_of, write_report

    try:
        require_matplotlib()
        raw = result_file.read_bytes()
        result = json.loads(gzip.decompress(raw) if result_file.suffix == ".gz" else raw)
        result["targets"] = evaluate_targets(result)
        kept = result.get("timeline") or {}
        if timeline is not None or kept.get("runtime_status") != "Completed":
            # drawn again when asked, or when the file's timeline does not say its run completed (older files:
            # a crashed run was once drawn as a clean halt); timeline_of refuses a run that did not complete
            result["timeline"] = timeline_of(scenarios, timeline)
        write_report(result, report)
        if readme is not None:
            from .bench.report import with_results

            readme.write_text(with_results(readme.read_text(encoding="utf-8"), result), encoding="utf-8")
    except (OSError, ValueError) as exc:
        _fail(f"{result_file}: {exc}")
        return
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    _write_json(result_file, result)
    err.print(f"report written to {report / 'index.html'}", highlight=False)


def _write_json(path: Path, result: dict[str, Any]) -> None:
    """The whole result (gzipped when the name ends in .gz), and its summary, targets and meta beside it."""
    import gzip

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, separators=(",", ":")) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
    else:
        path.write_text(text, encoding="utf-8")
    brief = {k: result[k] for k in ("meta", "summary", "targets") if k in result}
    (path.parent / "summary.json").write_text(json.dumps(brief, indent=1) + "\n", encoding="utf-8")


def _bench_table(result: dict[str, Any]) -> None:
    table = Table(title=f"Benchmark: {result['meta']['runs']} runs in {result['meta']['wall_seconds']:.0f} s")
    cols = ("strategy", "runs", "impaired VM-min", "VMs impaired", "false halts", "excluded on good", "missed bad",
            "median min (good)", "shadow cost", "shortfall VM-min", "extra VM-min")
    for col in cols:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for name, s in result["summary"].items():
        table.add_row(name, str(s["runs"]), f"{s['impaired_vm_minutes']:,.0f}", str(s["production_vms_impaired"]),
                      f"{s['false_halts']}/{s['good_runs']}", str(s["vms_excluded_on_good"]),
                      f"{s['missed_bad_changes']}/{s['bad_runs']}", str(s["median_duration_minutes_good"]),
                      f"{s['shadow_cost_ratio']:.2%}", f"{s['capacity_shortfall_vm_minutes']:,.0f}",
                      f"{s['extra_vm_minutes']:,.0f}")
    out.print(table)
    for t in result.get("targets", []):
        mark = "[green]met[/]" if t["met"] else "[red]missed[/]" if t["met"] is False else "[yellow]n/a[/]"
        out.print(f"{mark}  {t['target']}: {t['measured']}", highlight=False)


@app.command("bench-scale")
def bench_scale(
    sizes: Annotated[str, typer.Option(help="Comma-separated fleet sizes.")] = "1000,10000,50000",
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print the JSON report on stdout.")] = False,
) -> None:
    """Scale benchmark: wall time, peak memory, orchestration work and replay time, and the failure model's
    inference throughput, for each fleet size."""
    from .bench.scale import run_sizes

    try:
        ns = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        _fail(f"--sizes must be comma-separated whole numbers (got {sizes!r})")
        return
    with err.status(f"running {len(ns)} fleet sizes, one process each"):
        report = run_sizes(ns)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    table = Table(title="Scale benchmark (one rollout each, its whole watch window included)")
    for col in ("VMs", "wall s", "peak MiB", "turns", "events replayed", "longest history", "history KiB",
                "replay s", "predict VMs/s", "outcome"):
        table.add_column(col, justify="right")
    for r in report["runs"]:
        table.add_row(str(r["vms"]), f"{r['wall_seconds']:.1f}", f"{r['peak_rss_mib']:.0f}",
                      str(r["orchestration_turns"]), str(r["history_events_replayed"]),
                      str(r["max_history_events"]), f"{r['max_history_bytes'] / 1024:.0f}",
                      f"{r['replay_seconds']:.1f}", f"{r['inference_vms_per_second']:,}", r["outcome"])
    out.print(table)
    out.print("growth with the fleet (slope of log cost over log VMs; 1 = linear): "
              + ", ".join(f"{k} {v}" for k, v in report["growth"].items()))


@app.command("bench-budget")
def bench_budget(
    sizes: Annotated[str, typer.Option(help="Comma-separated fleet sizes.")] = "2000,10000",
    backend: Annotated[str, typer.Option(help="Only azure-sdk: the Azure SDK adapters over the stand-in.")]
    = "azure-sdk",
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the JSON report here.")] = None,
) -> None:
    """Throttling at scale through the Azure SDK adapters: per fleet size, operations failed by throttling,
    buckets overdrawn and the share of ARM requests answered 429 (all from the request log), the rollout's
    duration beside the budget-derived floor, and whether its outcome JSON is `--backend sim`'s on the same
    fleet."""
    from .bench.budget import equals_cell, run_sizes

    if backend != "azure-sdk":
        _fail(f"--backend must be azure-sdk (got {backend!r}); bench-scale measures the simulator backend")
        return
    try:
        ns = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError:
        _fail(f"--sizes must be comma-separated whole numbers (got {sizes!r})")
        return
    with err.status(f"running {len(ns)} fleet sizes on the Azure SDK adapters, one process each"):
        report = run_sizes(ns)
    report["command"] = "shadow-rollout " + " ".join(sys.argv[1:])
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title="Throttling at scale on the Azure SDK adapters (checks from the request log)")
    for col in ("VMs", "outcome", "ARM requests", "429 share", "failed by throttling", "overdrawn",
                "floor min", "rollout min", "wall s", "equals sim"):
        table.add_column(col, justify="right")
    for r in report["runs"]:
        table.add_row(str(r["vms"]), r["outcome"], str(r["arm_requests"]), f"{r['throttled_share']:.2%}",
                      str(r["failed_by_throttling"]), str(r["overdrawn_requests"]), f"{r['budget_floor_minutes']}",
                      f"{r['rollout_minutes']}", f"{r['wall_seconds']}", equals_cell(r))
    out.print(table)


@app.command("bench-import")
def bench_import(
    repeats: Annotated[int, typer.Option(help="Fresh interpreters to time (the median is reported).")] = 7,
    out_file: Annotated[Path | None, typer.Option("--out", help="Also write the JSON here.")] = None,
) -> None:
    """Time `import function_app` in fresh interpreters: the start-up every cold start and scale-out pays."""
    from .bench.startup import measure

    if repeats < 1:
        _fail(f"--repeats must be at least 1 (got {repeats})")
    with err.status(f"importing the function app {repeats} times"):
        report = measure(repeats)
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(report, indent=2) + "\n")
    out.print(f"import function_app: median {report['median_seconds']:.2f} s (min {report['min_seconds']:.2f}, "
              f"max {report['max_seconds']:.2f}) over {repeats} fresh interpreters; {report['modules_loaded']} "
              f"modules; loaded: {', '.join(report['heavy_loaded'])}", highlight=False)


@app.command()
def train(
    scenarios: Annotated[Path, typer.Option(help="Scenario corpus to learn from (bench/make_training_corpus.py "
                                                 "draws the default).")] = Path("bench/training-corpus"),
    seed: Annotated[int, typer.Option(help="Random state of the learner.")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where to write the model (default: model/).")]
    = None,
    max_vms: Annotated[int, typer.Option(help="Leave out scenarios with larger fleets.")] = 2000,
    limit: Annotated[int | None, typer.Option(help="Only the first N scenarios (a quick run).")] = None,
    n_estimators: Annotated[int, typer.Option(help="Trees in the forest.")] = 150,
) -> None:
    """Train the failure model on dry rollouts of a corpus; write ONNX, features, manifest, metrics, the packaged
    training rows and the model card. The rollout keeps the judge until `select-model` validates the model."""
    from .adapters.onnx_model import MODEL_DIR
    from .learning.train import TrainingConfig
    from .learning.train import train as run_training

    if not scenarios.is_dir():
        _fail(f"--scenarios {scenarios}: no such directory (draw the corpus: python bench/make_training_corpus.py)")
    cfg = TrainingConfig(scenarios=scenarios, out=out_dir or MODEL_DIR, seed=seed, max_vms=max_vms, limit=limit,
                         n_estimators=n_estimators)
    try:
        metrics = run_training(cfg, progress=lambda msg: err.print(f"  [dim]…[/] {msg}"))
    except (ShadowRolloutError, ValueError) as exc:
        _fail(str(exc))
        return
    obs = metrics["held_out_scenarios"].get("observable", {})
    fam = metrics["held_out_modes"].get("observable", {})
    out.print(f"model written to {cfg.out}: held-out scenarios (observable) ROC-AUC {obs.get('roc_auc')} "
              f"(truth {obs.get('oracle_roc_auc')}, judge {obs.get('judge_roc_auc')}); held-out modes "
              f"{fam.get('roc_auc')}; {metrics['inference_rows_per_second']:,} predictions/s; not in use until "
              "select-model validates it")


@app.command()
def evaluate(
    scenarios: Annotated[Path, typer.Option(help="Scenario directory.")] = Path("bench/scenarios"),
    seeds: Annotated[int, typer.Option(help="Seeds per scenario (the file's seed first).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print the JSON object on stdout.")] = False,
    max_vms: Annotated[int, typer.Option(help="Leave out scenarios with larger fleets.")] = 10_000,
    seed_offset: Annotated[int, typer.Option(help="Start at the file's seed + K (the model trained on + 0..5 and "
                                                  "validated on + 6, 7 of bench/scenarios).")] = 0,
) -> None:
    """Score the failure model in use per production VM against the judge and the truth."""
    from .learning.evaluate import evaluate as run_evaluation

    if seeds < 1:
        _fail(f"--seeds must be at least 1 (got {seeds})")
    try:
        with err.status("evaluating (dry rollouts: shadows and predictions only)"):
            result = run_evaluation(scenarios, seeds, max_vms=max_vms, seed_offset=seed_offset)
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"Failure model '{result['model']}' over {result['examples']} VMs of {result['runs']} runs")
    for col in ("rows", "ROC-AUC", "truth", "judge", "PR-AUC", "judge", "recall@P95", "Brier", "judge Brier"):
        table.add_column(col, justify="right")
    for name in ("observable", "unobservable"):
        r = result.get(name)
        if r:
            table.add_row(name, *(str(r.get(k)) for k in ("roc_auc", "oracle_roc_auc", "judge_roc_auc", "pr_auc",
                                                          "judge_pr_auc", "recall_at_precision_95", "brier",
                                                          "judge_brier")))
    out.print(table)


@app.command("select-model")
def select_model(
    scenarios: Annotated[Path, typer.Option(help="Validation scenarios (never trained on).")]
    = Path("bench/validation-families"),
    seeds: Annotated[int, typer.Option(help="Seeds per scenario (the file's seed first).")] = 4,
    model_dir: Annotated[Path | None, typer.Option(help="The model to judge (default: model/).")] = None,
) -> None:
    """Use the learned model only where it beats the judge on validation families; write selection.json and the
    model card's 'In use' section; record the validation pairs in the manifest and the rows in
    validation-rows.npz."""
    from .adapters.onnx_model import MODEL_DIR, OnnxFailureModel
    from .learning.acceptance import pending
    from .learning.dataset import collect, scenario_files
    from .learning.selection import record_validation, select, write_selection

    directory = model_dir or MODEL_DIR
    paths = scenario_files(scenarios, 10_000)
    try:
        OnnxFailureModel(directory)
        with err.status(f"dry rollouts of {len(paths)} validation scenarios x {seeds} seeds, scored by the model"):
            d = collect(paths, range(seeds), use_model=True, model_dir=directory)
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    selection = pending(select(d, [p.name for p in paths], sorted({int(s) for s in d.seed})))
    write_selection(directory, selection)
    record_validation(directory, d, paths, list(range(seeds)))
    out.print(f"in use: {selection['model']}: {selection['why']}")


@app.command("accept-model")
def accept_model(
    scenarios: Annotated[Path, typer.Option(help="Held-out scenarios (never trained or validated on).")]
    = Path("bench/heldout-families"),
    seeds: Annotated[int, typer.Option(help="Seeds per scenario (the file's seed first: the benchmark's).")] = 1,
    model_dir: Annotated[Path | None, typer.Option(help="The model to judge (default: model/).")] = None,
) -> None:
    """After select-model: score the model on the held-out families against a fixed bar (each of ROC-AUC, PR-AUC,
    recall@P95 and Brier at least the judge's, observable ROC-AUC at least 0.95); a model validation chose that
    misses it gives way to the judge. Rewrites selection.json and the card's 'In use' section."""
    from .adapters.onnx_model import MODEL_DIR, OnnxFailureModel, read_selection
    from .learning.acceptance import accept, with_acceptance
    from .learning.evaluate import evaluate as run_evaluation
    from .learning.selection import write_selection

    directory = model_dir or MODEL_DIR
    selection = read_selection(directory)
    if selection is None:
        _fail(f"no selection.json in {directory}: run `shadow-rollout select-model` first")
        return
    try:
        OnnxFailureModel(directory)
        with err.status(f"dry rollouts of {scenarios} x {seeds} seed(s), scored by the model"):
            result = run_evaluation(scenarios, seeds, model_dir=directory)
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    verdict = accept(result)
    selection = with_acceptance(selection, verdict, str(scenarios), seeds)
    write_selection(directory, selection)
    out.print(f"held-out acceptance: {'passed' if verdict.passed else 'missed'}; in use: {selection['model']}: "
              f"{selection['why']}", highlight=False, soft_wrap=True)


@app.command()
def retrain(
    history: Annotated[Path, typer.Option(help="Scenarios whose full rollouts make the history (when no rollout "
                                                "store is configured).")] = Path("bench/scenarios"),
    seeds: Annotated[int, typer.Option(help="Rollouts per scenario.")] = 1,
    model_dir: Annotated[Path | None, typer.Option(help="The model to challenge (default: model/); without "
                                                        "--registry only.")] = None,
    max_vms: Annotated[int, typer.Option(help="Leave out scenarios with larger fleets.")] = 2000,
    registry: Annotated[str | None, typer.Option(
        help="Promote into this model registry instead of model/: https://<account>.blob.core.windows.net/"
             "<container> (identity; SHADOW_ROLLOUT_REGISTRY_CONNECTION_STRING for Azurite) or a directory.")] = None,
    min_rollouts: Annotated[int | None, typer.Option(help="With --registry: fewer recorded rollouts, no "
                                                          "retrain (default 20).")] = None,
    packaged_rows: Annotated[Path | None, typer.Option(help="With --registry: packaged training rows (.npz) to "
                                                            "train on besides the recorded rollouts (default: "
                                                            "model/training-rows.npz).")] = None,
    validation_rows: Annotated[Path | None, typer.Option(help="With --registry: rows of the simulator's "
                                                              "validation families (.npz) to validate on too "
                                                              "(default: model/validation-rows.npz).")] = None,
) -> None:
    """Retrain from recorded rollouts (labelled by what production showed); promote only a better model.

    With --registry this is the trainer app's run, on demand: it reads the rollout store named by
    SHADOW_ROLLOUT_TABLES_ENDPOINT (or SHADOW_ROLLOUT_TABLES_CONNECTION_STRING), or, with neither, records full
    simulated rollouts of --history; and promotes into the registry only what beats the version in use.
    """
    from .adapters.onnx_model import MODEL_DIR
    from .adapters.simulator.scenario import load_scenario
    from .learning.dataset import scenario_files
    from .learning.retrain import retrain as run_retrain
    from .ports import RolloutStore
    from .simulation import simulate as run_simulation

    stores: list[RolloutStore] = []
    table = None
    if registry is not None:
        from .bootstrap import _table_client

        table = _table_client(os.environ.get("SHADOW_ROLLOUT_TABLE", "rollouts"))
    if table is not None:
        from .adapters.azure.store import TableRolloutStore

        err.print(f"reading recorded rollouts from the rollout store (table {table.table_name})")
        stores.append(TableRolloutStore(table))
    else:
        paths = scenario_files(history, max_vms)
        with err.status(f"recording {len(paths) * seeds} full rollouts"):
            for p in paths:
                sc = load_scenario(p)
                for k in range(seeds):
                    stores.append(run_simulation(sc, seed=sc.seed + 100 + k).services.store)
    if registry is None:
        result = run_retrain(stores, model_dir or MODEL_DIR)
        out.print(("[green]promoted[/]: " if result["promoted"] else "[yellow]not promoted[/]: ") + result["reason"])
        return
    from .bootstrap import model_registry, utcnow
    from .learning.trainer import (
        MIN_ROLLOUTS,
        PACKAGED_ROWS_FILE,
        VALIDATION_ROWS_FILE,
        TrainerConfig,
        load_rows,
        retrain_into_registry,
    )

    packaged_rows = packaged_rows or MODEL_DIR / PACKAGED_ROWS_FILE
    validation_rows = validation_rows or MODEL_DIR / VALIDATION_ROWS_FILE
    for path in (packaged_rows, validation_rows):
        if not path.is_file():
            _fail(f"no rows at {path}: `shadow-rollout train` and `select-model` write model/'s")
    try:
        run = retrain_into_registry(stores, model_registry(registry, create=True), now=utcnow(),
                                    packaged=load_rows(packaged_rows), validation=load_rows(validation_rows),
                                    cfg=TrainerConfig(min_rollouts=MIN_ROLLOUTS if min_rollouts is None
                                                      else min_rollouts))
    except ShadowRolloutError as exc:
        _fail(str(exc))
        return
    label = ("[green]promoted[/]" if run.promoted else "[yellow]not promoted[/]" if run.trained
             else "[yellow]not retrained[/]")
    out.print(f"{label}{f' {run.version}' if run.version else ''}: {run.reason}")


from .intake.check_command import register as _register_intake_check  # noqa: E402 - its own module

_register_intake_check(app)


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:
        # the publisher's install (".[cli]") has no numpy, scipy, onnxruntime or the tools' libraries: a command
        # that needs them says so in one line instead of a traceback; a missing module of ours is a bug, raised
        if not exc.name or exc.name.split(".")[0] in ("shared", "functions", "function_app"):
            raise
        err.print(f"[bold red]error:[/] this command needs {exc.name}, which is not installed: install the tools "
                  '(pip install ".\\[tools]"); the "cli" extra alone runs publish, schema, status, watch, approve, '
                  "abort and list", highlight=False, soft_wrap=True)
        raise SystemExit(2) from None


from .appcli import register as _register_app_commands  # noqa: E402 - status, watch, approve, abort, list

_register_app_commands(app)

from .modelcli import register as _register_model_commands  # noqa: E402 - model rollback, model versions

_register_model_commands(app)
