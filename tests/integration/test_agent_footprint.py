"""What a real ``clusternb agent`` process has imported once it has published: none of the heavy stack.

The agent runs on every node for weeks, so each module it loads is RSS on every node (issue 17: the agent's
memory). ``tests/integration/test_fresh_process.py`` checks ``import clusternb`` alone; this checks the running
agent, which also loads the sampler, the Redis link, the state store and the alert runtime, so a top-level
``import pandas`` (or PyYAML, or pynvml on a host with no NVIDIA driver) in any of them fails here.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusternb.sources.gpu import nvml_driver_missing
from clusternb.state.redis import RedisStateStore
from tests.helpers import stop_process
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis

#: The agent's entry point as the ``clusternb`` script runs it, writing ``sys.modules`` to a file at exit
#: (after its SIGTERM handler has recorded the departure: every module of start, loop and exit is listed).
AGENT = (
    "import atexit, sys\n"
    "out = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
    "from clusternb.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)

#: Modules the agent never needs: the notebook and server stack, and the query layer over pandas.
NEVER = (
    "pandas",
    "numpy",
    "pyarrow",
    "plotly",
    "ipywidgets",
    "IPython",
    "tornado",
    "jinja2",
    "jupyter_server",
    "clusternb.queries",
    "clusternb.frames",
    "clusternb.server",
    "clusternb.widgets",
)
#: Modules it needs only for input it was not given: a YAML rules file.
NOT_WITHOUT_A_YAML_FILE = ("yaml", "clusternb.alerting.yaml_rules")


def agent_modules(url: str, tmp_path: Path) -> set[str]:
    """The modules of a real agent that published to ``url`` at least twice and then got SIGTERM."""
    listing = tmp_path / "modules.txt"
    log = tmp_path / "agent.log"
    cmd = [sys.executable, "-c", AGENT, str(listing), "agent", "--redis", url, "--name", "footprint"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "--interval", "0.2"], stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    reader = RedisStateStore(url, socket_timeout=2.0)
    try:
        deadline = time.monotonic() + 60  # generous: two shared cores
        first = None
        while time.monotonic() < deadline:
            seen = {s.node: s.time for s in reader.latest()}
            if "footprint" in seen:
                first = first or seen["footprint"]
                if seen["footprint"] > first:  # a second sample: the loop, not only start-up, has run
                    break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        else:
            raise AssertionError(f"the agent never published twice:\n{log.read_text()}")
    finally:
        reader.close()
        stop_process(proc)  # SIGTERM: the agent leaves, main returns, atexit writes the listing
    assert proc.returncode == 0, log.read_text()
    return set(listing.read_text().split())


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """The ``names`` (packages count with their submodules) present in ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_a_running_agent_imports_no_heavy_module(redis_server: RedisServer, tmp_path: Path) -> None:
    modules = agent_modules(redis_server.url, tmp_path)
    assert "clusternb.agent" in modules and "redis" in modules  # it is the agent, and it talked to Redis
    assert loaded(modules, NEVER) == []
    assert loaded(modules, NOT_WITHOUT_A_YAML_FILE) == []
    if nvml_driver_missing() is not None:  # no NVIDIA driver here: NVML could only fail, its module is not loaded
        assert loaded(modules, ("pynvml",)) == []
