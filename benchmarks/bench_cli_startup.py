"""Start-up of the CLI: `clusternb status` as a fresh process beside `import pandas` and `import clusternb`.

    python benchmarks/bench_cli_startup.py [--python PATH ...] [--runs N]

Every case is a new process of an installed interpreter (default: this one), in embedded mode (no
``CLUSTERNB_*`` variable, no Jupyter config file), timed from spawn to exit with perf_counter_ns. All cases of
all interpreters alternate run by run, so machine noise hits each alike; median and p99 of ``--runs`` runs
after one warm-up round. One table per interpreter, saying whether its install holds compiled bytecode; the
ratio column is against ``import pandas`` in the same install, the floor of any command that prints a frame.

``PYTHONDONTWRITEBYTECODE=1`` is set, so measuring writes no ``.pyc`` and each install is timed as it was
installed (as a read-only or shared install, or an environment that sets the variable, runs it every time).
To see what ``--compile-bytecode`` (the Makefile's installs) buys, time two throwaway installs::

    uv venv /tmp/a && uv pip install -p /tmp/a/bin/python --no-compile -e .
    uv venv /tmp/b && uv pip install -p /tmp/b/bin/python --compile-bytecode -e .
    python benchmarks/bench_cli_startup.py --python /tmp/a/bin/python --python /tmp/b/bin/python
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._util import Result, summarize, table

BASELINE = "python -c 'import pandas'"


def cases(python: Path) -> dict[str, list[str]]:
    """Command lines by case name; the console script is the one installed beside ``python``."""
    return {
        "python -c pass": [str(python), "-c", "pass"],
        BASELINE: [str(python), "-c", "import pandas"],
        "python -c 'import clusternb'": [str(python), "-c", "import clusternb"],
        "clusternb status": [str(python.parent / "clusternb"), "status"],
    }


def embedded_env() -> dict[str, str]:
    """This environment less clusternb's settings and Jupyter's config files: embedded mode, defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_") and k != "PYTHONPYCACHEPREFIX"}
    return {**env, "JUPYTER_NO_CONFIG": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def measure_processes(commands: dict[tuple[Path, str], list[str]], runs: int) -> dict[tuple[Path, str], Result]:
    env = embedded_env()
    samples: dict[tuple[Path, str], list[int]] = {key: [] for key in commands}
    clock = time.perf_counter_ns
    for rnd in range(runs + 1):  # round 0 warms the page cache and is not counted
        for key, cmd in commands.items():
            start = clock()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            if rnd:
                samples[key].append(clock() - start)
    return {key: summarize(key[1], s) for key, s in samples.items()}


def has_bytecode(python: Path) -> bool:
    """Whether the install holds compiled bytecode for pandas (what ``--compile-bytecode`` leaves behind)."""
    code = (
        "import importlib.util, os\n"
        "print(os.path.exists(importlib.util.cache_from_source(importlib.util.find_spec('pandas').origin)))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, env=embedded_env())
    return out.stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", type=Path, action="append", help="interpreter of an install (repeatable)")
    parser.add_argument("--runs", type=int, default=15, help="runs of each case")
    args = parser.parse_args()
    # Not resolved: a venv's python is a symlink to the base interpreter, and the venv is what is measured.
    pythons = [p.absolute() for p in args.python or [Path(sys.executable)]]
    commands = {(python, name): cmd for python in pythons for name, cmd in cases(python).items()}
    results = measure_processes(commands, args.runs)
    for python in pythons:
        bytecode = "compiled" if has_bytecode(python) else "none"
        rows = [results[python, name] for name in cases(python)]
        print(table(f"{python} (bytecode in the install: {bytecode})", rows, baseline=BASELINE))
        print()


if __name__ == "__main__":
    main()
