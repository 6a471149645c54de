"""A new numeric field is one declaration in the model plus the line of the source that fills it, and nothing else.

The test copies the package, makes exactly those two edits (``procs``, the number of processes, declared in
``model.py`` and filled by the local sampler), and checks in fresh processes that run the copy that the field is
then on every face: ``workers()``, ``metrics(fields=)``, ``clusternb.fields()``, the panel's workers table and
the CLI's, and from a real Jupyter server with the extension: REST, Prometheus (name and HELP text) and the
dashboard page's table columns. If a face kept its own list of fields, the new one would be missing there.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_process

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
DECLARATION = (
    '    procs: Annotated[Count, column("processes running", metric=True, prometheus="processes",'
    ' heading="procs", table=TABLES)] | None = None\n'
)
FILLED = "            procs=len(psutil.pids()),\n"

PYTHON_FACES = """
import json, sys
import clusternb
from clusternb import cli
from clusternb.widgets import views

assert clusternb.__file__.startswith(sys.argv[1]), clusternb.__file__
workers = clusternb.workers()
metrics = clusternb.metrics(fields=["procs"])
fields = clusternb.fields()
row = fields[(fields["query"] == "workers") & (fields["name"] == "procs")].iloc[0]
print(json.dumps({
    "workers": [str(workers["procs"].dtype), int(workers["procs"].iloc[0])],
    "metrics": list(metrics.columns),
    "fields": sorted(fields.loc[fields["name"] == "procs", "query"]),
    "described": [row["dtype"], row["description"], float(row["min"]), float(row["max"])],
    "panel": "<th" in views.workers_html(workers) and ">procs</th>" in views.workers_html(workers),
}))
"""


def _insert_after(path: Path, anchor: str, line: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, text in enumerate(lines) if text.startswith(anchor))
    path.write_text("".join([*lines[: at + 1], line, *lines[at + 1 :]]))


@pytest.fixture(scope="module")
def patched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package with the field declared and filled; the diff is those two lines."""
    root = tmp_path_factory.mktemp("new-field")
    shutil.copytree(REPO / "clusternb", root / "clusternb", ignore=shutil.ignore_patterns("__pycache__"))
    _insert_after(root / "clusternb" / "model.py", "    uptime_s: Annotated[Seconds", DECLARATION)
    _insert_after(root / "clusternb" / "sources" / "local.py", "            uptime_s=round(", FILLED)
    added = []
    for name in ("model.py", "sources/local.py"):
        before = (REPO / "clusternb" / name).read_text().splitlines(keepends=True)
        after = (root / "clusternb" / name).read_text().splitlines(keepends=True)
        added += [
            d[1:] for d in difflib.unified_diff(before, after, n=0) if d[0] in "+-" and d[:3] not in ("+++", "---")
        ]
    assert added == [DECLARATION, FILLED]
    return root


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=root, env=_env(root), capture_output=True, text=True, timeout=120, check=False)


def _env(root: Path) -> dict[str, str]:
    """This environment without clusternb settings (embedded mode: this host, no Redis), running the copy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLUSTERNB_")}
    return {**env, "PYTHONPATH": str(root)}


def test_the_new_field_is_in_the_queries_the_catalogue_and_the_panel(patched: Path) -> None:
    done = _run(patched, sys.executable, "-c", PYTHON_FACES, str(patched))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    dtype, value = seen["workers"]
    assert dtype == "Int64" and value > 0
    assert seen["metrics"] == ["time", "node", "procs"]
    assert seen["fields"] == ["metrics", "workers"]
    assert seen["described"] == ["Int64", "processes running", 0.0, float(2**20)]
    assert seen["panel"] is True


def test_the_new_field_is_in_the_cli_workers_table(patched: Path) -> None:
    done = _run(patched, sys.executable, "-m", "clusternb.cli", "workers")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert "procs" in header


def _get(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        data: bytes = response.read()
        return data


def test_the_new_field_is_served_by_rest_prometheus_and_the_dashboard(patched: Path, tmp_path: Path) -> None:
    port, token = free_port(), "new-field-token"
    env = _env(patched)
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    cmd = [sys.executable, "-m", "jupyter", "server", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port_retries=0"]
    cmd += ["--ServerApp.jpserver_extensions={'clusternb': True}"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = tmp_path / "server.log"
    proc = subprocess.Popen(cmd, cwd=patched, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/clusternb/"
    try:
        body = None
        deadline = time.monotonic() + 60
        while body is None or not body["data"]:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                body = json.loads(_get(base + "api/workers", token))
            except OSError:
                time.sleep(0.3)
        assert "procs" in body["columns"]
        assert body["data"][0]["procs"] > 0
        exposition = _get(base + "metrics", token).decode()
        assert "# HELP clusternb_node_processes processes running" in exposition
        assert "\nclusternb_node_processes{" in exposition
        page = _get(base, token).decode()
        assert '"name": "procs"' in page or '"name":"procs"' in page
    finally:
        stop_process(proc, timeout=10)
