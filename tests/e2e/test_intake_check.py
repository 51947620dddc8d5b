"""``shadow-rollout intake-check``: 1,000 malformed lines per kind give 1,000 verdicts from the documented code
set, none an internal error and never a traceback; a valid own-schema request gets ``start``."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shared.intake.check import CODES

from ..integration.stack import devops_event, principal_header, request, vmss

ROOT = Path(__file__).resolve().parents[2]
NASTY: list[Any] = [None, True, 0, -1, 10**40, 1.5, "", " ", "\\ud800", "web\n", "..", "%2F", "WEB", "\u0430pi",
                    "\x00", "\x1b[31m", [], {}, [[[[[]]]]], {"a": {"b": {"c": {}}}}, "x" * 5000, vmss("web") + "\n",
                    vmss(".."), vmss("web").upper(), "/subscriptions/x"]
RAW = ["{", "[" * 2000 + "]" * 2000, "NaN", '{"a": Infinity}', '{"rollout_id": -Infinity}', "\ufeff{}",
       '"\\ud800"', '{"a": "\\udfff"}', "null", "1" * 5000, '{"a":1,"a":2}', "\x00", "garbage"]
APPCONFIG = {"id": "e-1", "eventType": "Microsoft.AppConfiguration.KeyValueModified", "subject": "s",
             "topic": "/subscriptions/x/providers/Microsoft.AppConfiguration/configurationStores/cfg",
             "data": {"key": "web:x", "label": "prod", "etag": "t"}, "dataVersion": "1"}


def _mutate(doc: Any, rng: random.Random) -> Any:
    """Replace one field anywhere in ``doc`` (a copy) with a nasty value."""
    doc = json.loads(json.dumps(doc))
    node = doc
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = rng.choice(keys)
        if rng.random() < 0.4 or not isinstance(node[k], dict | list) or not node[k]:
            node[k] = rng.choice(NASTY)
            break
        node = node[k]
    return doc


def malformed_lines(template: dict[str, Any], n: int = 1000, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.6:
            line = json.dumps(_mutate(template, rng), ensure_ascii=rng.random() < 0.5)
        elif r < 0.8:
            line = rng.choice(RAW)
        else:
            line = json.dumps(template)[: rng.randrange(1, 40)]  # truncated
        out.append(line.replace("\n", "\\n").replace("\r", "\\r"))
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("shadow-rollout", path=str(Path(sys.executable).parent))
    assert exe, "the shadow-rollout console command is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(("kind", "template", "extra"), [
    ("servicebus", request("own"), []),
    ("devops", devops_event(), []),
    ("eventgrid", APPCONFIG, []),
    ("http", request("own"), ["--route", "start", "--principal",
                              '{"name": "ci@example.com", "roles": ["Rollout.Request"]}']),
])
def test_a_thousand_malformed_lines_give_a_thousand_verdicts_none_internal(
        tmp_path: Path, kind: str, template: dict[str, Any], extra: list[str]) -> None:
    path = tmp_path / f"{kind}.jsonl"
    path.write_text("\n".join(malformed_lines(template)) + "\n", encoding="utf-8", errors="surrogatepass")
    p = cli("intake-check", "--kind", kind, "--jsonl", str(path), "--config",
            str(ROOT / "docs/examples/intake.yaml"), *extra)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr[-2000:]
    verdicts = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(verdicts) == 1000
    assert all(v["code"] in CODES and v["code"] != "internal_error" for v in verdicts), \
        [v for v in verdicts if v["code"] == "internal_error"][:3]
    assert all(v["verdict"] in ("start", "duplicate", "rejected", "ignored") for v in verdicts)
    assert all(isinstance(v["reason"], str) and v["reason"] for v in verdicts)
    assert sum(v["verdict"] == "rejected" for v in verdicts) > 500


def test_valid_own_schema_requests_get_start_and_a_repeat_is_a_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    lines = [json.dumps(request("pipeline-42")), json.dumps(request("pipeline-43")), json.dumps(request("pipeline-42"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    p = cli("intake-check", "--kind", "servicebus", "--jsonl", str(path))
    assert p.returncode == 0, p.stderr
    verdicts = [json.loads(line) for line in p.stdout.splitlines()]
    assert [(v["verdict"], v["rollout_id"]) for v in verdicts] == [
        ("start", "pipeline-42"), ("start", "pipeline-43"), ("duplicate", "pipeline-42")]
    assert all("scope checks are skipped" in v["note"] for v in verdicts)  # no --config: the verdict says so


def test_http_routes_check_the_principal_and_its_roles(tmp_path: Path) -> None:
    path = tmp_path / "approve.jsonl"
    path.write_text(json.dumps({"rollout_id": "r1", "body": {"reason": "ok", "by": "x"}}) + "\n" + "[]\n",
                    encoding="utf-8")
    p = cli("intake-check", "--kind", "http", "--route", "approve", "--jsonl", str(path),
            "--principal", '{"name": "ops@example.com", "roles": ["Rollout.Operate"]}')
    first, second = (json.loads(line) for line in p.stdout.splitlines())
    assert first["verdict"] == "rejected" and first["code"] == "forbidden" and "Rollout.Approve" in first["reason"]
    assert second["code"] == "malformed"
    assert principal_header("a", ["Rollout.Approve"])  # the header the binding reads is what --principal builds


def test_an_event_grid_line_may_hold_an_array_with_per_event_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "eg.jsonl"
    path.write_text(json.dumps([APPCONFIG, {**APPCONFIG, "id": 7}]) + "\n", encoding="utf-8")
    p = cli("intake-check", "--kind", "eventgrid", "--jsonl", str(path), "--config",
            str(ROOT / "docs/examples/intake.yaml"))
    [v] = [json.loads(line) for line in p.stdout.splitlines()]
    assert v["verdict"] == "rejected" and [e["code"] for e in v["events"]][1] == "malformed"
