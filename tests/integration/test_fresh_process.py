"""A new user's first minutes, each in a fresh interpreter: ``import clusternb`` stays light, every public
function works as the very first call after it, every Python example of the README runs as written, and a
Run All of the notebooks `make lab` opens first leaves their panels live.

A fresh process is the point: a function that only works after some other module was imported (``@cached``
before any query, ``acknowledge()`` before any alert query) passes in a test process that imported everything.
Every child runs in embedded mode with no config file and no ``CLUSTERNB_*`` variable, unless its case sets one.

README examples are the fenced ``python`` blocks of README.md. One that cannot run on a bare host says so on the
line just above its fence, and runs against a real local stand-in; none is ever skipped (an example that cannot
run here needs a stand-in, or an unknown marker fails the test):

    <!-- example: cluster gpu-1 gpu-2 -->   a real redis-server and one `clusternb agent` per name; the block
                                            runs with CLUSTERNB_REDIS_URL set, once every agent has published
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import orjson
import pytest
from nbclient import NotebookClient

import clusternb
from clusternb.config import load_config
from clusternb.queries import Client
from tests.helpers import stop_process
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TIMEOUT = 180  # seconds a child may run: generous, two shared cores and pandas to import; not a timing check
#: A rule this host breaks on its first sample, so an alert fires without waiting for a real problem.
ALWAYS = [{"name": "always", "metric": "mem_used_percent", "op": ">", "threshold": 0, "for": 0}]


def child_env(**settings: str) -> dict[str, str]:
    """This environment without clusternb settings or Jupyter config files (a blank config dir), plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    env["JUPYTER_NO_CONFIG"] = "1"
    return {**env, **settings}


