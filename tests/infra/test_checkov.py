"""checkov scans infra/ with no failed check; every check skipped says why, inline, beside the resource."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

from .bicep import INFRA

MIN_REASON = 30  # characters: a reason, not "ok" or "n/a"


@cache
def _scan() -> dict[str, Any]:
    exe = Path(sys.executable).with_name("checkov")
    command = [str(exe) if exe.is_file() else shutil.which("checkov") or "checkov"]
    # --skip-download: no Prisma Cloud guidelines or policies are fetched; the scan is the same offline
    command += ["--directory", str(INFRA), "--framework", "bicep", "--output", "json", "--compact",
                "--skip-download"]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert run.stdout.strip(), f"checkov printed nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    # one framework: a dict; checkov gives a list when several ran
    return report[0] if isinstance(report, list) else report  # type: ignore[no-any-return]


def _checks(kind: str) -> list[dict[str, Any]]:
    return list(_scan()["results"][kind])


def test_checkov_scans_every_template_without_parse_errors() -> None:
    summary = _scan()["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 20, summary
    assert summary["passed"] >= 20, summary


def test_checkov_finds_no_failed_check_in_infra() -> None:
    failed = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']}:{c['file_line_range']})"
              for c in _checks("failed_checks")]
    assert not failed, "fix the template, or suppress inline with the reason:\n" + "\n".join(failed)


def test_every_skipped_check_says_why() -> None:
    terse = [f"{c['check_id']} on {c['resource']}: {c['check_result'].get('suppress_comment')!r}"
             for c in _checks("skipped_checks")
             if len((c["check_result"].get("suppress_comment") or "").strip()) < MIN_REASON]
    assert not terse, terse


def test_every_inline_suppression_is_one_checkov_still_runs() -> None:
    """A suppression whose check no longer runs is a stale excuse: remove it (or the test tells you)."""
    written = set()
    for path in INFRA.rglob("*.bicep"):
        for line in path.read_text().splitlines():
            if "checkov:skip=" in line:
                check = line.split("checkov:skip=", 1)[1].split(":", 1)[0].strip()
                written.add((path.name, check))
    used = {(Path(c["file_path"]).name, c["check_id"]) for c in _checks("skipped_checks")}
    assert written == used, f"suppressions that skip nothing: {sorted(written - used)}"
