"""Where the agent's memory goes, what each way of saving some costs, and the agent beside its peers.

    python benchmarks/bench_agent_memory.py [--seconds 20] [--before REV]

1. Import steps: a fresh interpreter imports, in the agent's order, each library and clusternb module the agent
   loads, and reports VmRSS and the number of modules after each step (a step that adds nothing was already
   loaded by an earlier one: ``redis.cluster`` and ``redis.asyncio`` come with ``import redis``).
2. Side by side, in one run, started together and measured after the same wall time at a 1 s interval:
   ``clusternb agent`` as shipped, the same agent under each option that does not change its code (a malloc
   setting, the pure-Python Redis parser, ``gc.freeze()``, ``-OO``, no bytecode cache), the agent of git
   revision ``--before`` (exported with ``git archive``, run with the same interpreter), a bare psutil loop
   (the floor: the same kernel reads and nothing else) and ``glances --stdout`` (the peer). For each: VmRSS
   now, VmHWM (peak), and RssAnon/RssFile (the interpreter's heap, versus shared-library and file pages).

Bytecode of every tree is written first (even under PYTHONDONTWRITEBYTECODE), so that no measured process
holds the compiler's memory, except the one variant that shows what a missing bytecode cache costs.

Every agent publishes to one local redis-server, which the script checks before reporting (an agent whose
publishes fail would be smaller than a working one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from clusternb.state.redis import RedisStateStore  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

#: What the agent imports, in the order it meets it; ssl and asyncio apart, as redis-py imports both (and cannot
#: do without ssl: with ``sys.modules["ssl"] = None``, ``import redis`` fails in ``redis.asyncio.connection``,
#: whose ``SSLConnection`` annotates with ``ssl.VerifyMode`` at class definition). Libraries clusternb loads
#: only on some hosts or for some input come last, so the clusternb rows show what each revision loads itself.
STEPS = (
    "psutil",
    "msgspec",
    "orjson",
    "traitlets.config",
    "ssl",
    "asyncio",
    "redis",
    "redis.cluster",
    "redis.asyncio",
    "hiredis",
    "clusternb.model",
    "clusternb.config",
    "clusternb.sources.local",
    "clusternb.redisio.link",
    "clusternb.state.redis",
    "clusternb.alerting.runtime",
    "clusternb.alerting.store",
    "clusternb.agent",
    "clusternb.cli",
    "jupyter_core.paths",  # at start: the search path of config files
    "ctypes",  # at start, on Linux: is there an NVIDIA driver library?
    "yaml",  # with a YAML rules file (before issue 17: always)
    "pynvml",  # with an NVIDIA driver (before issue 17: always)
)

IMPORT_STEPS = textwrap.dedent(
    """
    import importlib, json, sys, time
    def status():
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
        return out
    rows = [("(interpreter)", status()["VmRSS"], len(sys.modules), 0.0)]
    for name in sys.argv[1:]:
        start = time.perf_counter()
        importlib.import_module(name)
        rows.append((name, status()["VmRSS"], len(sys.modules), time.perf_counter() - start))
    rows.append(("(modules the agent did not need)", 0, 0, 0.0))
    heavy = sorted(m for m in ("pandas", "numpy", "pyarrow", "plotly", "ipywidgets", "jinja2", "tornado")
                   if m in sys.modules)
    print(json.dumps({"rows": rows, "heavy": heavy}))
    """
)

#: The agent with an optional prelude, run as ``python -c``; the prelude runs before the CLI parses anything.
AGENT = "import sys\n{prelude}\nfrom clusternb.cli import main\nsys.exit(main(sys.argv[1:]))\n"

#: ``gc.freeze()`` once every module the agent needs is imported: what is left is moved out of the collector's
#: generations, so later collections neither walk nor touch it.
GC_FREEZE = textwrap.dedent(
    """
    import gc
    import clusternb.agent, clusternb.alerting.runtime, clusternb.alerting.store, clusternb.state.redis
    gc.collect()
    gc.freeze()
    """
)

BARE_LOOP = textwrap.dedent(
    """
    import os, sys, time, psutil
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        psutil.cpu_times(); psutil.disk_io_counters(); psutil.net_io_counters(pernic=True)
        psutil.virtual_memory(); psutil.swap_memory(); psutil.disk_usage("/"); os.getloadavg()
        time.sleep(1.0)
    """
)


@dataclass
class Variant:
    """One measured process: an agent under an option, or a peer."""

    name: str
    note: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    node: str | None = None  # the agent's node name, checked in Redis; None for the peers


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of ``pid``, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) * 1024
    return out


def import_steps(tree: Path) -> tuple[list[tuple[str, int, int, float]], list[str]]:
    """VmRSS, module count and import time after each of :data:`STEPS`, importing clusternb from ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-c", IMPORT_STEPS, *STEPS]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tree, env=env)
    data = json.loads(out.stdout)
    return [(r[0], r[1], r[2], r[3]) for r in data["rows"]][:-1], data["heavy"]


