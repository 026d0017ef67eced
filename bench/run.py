"""Run every benchmark (bench/bench_*.py) and write one JSON file each plus bench/results/summary.json.

    python -m bench.run            # all
    python -m bench.run startup    # only bench_startup.py

Each module exposes ``run() -> dict`` with its figures, a ratio against a reference measured in the same
run (these machines are noisy, so absolute numbers only give scale), the target, and ``passed``.
Each runs in its own process so that one benchmark's memory and threads do not colour another's.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def last_json_object(text: str) -> dict | None:
    """The last JSON object printed (compact on one line or indented over several)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("{"):
            try:
                value = json.loads("\n".join(lines[i:]))
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def run_one(name: str) -> dict:
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", f"bench.bench_{name}"], cwd=HERE.parent,
                          capture_output=True, text=True, timeout=1800)
    result = last_json_object(proc.stdout)
    if result is None:
        result = {"error": (proc.stderr or proc.stdout)[-2000:], "returncode": proc.returncode, "passed": False}
    result.setdefault("seconds", round(time.time() - started, 1))
    return result


def main(argv: list[str]) -> int:
    names = argv or discover()
    RESULTS.mkdir(exist_ok=True)
    summary = {}
    for name in names:
        print(f"== {name}", flush=True)
        result = run_one(name)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
        summary[name] = result
        print(json.dumps(result, indent=2), flush=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {RESULTS}/summary.json")
    return 0 if all(r.get("passed") for r in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
