"""Service probes against real local services: one up, others down, each reported and alerted on."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.sources.probes import ProbeRunner, check_url
from clusternb.state.memory import MemoryStateStore
from tests.helpers import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        code = 500 if self.path == "/broken" else 200
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_up_and_down_services_are_reported(web: str) -> None:
    dead = free_port()
    runner = ProbeRunner(
        {
            "web": f"{web}/",
            "broken": f"{web}/broken",
            "nothing": f"tcp://127.0.0.1:{dead}",
            "webtcp": web.replace("http", "tcp"),
        },
        timeout=2.0,
    )
    results = {r.name: r for r in runner.run()}
    runner.close()
    assert results["web"].up and results["webtcp"].up
    assert not results["broken"].up and "500" in results["broken"].error
    assert not results["nothing"].up and "Connection" in results["nothing"].error
    assert results["web"].latency_ms >= 0


def test_cluster_status_and_service_down_alert(web: str) -> None:
    dead = free_port()
    settings = load_config(
        interval=0.3,
        services={"web": f"{web}/", "db": f"tcp://127.0.0.1:{dead}"},
        alert_rules=[{"name": "service_down", "for": 0}],
    )
    with Client(settings, store=MemoryStateStore(), sample_local=False) as c:
        status = c.cluster_status().iloc[0]
        assert status["services_total"] == 2 and status["services_down"] == 1
        assert "web=up" in status["services"] and "db=down" in status["services"]
        deadline = time.monotonic() + 10
        while c.alerts().empty and time.monotonic() < deadline:
            time.sleep(0.1)
        alerts = c.alerts()
        assert list(alerts["alert_id"]) == ["service_down:db"] and alerts.loc[0, "severity"] == "critical"


@pytest.mark.parametrize("url", ["ftp://x", "tcp://host", "web", "http://"])
def test_bad_probe_targets_name_the_service(url: str) -> None:
    with pytest.raises(ValueError, match=r"services\['svc'\]"):
        check_url("svc", url)