def export_revision(rev: str, into: Path) -> Path:
    """The tree of ``rev`` (the clusternb package only) in ``into``, to run its agent with this interpreter."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", rev, "clusternb"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


#: Every module the agent imports, so that each tree's bytecode (and the -OO one) is written before measuring:
#: a first run that compiles holds the compiler's memory, which is not the steady state.
AGENT_MODULES = (
    "import clusternb.cli, clusternb.agent, clusternb.state.redis, clusternb.alerting.runtime, "
    "clusternb.alerting.store, clusternb.sources.local, clusternb.config, redis.cluster, jupyter_core.paths"
)


def warm_bytecode(before: Path | None) -> None:
    """Write the bytecode of every tree measured, even where PYTHONDONTWRITEBYTECODE is set (CI sets it)."""
    for flags, cwd in (([], ROOT), (["-OO"], ROOT), ([], before)):
        if cwd is not None:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(cwd)}
            subprocess.run([sys.executable, *flags, "-c", AGENT_MODULES], cwd=cwd, env=env, check=True)


def variants(url: str, seconds: float, before: Path | None, rev: str | None, empty_cache: Path) -> list[Variant]:
    def agent(name: str, node: str, note: str, prelude: str = "", env: dict[str, str] | None = None) -> Variant:
        argv = [sys.executable, "-c", AGENT.format(prelude=prelude), "agent", "--redis", url, "--name", node]
        return Variant(name, note, [*argv, "--interval", "1"], env or {}, node=node)

    out = []
    if before is not None:
        old = agent(f"agent at {rev}", "before", "the revision before these changes")
        old.cwd = before
        out.append(old)
    out += [
        agent("clusternb agent", "shipped", "as shipped"),
        agent("  MALLOC_ARENA_MAX=2", "arenas", "glibc arenas capped", env={"MALLOC_ARENA_MAX": "2"}),
        agent("  PYTHONMALLOC=malloc", "malloc", "no pymalloc pools", env={"PYTHONMALLOC": "malloc"}),
        agent(
            "  without hiredis",
            "purepy",
            "redis-py's pure-Python parser",
            prelude="sys.modules['hiredis'] = None  # import hiredis fails: redis-py falls back",
        ),
        agent("  gc.freeze() after imports", "frozen", "collector skips start-up objects", prelude=GC_FREEZE),
        agent(
            "  no bytecode cache",
            "nopyc",
            "compiles every module at start",
            env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(empty_cache)},
        ),
        agent("  python -OO", "oo", "docstrings and asserts stripped", env={"PYTHONOPTIMIZE": "2"}),
        Variant("bare psutil loop", "the floor", [sys.executable, "-c", BARE_LOOP, str(seconds + 60)]),
    ]
    glances = shutil.which("glances") or str(Path(sys.executable).parent / "glances")
    if Path(glances).exists():
        out.append(
            Variant("glances --stdout", "the peer", [glances, "--stdout", "cpu.total,mem.percent,load", "-t", "1"])
        )
    return out


def run_side_by_side(runs: list[Variant], seconds: float) -> dict[str, dict[str, int]]:
    procs = {}
    for v in runs:
        env = {**os.environ, "PYTHONPATH": str(v.cwd), **v.env}
        procs[v.name] = subprocess.Popen(
            v.argv, cwd=v.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
    try:
        time.sleep(seconds)
        measured = {}
        for name, proc in procs.items():
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise SystemExit(f"{name} exited early ({proc.returncode}): {err.decode()[-2000:]}")
            measured[name] = status(proc.pid)
        return measured
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(15)


def check_published(url: str, runs: list[Variant]) -> None:
    store = RedisStateStore(url, socket_timeout=2.0)
    try:
        seen = {snap.node for snap in store.latest()}
    finally:
        store.close()
    missing = [v.name for v in runs if v.node is not None and v.node not in seen]
    if missing:
        raise SystemExit(f"these agents published nothing, their figures would flatter them: {missing}")


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="wall time before measuring (1 s interval)")
    parser.add_argument("--before", metavar="REV", help="also run the agent of this git revision (e.g. HEAD~1)")
    args = parser.parse_args()

    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            before = export_revision(args.before, Path(tmp) / "before") if args.before else None
            warm_bytecode(before)
            rows, heavy = import_steps(ROOT)
            old_rows = import_steps(before)[0] if before is not None else None
            empty = Path(tmp) / "no-pycache"  # a pycache prefix holding nothing: every import compiles
            runs = variants(server.url, args.seconds, before, args.before, empty)
            measured = run_side_by_side(runs, args.seconds)
        check_published(server.url, runs)
    finally:
        server.stop()

    print("### RSS after each import step (fresh interpreter, the agent's order)\n")
    old_head = f" VmRSS at {args.before} | + this step |" if old_rows else ""
    print(f"| step |{old_head} VmRSS | + this step | modules | import time |")
    print("|---|" + ("---:|---:|" if old_rows else "") + "---:|---:|---:|---:|")
    for i, (name, rss, modules, seconds) in enumerate(rows):
        old = ""
        if old_rows:
            old = f" {mib(old_rows[i][1])} | {mib(old_rows[i][1] - old_rows[max(i - 1, 0)][1])} |"
        added = mib(rss - rows[max(i - 1, 0)][1])
        print(f"| {name} |{old} {mib(rss)} | {added} | {modules} | {seconds * 1e3:.0f} ms |")
    print(f"\nheavy modules loaded by these imports: {heavy or 'none'}\n")

    print(f"### One node's memory after {args.seconds:.0f} s at a 1 s interval (same run, side by side)\n")
    print("| process | VmRSS | peak (VmHWM) | anon | file | × bare psutil | what |")
    print("|---|---:|---:|---:|---:|---:|---|")
    bare = measured["bare psutil loop"]["VmHWM"]
    for v in runs:
        m = measured[v.name]
        ratio = m["VmHWM"] / bare
        print(
            f"| {v.name} | {mib(m['VmRSS'])} | {mib(m['VmHWM'])} | {mib(m['RssAnon'])} | {mib(m['RssFile'])} "
            f"| {ratio:.2f} | {v.note} |"
        )
    agent = measured["clusternb agent"]["VmHWM"]
    print()
    if "glances --stdout" in measured:
        peer = measured["glances --stdout"]["VmHWM"]
        print(f"{'PASS' if agent < peer else 'MISS'}  agent peak below Glances' ({mib(agent)} vs {mib(peer)})")
    print(f"{'PASS' if agent <= 30 * 2**20 else 'MISS'}  agent peak at most 30 MiB ({mib(agent)})")


if __name__ == "__main__":
    main()
