"""Every documented command line is run here: each ``shadow-rollout …``, ``.venv/bin/…`` and ``make …`` line of a
shell block or one-line code span in README.md, bench/README.md, docs/*.md, */README.md, and each
``shadow-rollout`` line of docs/examples/*.yml.

How a line runs is declared below, never decided silently:

* REWRITES and FORCED: the reviewed mapping from a documented line to what runs here: smaller inputs (the micro
  scenarios of tests/fixtures/micro, one seed, fleet size 50), outputs into a tmp dir (never the committed
  results or model), the local server's port and speed. Each says why.
* NOT_HERE: the lines that cannot run on this machine (Azure: azd, az, Service Bus, the deployed app; the suite
  itself; the 20-minute benchmark), each with the reason and what runs in its place.
* Serving lines (``--serve``, ``standin``) are started, checked and interrupted; the app CLI lines
  (``--app "$APP"``, ``curl "$APP/…"``) run against ``simulate --serve`` started from its documented line.

A new documented line is run as written (after the rewrites) unless NOT_HERE lists it: a line that cannot run
fails here until it is made runnable or declared.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.intake.check import CODES

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
BIN = Path(sys.executable).parent
DOCS = sorted({ROOT / "README.md", ROOT / "bench" / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("*/README.md")})
EXAMPLES = sorted(ROOT.glob("docs/examples/*.yml"))
# fences paired in order (a yaml block's closing fence is never taken for an opening one)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL = ("sh", "bash", "shell", "console")
# a documented command line starts with one of these (after optional VAR=... assignments)
COMMANDS = ("shadow-rollout", "make", "azd", "az", "func", "curl", "pip", "python", "python3", "eval", "npm", "npx")
MICRO = ROOT / "tests" / "fixtures" / "micro"
SERVED_ID = "nginx-1.27-prod"  # the rollout id the docs' app commands use; here: the served rollout's


# ------------------------------------------------------------------------------------------- the declared mapping
@dataclass(frozen=True)
class NotHere:
    pattern: str  # searched in the documented line
    why: str  # why it cannot run here
    stand_in: str  # what runs instead
    instead: Callable[[str], str] | None = None  # a runnable stand-in derived from the line, run here


NOT_HERE = [
    NotHere(r"^azd\b|^eval \"\$\(azd ", "azd provisions, deploys and reads an Azure environment: no subscription here",
            "tests/infra parses infra/*.bicep and runs checkov; tests/infra/test_app_settings.py checks the outputs "
            "azd reads"),
    NotHere(r"^(\w+=\"?\$\()?az\s", "the Azure CLI against a subscription or Microsoft Graph: none here",
            "the role and app-role files it uses are checked by tests/infra/test_role.py and test_auth.py"),
    NotHere(r"^(APP|AUTH)=", "sets a variable the lines below use, from the deployed app's name or a token",
            "APP is the local server's URL here, AUTH a header the local server ignores, KEY a dummy key"),
    NotHere(r"^curl -s -X POST \"\$APP/rollouts\?", "starts a rollout on the deployed app's intake; the local "
            "server has no start route (simulate --serve starts its own rollout)",
            "tests/integration/test_intake.py drives the start route's function in-process"),
    NotHere(r"^make test$", "the suite itself: this test runs inside it", "-"),
    NotHere(r"^make bench$", "the committed benchmark: about 20 minutes on 2 cores",
            "its recipe (make -n bench) is the documented bench lines, each run here at micro size "
            "(test_make_bench_runs_only_documented_lines)"),
    NotHere(r"^pip install ", "installs into the current environment",
            "tests/e2e/test_publisher_install.py resolves \".[cli]\" with pip install --dry-run and runs the "
            "publisher without the heavy libraries"),
    NotHere(r"shadow-rollout retrain --registry", "reads the rollout store in Azure Table storage and promotes "
            "into the Blob model registry",
            "the same line with a directory registry and no store setting: it records simulated rollouts of "
            "--history (micro) instead; tests/azure/test_model_registry_azurite.py runs the Blob registry on Azurite",
            instead=lambda line: re.sub(r"^SHADOW_ROLLOUT_TABLES_ENDPOINT=\S+\s+", "", line).replace(
                '"$SHADOW_ROLLOUT_REGISTRY_URL"', "{tmp}/registry")),
    NotHere(r"shadow-rollout model (versions|rollback) --registry", "reads and moves the promoted pointer of the "
            "Blob model registry ($SHADOW_ROLLOUT_REGISTRY_URL, <version>: a deployed registry's)",
            "tests/azure/test_model_rollback_azurite.py runs both commands' code on Azurite"),
    NotHere(r"shadow-rollout bench-budget", "whole rollouts through the Azure SDK adapters against the stand-in on "
            "2,000 and 10,000 VMs: tens of minutes on this machine (the results file records each run's wall time)",
            "tests/unit/test_budget_checks.py checks the request-log checks; tests/e2e/test_budget_azure_sdk_doc.py "
            "checks bench/README.md's table against bench/results/budget-azure-sdk.json; "
            "tests/azure/test_backend_equivalence.py runs the same adapters end to end"),
    NotHere(r"python -m shared\.bench\.before_after --before \w+=BEFORE", "compares two benchmark runs, one of them of "
            "an older commit (BEFORE/AFTER are placeholders for their files)",
            "tests/unit/test_bench_readme.py checks bench/README.md's table against bench/results/before-after.json"),
    NotHere(r"shadow-rollout publish (?!.*--dry-run)", "sends to an Azure Service Bus namespace (no emulator here)",
            "the same line with --dry-run (validates the request and prints the message it would send)",
            instead=lambda line: re.sub(r" --(wait|until \S+|outcomes-subscription \S+|timeout-minutes \S+)", "",
                                        line) + " --dry-run"),
]

# (pattern, replacement, why), applied in order to every line that runs; {tmp} {micro} {one} {bin} {venv} are filled in
REWRITES = [
    (r"(?<![\w/.-])(?:\.venv/bin/|\$\(BIN\)/)?shadow-rollout(?=\s|$)", "{bin}/shadow-rollout",
     "the suite's own installed command"),
    (r"\$\(([A-Za-z][\w.]*)\)", r"\1", "an Azure Pipelines macro $(Name) in an example pipeline: its name stands "
     "for its value"),
    (r"^make (\w+)$", r"make VENV={venv} -o {venv}/.installed \1",
     "the suite's virtualenv, already installed (make would otherwise reinstall it when its stamp is older)"),
    (r"(?<![\w/])bench/results/", "{tmp}/bench/results/", "outputs into the tmp dir, never the committed results "
     "(the committed ones are copied there first, so that inputs read from them resolve)"),
    (r"--readme bench/README\.md", "--readme {tmp}/bench/README.md", "a copy of bench/README.md"),
    (r"(?<![\w/.-])([\w-]+\.(?:ya?ml|jsonl|json))(?=\s|$)", r"{tmp}/\1",
     "a bare file name (request.yaml, requests.jsonl, ...) is the tmp dir's: inputs written there first"),
    (r" (?:…|\.\.\.)(?=\s|$)", " {tmp}/out.json", "a placeholder output file"),
    (r"\bFILE\b", str(MICRO / "micro-crash.yaml"), "placeholder: a scenario file"),
    (r"\bREQUEST_FILE\b", "{tmp}/request.yaml", "placeholder: a rollout request"),
    (r"\bDIR\b", "{one}", "placeholder: a scenario directory"),
    (r"\bLIST\b", "shadow-predictive", "placeholder: the strategies"),
    (r"(?<=\s)N(?=\s|$)", "1", "placeholder: a number (seeds, the chaos seed)"),
    (r"--seeds \d+", "--seeds 1", "one seed per scenario"),
    (r"--good-seeds \d+", "--good-seeds 1", "one seed for good changes too"),
]

# options forced per command (set or replaced): the corpus commands run on the micro scenarios
FORCED: dict[str, dict[str, str]] = {
    "train": {"--scenarios": "{micro}", "--out": "{tmp}/trained"},  # four families: the family folds need them
    # a copy of model/: select-model and retrain write there
    "select-model": {"--scenarios": "{one}", "--seeds": "1", "--model-dir": "{tmp}/model"},
    "evaluate": {"--scenarios": "{one}"},
    "accept-model": {"--scenarios": "{one}", "--model-dir": "{tmp}/model"},
    "retrain": {"--history": "{one}", "--model-dir": "{tmp}/model"},
    # with --report the timeline is drawn from one more run: of the micro scenario, not the 220-VM demo
    "bench": {"--scenarios": "{one}", "--timeline": str(MICRO / "micro-crash.yaml")},
    "bench-scale": {"--sizes": "50"},
    "bench-import": {"--repeats": "1"},
    # the stand-in's request log, apart from intake-check's requests.jsonl (an input, read at the same time)
    "standin": {"--azure-log": "{tmp}/standin-requests.jsonl"},
}
# `simulate --serve`: any free port; a micro scenario at 150 simulated s per wall s: it reaches its gate in about
# 20 s and production is done about 15 s after the approval, while its 240-minute gate stays open for 96 s (the
# clock is the wall's: a CPU-starved machine must not let the gate time out before the approve line runs)
FORCED_SERVE = {"--port": "0", "--speed": "150", "--scenario": str(MICRO / "micro-good.yaml")}
WHY_FORCED = ("the corpus commands read one micro scenario (tests/fixtures/micro/micro-crash.yaml; train all "
              "four: its family folds need four families) instead of a corpus, write into the tmp dir, and scale "
              "to a 50-VM fleet")
# `simulate` without --scenario runs the 220-VM demo; `make demo` runs that one, the others a micro scenario
DEFAULT_SCENARIO = str(MICRO / "micro-crash.yaml")


# ------------------------------------------------------------------------------------------- what the docs say
def _fence_lines(block: str, shell: bool) -> list[str]:
    """The command lines of a code block: continuations joined, comments dropped, a quoted body kept whole."""
    lines, pending = [], ""
    for raw in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{raw}" if pending else raw
        try:
            shlex.split(pending, comments=True)
        except ValueError:
            continue  # an open quote: the line goes on
        ln = re.sub(r"\s+#\s.*$", "", pending).strip() if "'" not in pending else pending.strip()
        pending = ""
        if "\n" not in ln:
            ln = re.sub(r"[ \t]{2,}", " ", ln)  # a continuation's indent
        if not ln or ln.startswith("#"):
            continue
        if shell or ln.split()[0] in COMMANDS or ln.startswith(".venv/bin/"):
            lines.append(ln)
    return lines


PROSE: set[str] = set()  # `shadow-rollout simulate` named in a sentence: a command, no options


def documented() -> dict[str, list[str]]:
    """Every documented command line, and the docs that hold it."""
    found: dict[str, list[str]] = {}
    fenced: set[str] = set()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        lines = [ln for lang, b in FENCE.findall(text) if lang in (*SHELL, "")
                 for ln in _fence_lines(b, lang in SHELL)]
        fenced.update(lines)
        lines += [s.strip() for s in re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
                  if re.match(r"(\.venv/bin/)?shadow-rollout |make \w+$|azd |az |pip install ", s.strip())]
        for ln in lines:
            found.setdefault(ln, []).append(str(doc.relative_to(ROOT)))
    PROSE.update(ln for ln in found if ln not in fenced and re.fullmatch(r"(\.venv/bin/)?shadow-rollout [\w-]+", ln))
    for ex in EXAMPLES:
        text = ex.read_text(encoding="utf-8").replace("\\\n", " ")
        for ln in re.findall(r"^\s*(shadow-rollout [^\n]+)$", text, re.M):
            found.setdefault(re.sub(r"\s+", " ", ln.strip()), []).append(str(ex.relative_to(ROOT)))
    return found


def _command(line: str) -> str | None:
    m = re.search(r"shadow-rollout\s+([\w-]+)", line)
    return m.group(1) if m else None


def _is_prose(line: str) -> bool:
    """A command named in a sentence, not a command line (its lines are run elsewhere)."""
    return line in PROSE


def not_here(line: str) -> NotHere | None:
    return next((n for n in NOT_HERE if re.search(n.pattern, line)), None)


def _force(line: str) -> tuple[str, list[str]]:
    """Set the forced options of the line's command; returns the line and what was changed."""
    cmd, changed = _command(line), []
    if cmd == "simulate" and "--serve" not in line and "--scenario" not in line:
        line, changed = f"{line} --scenario {DEFAULT_SCENARIO}", ["simulate: a micro scenario, not the demo"]
    forced = FORCED_SERVE if cmd == "simulate" and "--serve" in line else FORCED.get(cmd or "", {})
    for opt, value in forced.items():
        if re.search(rf"{opt}(?:\s+\S+|=\S+)", line):
            line = re.sub(rf"{opt}(?:\s+\S+|=\S+)", f"{opt} {value}", line)
        else:
            line = f"{line} {opt} {value}"
        changed.append(f"{opt} {value}")
    return line, changed


