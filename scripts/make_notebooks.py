"""Write the example notebooks from the cell lists below, then execute them in place (outputs stored).

Run `python scripts/make_notebooks.py [name ...]` after changing a notebook's cells: nbval compares the stored
outputs on every `make test`. Widget state is stripped (it would embed megabytes per FigureWidget).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent / "notebooks"
IGNORE = "# NBVAL_IGNORE_OUTPUT\n"

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "quickstart": [
        (
            "md",
            """# clusternb quick start

clusternb answers questions about the machines you compute on with pandas objects. With no configuration it
watches this host (embedded mode): a background thread samples it every 2 s, and every query is cached in
memory. Point it at Redis (`clusternb.connect(redis_url=...)` or `CLUSTERNB_REDIS_URL`) to see a whole
cluster of nodes running `clusternb agent`.""",
        ),
        (
            "code",
            'import clusternb\n\nstatus = clusternb.cluster_status()\nstatus[["nodes_total", "nodes_online", "health"]]',
        ),
        ("md", "`workers()` has one row per node, indexed by node name. Units are in the column names."),
        (
            "code",
            'workers = clusternb.workers()\nlen(workers), workers["status"].tolist(), workers["gpu_count"].tolist()',
        ),
        ("code", IGNORE + "workers.T"),
        (
            "md",
            "Statuses are ordered categoricals and times are tz-aware UTC, so they sort and filter as expected.",
        ),
        ("code", 'workers["status"].dtype, workers["last_seen"].dtype'),
        (
            "md",
            "`metrics()` is a tidy time series: one row per node per sample. Let a few samples accumulate first.",
        ),
        (
            "code",
            'import time\n\ntime.sleep(5)\nm = clusternb.metrics(since="15m", fields=["cpu_percent", "mem_used_percent", "net_rx_bps"])\nlist(m.columns), len(m) >= 2',
        ),
        ("code", IGNORE + "m.tail()"),
        ("md", "A chart of it with plotly:"),
        (
            "code",
            IGNORE
            + 'import plotly.express as px\n\npx.line(m, x="time", y="cpu_percent", color="node", title="CPU busy, %")',
        ),
        ("md", "Bad arguments get a clear `ValueError` naming the argument:"),
        ("code", 'try:\n    clusternb.metrics(since="banana")\nexcept ValueError as err:\n    print(err)'),
    ],
}


def build(name: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in NOTEBOOKS[name]:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        nb.cells.append(cell)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    nb.metadata.pop("widgets", None)
    for index, cell in enumerate(nb.cells):
        cell.id = f"{name}-{index}"  # stable ids keep diffs readable
        cell.metadata.pop("execution", None)
    path = ROOT / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    for wanted in sys.argv[1:] or list(NOTEBOOKS):
        print("wrote", build(wanted))
