"""Run every benchmark script: bench/*.py and bench/papers/*.py (``make bench``).

Each script runs in its own process with this interpreter, from the repository root, and
prints its own tables.  Scripts are discovered, so a new benchmark needs no registration here.
Exit status: 0 when every script exits 0, else 1 (the failures are listed at the end).

Usage: ``python bench/run_all.py [NAME_SUBSTRING ...]`` runs only the matching scripts.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

__all__ = ["discover", "main"]

ROOT = Path(__file__).resolve().parent.parent


def discover() -> list[Path]:
    """Return the benchmark scripts, bench/*.py then bench/papers/*.py, sorted, except this one."""
    here = Path(__file__).resolve()
    scripts = (sorted((ROOT / "bench").glob("*.py"))
               + sorted((ROOT / "bench" / "papers").glob("*.py")))
    return [s for s in scripts if s.resolve() != here and not s.name.startswith("_")]


def main(argv: list[str]) -> int:
    """Run the scripts whose path contains any of ``argv`` (all when empty)."""
    failed = []
    for script in discover():
        rel = script.relative_to(ROOT)
        if argv and not any(a in str(rel) for a in argv):
            continue
        print(f"\n=== {rel} " + "=" * max(0, 70 - len(str(rel))), flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=ROOT)
        print(f"--- {rel}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc:
            failed.append(str(rel))
    if failed:
        print("\nfailed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