def runnable(line: str, where: dict[str, str]) -> str:
    """The line as it runs here: stand-in, forced options, rewrites, then the tmp paths filled in."""
    n = not_here(line)
    if n is not None:
        assert n.instead is not None, line
        line = n.instead(line)
    line, _ = _force(line)
    for pattern, repl, _why in REWRITES:
        line = re.sub(pattern, repl, line)
    for k, v in where.items():
        line = line.replace("{" + k + "}", v)
    return line


DOCUMENTED = documented()
SERVING = [ln for ln in DOCUMENTED if not not_here(ln) and ("--serve" in ln or _command(ln) == "standin")
           and not _is_prose(ln)]
APP_LINES = [ln for ln in DOCUMENTED if not not_here(ln) and ("--app " in ln or '"$APP/' in ln)]
RUN = [ln for ln in DOCUMENTED if ln not in SERVING and ln not in APP_LINES and not _is_prose(ln)
       and (not_here(ln) is None or not_here(ln).instead is not None)]  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------- running them
@dataclass
class Ran:
    line: str  # as run
    code: int
    stdout: str
    stderr: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}", "COLUMNS": "200", **extra}


def _shell(line: str, env: dict[str, str], timeout: float = 300) -> Ran:
    started = time.monotonic()
    p = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env=env)
    return Ran(line, p.returncode, p.stdout, p.stderr, time.monotonic() - started)


