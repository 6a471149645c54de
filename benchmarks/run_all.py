"""Run every benchmark script in this folder, one after the other, printing their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    scripts = sorted(HERE.glob("bench_*.py"))
    failed = 0
    for script in scripts:
        print(f"\n## {script.name}\n", flush=True)
        failed += subprocess.run([sys.executable, str(script)], check=False).returncode != 0
    sys.exit(1 if failed else 0)
