"""The function app's import time: what every cold start and scale-out pays before the first trigger runs.

Measured in fresh interpreters (one per repeat, like a new worker), with the modules the import loaded; reported
as a benchmark figure (``shadow-rollout bench-import``, bench/results/import.json), never asserted as a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HEAVY = ("scipy", "sklearn", "skl2onnx", "matplotlib", "onnxruntime", "numpy", "pydantic", "azure.functions",
         "azure.durable_functions")
_PROBE = """
import json, sys, time
t = time.perf_counter()
import function_app
s = time.perf_counter() - t
print(json.dumps({"seconds": s, "modules": len(sys.modules), "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def measure(repeats: int = 7, root: Path | None = None) -> dict[str, Any]:
    """Median and spread of ``import function_app`` over ``repeats`` fresh interpreters."""
    code = f"HEAVY = {list(HEAVY)!r}\n{_PROBE}"
    runs = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], cwd=root or Path.cwd(), capture_output=True, text=True,
                             check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    seconds = sorted(r["seconds"] for r in runs)
    return {"repeats": repeats, "median_seconds": round(statistics.median(seconds), 3),
            "min_seconds": round(seconds[0], 3), "max_seconds": round(seconds[-1], 3),
            "modules_loaded": runs[0]["modules"], "heavy_loaded": runs[0]["loaded"],
            "python": sys.version.split()[0], "cpus": os.cpu_count(),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "note": "wall time of `import function_app` in a fresh interpreter; the machine is shared, so the "
                    "spread is the load, the median the figure"}