REQUEST = {"rollout_id": "doc-1", "targets": ["/subscriptions/00000000-0000-4000-8000-00000000d0c5/resourceGroups/"
                                              "rg-web/providers/Microsoft.Compute/virtualMachineScaleSets/web"],
           "change": {"change_id": "cfg-1", "kind": "run-command", "payload": {"script": "echo ok"}}}


def _workspace(tmp: Path) -> dict[str, str]:
    """The tmp dir the lines run against: inputs the docs assume, copies of what commands write to."""
    (tmp / "one").mkdir()
    shutil.copy(MICRO / "micro-crash.yaml", tmp / "one" / "micro-crash.yaml")
    shutil.copytree(ROOT / "model", tmp / "model")
    shutil.copytree(ROOT / "bench" / "results", tmp / "bench" / "results")
    shutil.copy(ROOT / "bench" / "README.md", tmp / "bench" / "README.md")
    (tmp / "request.yaml").write_text(json.dumps(REQUEST) + "\n", encoding="utf-8")
    from .test_intake_check import request

    for name in ("requests.jsonl", "hooks.jsonl", "approvals.jsonl"):  # intake-check's inputs: one valid, one not
        (tmp / name).write_text(json.dumps(request("doc-1")) + "\n{}\n", encoding="utf-8")
    return {"tmp": str(tmp), "micro": str(MICRO), "one": str(tmp / "one"), "bin": str(BIN), "venv": str(VENV)}


