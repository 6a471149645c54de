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
        (
            "md",
            """The same cluster, live: `clusternb.panel()` shows health, node counts and "as of", a workers table,
CPU / memory / network charts and the active alerts, and keeps them up to date while the notebook is open
(see `panels.ipynb` for its parts and controls).""",
        ),
        ("code", IGNORE + "clusternb.panel()"),
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
    "cache": [
        ("md", """# The query cache

Every clusternb query is cached: in Redis when `redis_url` is set (shared by every kernel and server
process), in memory otherwise. When Redis fails, calls are served from memory without an error, and Redis is
used again as soon as it answers. This notebook starts its own `redis-server` to show it."""),
        ("code", "import shutil\nimport socket\nimport subprocess\nimport time\n\nimport clusternb\n\nassert shutil.which(\"redis-server\"), \"this notebook needs redis-server (apt-get install redis-server)\"\nwith socket.socket() as s:\n    s.bind((\"127.0.0.1\", 0))\n    port = s.getsockname()[1]\n\n\ndef start_redis():\n    proc = subprocess.Popen([\"redis-server\", \"--port\", str(port), \"--save\", \"\", \"--appendonly\", \"no\"], stdout=subprocess.DEVNULL)\n    time.sleep(0.5)\n    return proc\n\n\nredis_proc = start_redis()\nclient = clusternb.connect(redis_url=f\"redis://127.0.0.1:{port}/0\")"),
        ("md", "Any function can use the same cache with `@clusternb.cached`; it keeps statistics per namespace."),
        ("code", "@clusternb.cached(\"demo\", ttl=60)\ndef slow_square(n):\n    time.sleep(0.2)\n    return n * n\n\n\n[slow_square(12) for _ in range(5)]"),
        ("code", "status = clusternb.cache_status()\nstatus.loc[[\"demo\"], [\"backend\", \"hits\", \"misses\", \"hit_rate\", \"loads\"]]"),
        ("md", "Now Redis dies (SIGKILL). The next calls still answer, from memory, and `cache_status()` says so."),
        ("code", "redis_proc.kill()\nredis_proc.wait()\n[slow_square(12) for _ in range(3)], clusternb.cache_status().loc[\"demo\", [\"backend\", \"redis_state\", \"fallbacks\"]].tolist()"),
        ("md", "Redis comes back: the cache notices within a couple of seconds, without restarting anything."),
        ("code", "redis_proc = start_redis()\ndeadline = time.monotonic() + 15\nwhile clusternb.cache_status().loc[\"(all)\", \"backend\"] != \"redis\" and time.monotonic() < deadline:\n    slow_square(12)\n    time.sleep(0.2)\nclusternb.cache_status().loc[\"demo\", [\"backend\", \"redis_state\", \"fallbacks\"]].tolist()"),
        ("code", IGNORE + "clusternb.cache_status()"),
        ("code", "client.close()\nredis_proc.terminate()\nredis_proc.wait()"),
    ],
    "multinode": [
        ("md", """# Many nodes on one machine

`clusternb.demo.Demo` starts a private `redis-server` and N `clusternb agent` processes with distinct node names,
so the multi-node views can be tried without a cluster (`clusternb demo` does the same from a terminal). In a
real cluster, run `clusternb agent --redis URL` on every node and `clusternb.connect(redis_url=URL)` here."""),
        ("code", "import time\n\nimport clusternb\nfrom clusternb.demo import Demo\n\ndemo = Demo(n_agents=3, interval=1.0).open()\ndemo.wait_ready(30)\nnb = clusternb.connect(redis_url=demo.url, interval=1.0)"),
        ("code", "workers = clusternb.workers()\nsorted(workers.index), workers[\"status\"].tolist(), workers[\"labels\"].tolist()"),
        ("code", IGNORE + "workers[[\"status\", \"age_s\", \"cpu_percent\", \"mem_used_percent\", \"net_rx_bps\"]]"),
        ("md", "Kill one agent with SIGKILL: after three of its intervals without a sample it shows `offline`, and a `node_offline` alert fires."),
        ("code", "demo.kill(\"demo-2\")\ndeadline = time.monotonic() + 30\nwhile clusternb.workers().loc[\"demo-2\", \"status\"] != \"offline\" and time.monotonic() < deadline:\n    time.sleep(0.5)\nclusternb.workers()[\"status\"].to_dict()"),
        ("code", "time.sleep(2)\nalerts = clusternb.alerts()\nalerts[alerts[\"rule\"] == \"node_offline\"][[\"alert_id\", \"severity\", \"state\"]].to_dict(\"records\")"),
        ("md", "Start it again, and stop another one cleanly (SIGTERM): it shows `left`, not `offline`."),
        ("code", "demo.start(\"demo-2\")\ndemo.stop(\"demo-3\")\ndeadline = time.monotonic() + 30\nwhile clusternb.workers()[\"status\"].to_dict() != {\"demo-1\": \"online\", \"demo-2\": \"online\", \"demo-3\": \"left\"} and time.monotonic() < deadline:\n    time.sleep(0.5)\nclusternb.workers()[\"status\"].to_dict()"),
        ("code", IGNORE + "clusternb.cluster_status().T"),
        ("code", IGNORE + "clusternb.metrics(\"5m\", fields=[\"cpu_percent\", \"mem_used_percent\"]).tail(6)"),
        ("code", "nb.close()\ndemo.close()"),
    ],
    "dask": [
        ("md", """# Dask workers as clusternb rows

Point clusternb at a Dask scheduler (`connect(dask="tcp://host:8786")` or a `distributed.Client`) and its
workers become rows of `workers()` and series of `metrics()`, its task counts columns of `cluster_status()`."""),
        ("code", "from distributed import Client, LocalCluster\n\nimport clusternb\n\ncluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=\"127.0.0.1:0\")\ndask_client = Client(cluster)\nnb = clusternb.connect(dask=dask_client, interval=1)"),
        ("code", "workers = clusternb.workers()\ndask_workers = workers[workers[\"source\"] == \"dask\"]\nsorted(dask_workers.index), dask_workers[\"threads\"].tolist()"),
        ("code", IGNORE + "dask_workers[[\"status\", \"threads\", \"cpu_percent\", \"mem_used_bytes\", \"mem_total_bytes\", \"net_rx_bps\"]]"),
        ("md", "Run some work and watch the task counts."),
        ("code", "import time\n\nfutures = dask_client.map(lambda x: x**2, range(100))\ntotal = dask_client.submit(sum, futures).result()\ntime.sleep(2.5)\nstatus = clusternb.cluster_status().iloc[0]\ntotal, int(status[\"dask_workers\"]), bool(status[\"tasks_memory\"] >= 100)"),
        ("code", IGNORE + "clusternb.cluster_status().filter(like=\"task\").T"),
        ("code", IGNORE + "clusternb.metrics(\"5m\", fields=[\"cpu_percent\", \"mem_used_bytes\"]).tail()"),
        ("code", "nb.close()\ndask_client.close()\ncluster.close()"),
    ],
    "panels": [
        ("md", """# Live panels

`clusternb.panel()` shows the cluster in one widget: health, node counts and "as of" in the header, a workers
table, CPU / memory / network charts (top 10 nodes plus a median and p10-p90 band beyond 100 nodes) and the
active alerts. It updates by itself, and only what changed is sent to the browser: a panel left open on
unchanged data sends nothing at all. Outside JupyterLab (nbconvert, GitHub, a terminal) the output shows a
static snapshot instead."""),
        ("code", "import time\n\nimport clusternb\n\nclusternb.connect(interval=1)\ntime.sleep(4)  # a few samples, so the charts have lines"),
        ("code", IGNORE + "p = clusternb.panel(interval=2)\np"),
        ("md", "The small panels it is made of can be shown on their own:"),
        ("code", IGNORE + "clusternb.status_panel()"),
        ("code", IGNORE + "clusternb.metrics_panel(since=\"5m\", fields=[\"cpu_percent\", \"load_1\"])"),
        ("md", """However many panels are open, one background thread per kernel polls for them: each query runs once
per tick, and each section re-renders only when its data changed."""),
        ("code", "from clusternb.widgets.poller import get_poller\n\npoller = get_poller()\nlen(poller.subscribers), poller.thread.name"),
        ("md", """`close()` stops a panel's work and unsubscribes it; when the last panel of a kernel closes, the poller
thread stops too. A panel made only to be closed (the ones above stay live):"""),
        ("code", "spare = clusternb.workers_panel()\nspare.close()\nspare.closed, len(poller.subscribers), poller.thread.is_alive()"),
        ("md", "The toolbar under each panel pauses it and sets its interval; the same in code:"),
        ("code", "p.interval = 5\np.pause()\np.paused, p.interval, p.interval_picker.value"),
        ("code", "p.resume()\np.paused"),
        ("md", "Every panel above is live and keeps updating while this notebook is open; `p.close()` stops one."),
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