def run_python(code: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter, warnings shown (a first call must not print any)."""
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        env=child_env(**settings),
        check=False,
    )


def assert_clean(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stderr}"
    assert out.stderr == "", out.stderr
    assert out.stdout.splitlines()[-1:] == ["ok"], out.stdout


def test_import_stays_light(tmp_path: Path) -> None:
    """The agent and the CLI import the package: the heavy stack loads on first use, not at import."""
    code = (
        "import sys\nimport clusternb\n"
        "heavy = sorted({'pandas', 'pyarrow', 'ipywidgets', 'plotly', 'clusternb.queries'} & set(sys.modules))\n"
        "assert not heavy, heavy\nprint('ok')\n"
    )
    assert_clean(run_python(code, tmp_path))


# --- every public function, called first thing after `import clusternb` ------------------------------------

HOST = socket.gethostname()

#: name -> (code run right after `import clusternb`, with asserts on what it returns; settings for the child).
FIRST_CALLS: dict[str, tuple[str, dict[str, str]]] = {
    "acknowledge": (
        f"""
import time
alert_id = "always:{HOST}"
deadline = time.monotonic() + 60
while True:
    try:
        clusternb.acknowledge(alert_id, by="tester")
        break
    except ValueError as exc:  # the rule fires on the first sample, a moment after the client starts
        assert str(exc).startswith("alert_id: no active alert"), exc
        assert time.monotonic() < deadline, "the alert never fired"
        time.sleep(0.1)
row = clusternb.alerts().set_index("alert_id").loc[alert_id]
assert bool(row["acknowledged"]), row
""",
        {"CLUSTERNB_ALERT_RULES": orjson.dumps(ALWAYS).decode()},
    ),
    "alerts": (
        """
df = clusternb.alerts(active=False, since="1h", severity="warning", node=None)
from clusternb.frames import ALERT_COLUMNS  # after the call: the call must import what it needs itself
assert list(df.columns) == [c.name for c in ALERT_COLUMNS], df.columns  # rows: whatever this busy host fired
assert (df["severity"] == "warning").all(), df
""",
        {},
    ),
    "kernels": (
        """
df = clusternb.kernels(node=None, path="*.ipynb", min_memory="1MB", me=True)
from clusternb.columns import KERNEL_COLUMNS  # after the call: the call must import what it needs itself
assert list(df.columns) == [c.name for c in KERNEL_COLUMNS], df.columns
assert df.empty, df  # a notebook process is not a Jupyter server: no kernels are published here
""",
        {},
    ),
    "fields": (
        """
df = clusternb.fields()
assert {"workers", "metrics", "cluster_status", "alerts"} <= set(df["query"]), df["query"].unique()
assert {"name", "dtype", "unit", "description"} <= set(df.columns), df.columns
assert df.loc[df["name"] == "mem_used_bytes", "unit"].iloc[0], df
""",
        {},
    ),
    "alerts_panel": ("p = clusternb.alerts_panel(interval=2)\nassert not p.closed\np.close()\nassert p.closed\n", {}),
    "cache_status": (
        """
df = clusternb.cache_status()
assert "(all)" in df.index and df.loc["(all)", "backend"] == "memory", df
""",
        {},
    ),
    "cached": (
        """
loads = []

@clusternb.cached("inventory", ttl=60)
def racks(site: str) -> dict:
    loads.append(site)
    return {"site": site, "racks": 3}

assert racks("eu-1") == racks("eu-1") == {"site": "eu-1", "racks": 3}
assert loads == ["eu-1"], loads
value, entry = racks.with_entry("eu-1")
assert value == {"site": "eu-1", "racks": 3} and entry is not None and entry.content_hash
""",
        {},
    ),
    "cluster_status": (
        """
df = clusternb.cluster_status()
assert len(df) == 1 and df.loc[0, "nodes_total"] == 1, df.T
""",
        {},
    ),
    "connect": (
        """
client = clusternb.connect(interval=1)
assert clusternb.get_client() is client and client.settings.interval == 1.0
assert len(clusternb.workers()) == 1
""",
        {},
    ),
    "get_client": (
        """
client = clusternb.get_client()
assert type(client).__name__ == "Client" and clusternb.get_client() is client
""",
        {},
    ),
    "load_config": (
        """
settings = clusternb.load_config(interval=1, labels={"rack": "a1"})
assert settings.interval == 1.0 and settings.labels == {"rack": "a1"} and settings.redis_url == ""
""",
        {},
    ),
    "metrics": (
        """
df = clusternb.metrics("15m", fields=["cpu_percent", "net_rx_bps"])
assert list(df.columns) == ["time", "node", "cpu_percent", "net_rx_bps"], df.columns
""",
        {},
    ),
    "metrics_panel": (
        'p = clusternb.metrics_panel(since="5m", fields=["cpu_percent"], interval=2)\nassert not p.closed\np.close()\n',
        {},
    ),
    "panel": ("p = clusternb.panel(interval=2)\nassert not p.closed\np.close()\nassert p.closed\n", {}),
    "status_panel": ("p = clusternb.status_panel(interval=2)\nassert not p.closed\np.close()\n", {}),
    "workers": (
        f"""
df = clusternb.workers()
assert list(df.index) == [{HOST!r}] and df["status"].tolist() == ["online"], df
""",
        {},
    ),
    "workers_panel": ("p = clusternb.workers_panel(interval=2)\nassert not p.closed\np.close()\n", {}),
}


def public_functions() -> set[str]:
    return {name for name in clusternb.__all__ if inspect.isfunction(getattr(clusternb, name))}


def test_every_public_function_has_a_first_call() -> None:
    """A function added to ``__all__`` needs a case here, or this fails."""
    assert sorted(FIRST_CALLS) == sorted(public_functions())


@pytest.mark.parametrize("name", sorted(FIRST_CALLS))
def test_public_function_works_as_the_first_call(name: str, tmp_path: Path) -> None:
    code, settings = FIRST_CALLS[name]
    assert_clean(run_python(f"import clusternb\n{code}\nprint('ok')\n", tmp_path, **settings))


# --- the README's Python examples, as written ------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    line: int  # of the opening fence, for the test id and messages
    code: str
    needs: tuple[str, ...]  # the marker's words: () runs on a bare host


MARKER = re.compile(r"<!--\s*example:\s*(?P<words>.*?)\s*-->")
FENCE = re.compile(r"^```python\n(?P<code>.*?)^```", re.M | re.S)


def readme_examples() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    examples = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.fullmatch(before.strip())
        needs = tuple(marker["words"].split()) if marker else ()
        examples.append(Example(text.count("\n", 0, match.start()) + 1, match["code"], needs))
    return examples


EXAMPLES = readme_examples()


def test_the_readme_has_python_examples() -> None:
    # Guards the extraction itself: a changed fence style must not turn the next test into zero cases.
    assert len(EXAMPLES) >= 3 and all(e.code.strip() for e in EXAMPLES)


@dataclass
class Cluster:
    """A real redis-server and one ``clusternb agent`` process per node name, all stopped at teardown."""

    redis: RedisServer
    agents: list[subprocess.Popen[bytes]]

    @classmethod
    def start(cls, names: list[str], logs: Path) -> Cluster:
        try:
            redis = RedisServer().start()
        except RuntimeError as exc:
            pytest.fail(str(exc))
        cluster = cls(redis, [])
        for name in names:
            cmd = [sys.executable, "-m", "clusternb.cli", "agent", "--redis", redis.url, "--name", name]
            with open(logs / f"{name}.log", "wb") as log:
                proc = subprocess.Popen(
                    [*cmd, "--interval", "1"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=child_env()
                )
            cluster.agents.append(proc)
        return cluster

    def wait_online(self, names: list[str]) -> None:
        status: dict[str, str] = {}
        reader = Client(load_config(redis_url=self.redis.url, interval=1), sample_local=False)
        with reader, warnings.catch_warnings():
            # The point of waiting: no node has published yet, which queries rightly warn about.
            warnings.filterwarnings("ignore", message="no node has published")
            deadline = time.monotonic() + 60  # generous: each agent imports pandas before its first sample
            while time.monotonic() < deadline:
                status = {str(k): str(v) for k, v in reader.workers()["status"].items()}
                if all(status.get(n) == "online" for n in names):
                    return
                time.sleep(0.2)
        pytest.fail(f"agents {names} did not publish: {status}")

    def stop(self) -> None:
        for proc in self.agents:
            stop_process(proc)
        self.redis.stop()


@pytest.fixture
def stand_in(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The settings an example's marker asks for, with the real processes behind them running."""
    example: Example = request.param
    kind, *words = example.needs or ("bare",)
    if kind == "bare":
        yield {}
    elif kind == "cluster":
        cluster = Cluster.start(words, tmp_path)
        try:
            cluster.wait_online(words)
            yield {"CLUSTERNB_REDIS_URL": cluster.redis.url}
        finally:
            cluster.stop()
    else:
        pytest.fail(f"README.md:{example.line}: unknown example marker {kind!r}; known: cluster NODE...")


@pytest.mark.parametrize(
    ("example", "stand_in"),
    [(e, e) for e in EXAMPLES],
    ids=[f"README.md:{e.line}" for e in EXAMPLES],
    indirect=["stand_in"],
)
def test_readme_example_runs_as_written(example: Example, stand_in: dict[str, str], tmp_path: Path) -> None:
    """Each block alone in a fresh interpreter, as a reader pasting it into a new notebook would run it."""
    out = run_python(example.code + "\nprint('ok')\n", tmp_path, **stand_in)
    assert_clean(out)


# --- the notebooks: a Run All leaves the panels it shows live ---------------------------------------------

#: Run after the notebook's own cells, in its kernel: the panels still subscribed to the poller, and its thread.
PROBE = """
import json
from clusternb.widgets.poller import get_poller
_poller = get_poller()
_live = sorted(p.model_id for p in _poller.subscribers if not p.closed)
print(json.dumps({"live": _live, "thread": _poller.thread is not None and _poller.thread.is_alive()}))
"""


@pytest.mark.parametrize("name", ["quickstart", "panels"])
def test_run_all_leaves_the_notebooks_panels_live(name: str, tmp_path: Path) -> None:
    """quickstart shows the panel of the README's picture; neither notebook closes what it shows (a closed
    panel's view goes blank in Lab, so a Run All that ends by closing them shows nothing)."""
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)  # type: ignore[no-untyped-call]
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))  # type: ignore[no-untyped-call]
    NotebookClient(
        nb, timeout=TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    shown = [
        output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
        for cell in nb.cells[:-1]
        if cell.cell_type == "code"
        for output in cell.outputs
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    ]
    probe = orjson.loads(nb.cells[-1].outputs[-1]["text"])
    assert shown, f"{name}.ipynb shows no widget"
    assert set(shown) <= set(probe["live"]), f"shown {shown}, live {probe['live']}"
    assert probe["thread"], "the poller thread stopped"