def _serve(line: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(shlex.split(line), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        body: dict[str, Any] = json.loads(resp.read())
        return body


def _run_serving(line: str, where: dict[str, str]) -> Ran:
    """Start a serving line, check its first line and one request, interrupt it: it must stop cleanly."""
    run = runnable(line, where)
    started = time.monotonic()
    proc, first = _serve(run, _env({}))
    notes = [f"first line: {first[:200]}"]
    try:
        if "--serve" in run:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/rollouts/[\w.-]+", first), first
            notes.append(f"GET: phase {_get(first).get('phase')}")
        else:
            info = json.loads(first)
            notes.append(f"stand-in info keys: {sorted(info)}")
    finally:
        code, err = _stop(proc)
    return Ran(run, code, first, err, time.monotonic() - started, notes)


def _wait_phase(url: str, phases: set[str], deadline: float) -> str:
    while (phase := str(_get(url).get("phase"))) not in phases:
        assert time.monotonic() < deadline, f"never reached {phases} (at {phase})"
        time.sleep(0.5)
    return phase


def _groups() -> list[list[str]]:
    """Which served rollout each app line runs against, in order. Approve needs the gate, so each approve line has
    a rollout of its own; the first also has the reads and the watch (after which the micro rollout soon ends),
    and each abort follows another approve (an abort is taken in any phase until the end) or has a rollout of its
    own."""
    approves = [ln for ln in APP_LINES if re.search(r"\bapprove\b", ln)]
    aborts = [ln for ln in APP_LINES if re.search(r"\babort\b", ln)]
    reads = [ln for ln in APP_LINES if ln not in approves and ln not in aborts]
    watches = [ln for ln in reads if " watch " in ln]
    groups = [[*(ln for ln in reads if ln not in watches), *approves[:1], *watches]]
    groups += [[ln] for ln in approves[1:]]
    for i, ln in enumerate(aborts, start=1):
        if i < len(groups):
            groups[i].append(ln)
        else:
            groups.append([ln])
    return groups


def _run_app_group(lines: list[str], where: dict[str, str]) -> dict[str, Ran]:
    """The lines against one rollout served from the docs' ``simulate --serve … --approval`` line."""
    serve = next(ln for ln in SERVING if "--approval" in ln)
    done: dict[str, Ran] = {}
    started = time.monotonic()
    proc, url = _serve(runnable(serve, where), _env({}))
    try:
        m = re.fullmatch(r"(http://127\.0\.0\.1:\d+/api)/rollouts/([\w.-]+)", url)
        assert m, f"first line is not the rollout's URL: {url!r}"
        env = _env({"APP": m.group(1), "KEY": "local-key", "AUTH": "X-Local: ignored"})
        for ln in lines:
            if re.search(r"\bapprove\b", ln) or (re.search(r"\babort\b", ln) and lines.index(ln) == 0):
                _wait_phase(url, {"awaiting_approval"}, time.monotonic() + 300)
            done[ln] = _shell(runnable(ln, where).replace(SERVED_ID, m.group(2)), env, timeout=180)
    finally:
        code, err = _stop(proc)
    done[serve] = Ran(runnable(serve, where), code, url, err, time.monotonic() - started, ["served the app lines"])
    return done


def _outcome(f: Future[Any], lines: list[str]) -> dict[str, Ran]:
    """A job's results; a job that raised fails each of its lines with the reason (not the whole module)."""
    try:
        r = f.result()
    except Exception as exc:
        return {ln: Ran("", -1, "", f"{type(exc).__name__}: {exc}", 0.0) for ln in lines}
    return r if isinstance(r, dict) else {lines[0]: r}


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ran]]:
    """Every runnable documented line, run once, several at a time (the serving ones meanwhile)."""
    where = _workspace(tmp_path_factory.mktemp("documented"))
    env = _env({"SERVICEBUS_NAMESPACE": "sb-stand-in.servicebus.windows.net"})
    results: dict[str, Ran] = {}
    # two at a time for the CPU-bound lines; the served rollouts (waiting on their clocks) meanwhile
    with ThreadPoolExecutor(max_workers=2) as pool, ThreadPoolExecutor(max_workers=4) as waiting:
        groups = [(g, waiting.submit(_run_app_group, g, where)) for g in _groups()]
        futures: dict[str, Future[Ran]] = {}
        # bench-report reads what bench wrote: run the bench lines first, in order, then the rest
        benches = [ln for ln in RUN if _command(ln) == "bench"]
        chain = pool.submit(lambda: {ln: _shell(runnable(ln, where), env) for ln in
                                     [*benches, *(ln for ln in RUN if _command(ln) == "bench-report")]})
        for ln in RUN:
            if _command(ln) not in ("bench", "bench-report"):
                futures[ln] = pool.submit(_shell, runnable(ln, where), env)
        for ln in SERVING:
            if "--approval" not in ln:  # that one serves the app lines
                futures[ln] = waiting.submit(_run_serving, ln, where)
        results.update({ln: _outcome(f, [ln])[ln] for ln, f in futures.items()})
        results.update(_outcome(chain, [ln for ln in RUN if _command(ln) in ("bench", "bench-report")]))
        serve = [ln for ln in SERVING if "--approval" in ln]
        for g, f in groups:
            results.update(_outcome(f, [*g, *serve]))
    # what each line cost, slowest first (tests/output/documented-commands.json)
    out = ROOT / "tests" / "output" / "documented-commands.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([{"documented": ln, "ran": r.line, "seconds": round(r.seconds, 1), "exit": r.code}
                               for ln, r in sorted(results.items(), key=lambda x: -x[1].seconds)], indent=1))
    yield results


