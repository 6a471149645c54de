"""A real ``jupyter lab`` subprocess with clusternb reading a real Redis, and real ``clusternb agent`` processes
(the Lab extension's end-to-end tests and benchmarks/bench_lab_frontend.py).

The Lab runs with its own config, settings and workspace dirs, the news pop-up off (overrides.json) and
``window.jupyterapp`` exposed, on a free loopback port with a fixed token; the server extension does not
sample its own host (the agents, or whoever publishes, are the cluster).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from tests.helpers import free_port, stop_process

TOKEN = "clusternb-lab-e2e"


class Agents:
    """Real ``clusternb agent`` subprocesses publishing to one Redis; kill and restart them by name."""

    def __init__(self, redis_url: str, tmp: Path, interval: float, env: dict[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.tmp = tmp
        self.interval = interval
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {**os.environ, **(env or {})}

    def start(self, name: str) -> None:
        cmd = [sys.executable, "-m", "clusternb.cli", "agent", "--redis", self.redis_url, "--name", name]
        cmd += ["--interval", str(self.interval)]
        log = (self.tmp / f"agent-{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self, name: str) -> None:
        """SIGKILL: the agent vanishes without recording a departure, as on a crashed host."""
        self.procs.pop(name).kill()

    def close(self) -> None:
        for proc in self.procs.values():
            stop_process(proc, timeout=5)


class Lab:
    """``with Lab(tmp, redis_url) as lab: page.goto(lab.url())``; ``app="notebook"`` runs Notebook 7 instead."""

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        base_url: str = "/",
        interval: float = 0.5,
        extension: bool = True,
        app: str = "lab",
        settings: Mapping[str, object] | None = None,
    ) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.base_url = base_url
        root = tmp / "notebooks"
        root.mkdir(exist_ok=True)
        app_settings = tmp / "app-settings"
        app_settings.mkdir(exist_ok=True)
        overrides = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}
        if settings:  # the clusternb extension's own settings (schema/plugin.json)
            overrides["clusternb-labextension:plugin"] = dict(settings)
        (app_settings / "overrides.json").write_text(json.dumps(overrides))
        config = tmp / "lab_config.py"
        config.write_text(
            "c = get_config()  # noqa\n"
            f"c.ServerApp.jpserver_extensions = {{'clusternb': {extension}}}\n"
            "c.ClusterNBApp.sample_host = False\n"
            "c.ClusterNBApp.push_interval = 0.5\n"
            f"c.ClusterNB.redis_url = {redis_url!r}\n"
            f"c.ClusterNB.interval = {interval}\n"
        )
        jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
        cls = "LabApp" if app == "lab" else "JupyterNotebookApp"
        self.home = "lab" if app == "lab" else "tree"
        self.cmd = [
            jupyter, app, "--no-browser", f"--port={self.port}", "--ip=127.0.0.1", f"--config={config}",
            f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", f"--ServerApp.base_url={base_url}",
            f"--{cls}.app_settings_dir={app_settings}", "--allow-root", f"--{cls}.expose_app_in_browser=True",
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(tmp / "user-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "lab.log"

    def url(self, path: str = "") -> str:
        path = path or self.home
        return f"http://127.0.0.1:{self.port}{self.base_url}{path}?token={TOKEN}"

    def __enter__(self) -> Lab:
        log = self.log.open("wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("jupyter lab did not start:\n" + self.log.read_text()[-3000:]) from None
                time.sleep(0.3)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=15)
            self.proc = None