@pytest.fixture(scope="module")
def committed_untouched() -> Iterator[None]:
    def status() -> str:
        return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", ".",
                               ":!tests/output"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    before = status()
    yield
    assert status() == before, "a documented command wrote into the repository"


# ------------------------------------------------------------------------------------------- the tests
def test_every_documented_line_is_run_or_declared_with_its_stand_in() -> None:
    assert len(DOCUMENTED) >= 40
    for ln in DOCUMENTED:
        n = not_here(ln)
        kind = ("serving" if ln in SERVING else "app" if ln in APP_LINES else "run" if ln in RUN
                else "prose" if _is_prose(ln) else f"not here: {n.why}" if n else None)
        assert kind is not None, f"{DOCUMENTED[ln]}: `{ln}` is neither run nor declared in NOT_HERE"
    # no stale declaration: each exception still matches a documented line, and the tests it names exist
    for n in NOT_HERE:
        assert any(re.search(n.pattern, ln) for ln in DOCUMENTED), f"NOT_HERE lists no documented line: {n.pattern}"
        for path in re.findall(r"tests/[\w/]+\.py", n.stand_in):
            assert (ROOT / path).is_file(), f"the stand-in names a test that does not exist: {path}"
    # a command named in prose has a line of its own that runs
    ran_commands = {_command(ln) for ln in [*RUN, *SERVING, *APP_LINES]}
    for ln in filter(_is_prose, DOCUMENTED):
        assert _command(ln) in ran_commands, f"{DOCUMENTED[ln]}: `{ln}` is named but no line of it runs"
    assert {"simulate", "publish", "bench", "bench-report", "bench-scale", "bench-import", "status", "watch",
            "approve", "abort", "list", "train", "evaluate", "retrain", "select-model", "standin", "janitor",
            "schema", "intake-check"} <= ran_commands


def test_make_bench_runs_only_documented_lines() -> None:
    p = subprocess.run(["make", "-n", f"VENV={VENV}", "-o", f"{VENV}/.installed", "bench"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    recipe = [re.sub(r"\s+", " ", ln.replace("\\\n", " ")).replace(f"{VENV}/bin/", ".venv/bin/").strip()
              for ln in p.stdout.replace("\\\n", " ").splitlines() if "shadow-rollout" in ln]
    assert len(recipe) >= 3
    for ln in recipe:
        assert ln in RUN or ln.replace(".venv/bin/", "") in RUN, f"make bench runs an undocumented line: {ln}"


@pytest.mark.parametrize("line", [*RUN, *SERVING, *APP_LINES],
                         ids=[f"{DOCUMENTED[ln][0]}: {ln[:70]}" for ln in [*RUN, *SERVING, *APP_LINES]])
def test_documented_line_runs(line: str, ran: dict[str, Ran], committed_untouched: None) -> None:
    r = ran[line]
    what = f"{DOCUMENTED[line]}: `{line}`\nran: `{r.line}`\n{r.stderr[-3000:]}"
    if line in SERVING:
        assert r.code in (0, -signal.SIGINT, 130) and "Traceback" not in r.stderr, what
        return
    assert r.code == 0, what
    if re.search(r"--json(?=\s|$)", r.line) and "| jq" not in r.line:
        json.loads(r.stdout)  # exactly the JSON on stdout
    if " watch " in line:
        assert "production done" in r.stdout, what
    if line.startswith("curl ") and " POST " in line:  # curl exits 0 on any reply: the reply says it was taken
        assert "sent to rollout" in json.loads(r.stdout)["reason"], what
    if re.search(r"shadow-rollout (approve|abort) ", line):
        assert "sent to rollout" in r.stdout, what
    if " intake-check " in r.line:  # a verdict per input line (one valid request, one empty object)
        verdicts = [json.loads(v) for v in r.stdout.splitlines()]
        assert len(verdicts) == 2 and all(v["code"] in CODES for v in verdicts), what
    if line == "make demo":  # the demo explains each phase and what it decided
        for phase in ("Cloning a stratified sample into the Spot shadow pool", "Baking: watching the shadows",
                      "Rolling production in waves", "Watching production after the last wave"):
            assert phase in r.stderr, what
        for word in ("skip_stratum", "rollback_vm", "withdraw_change", "scale_out", "scale_in", "recovered",
                     "Outcome: halted_in_production"):
            assert word in r.stdout, what
