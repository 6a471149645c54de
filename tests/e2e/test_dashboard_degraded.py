"""The dashboard in a real browser says when Redis is gone, keeps showing the last view, and recovers.

A real ``jupyter server`` reads its cluster state from a real redis-server (two nodes published as agents
would). The test opens the dashboard, SIGKILLs Redis, waits for the banner that names the outage while the
nodes stay on the page, restarts Redis on the same port and waits for the banner to go, with no reload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clusternb.state.redis import RedisStateStore
from tests.browser import chromium_page
from tests.helpers import make_snapshot
from tests.redis_server import RedisServer
from tests.server_process import JupyterServer

pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.redis]


def publish(url: str, names: tuple[str, ...]) -> None:
    store = RedisStateStore(url)
    for name in names:
        store.put(make_snapshot(name, time=time.time(), interval_s=3600.0))
    store.close()


@pytest.fixture
def server(redis_server: RedisServer) -> Iterator[JupyterServer]:
    extra = (
        "c.ClusterNBApp.state_store = None\n"
        "c.ClusterNBApp.push_interval = 0.5\n"
        f"c.ClusterNB.redis_url = {redis_server.url!r}\n"
        "c.ClusterNB.redis_socket_timeout = 0.2\n"
        "c.ClusterNB.interval = 1.0\n"
    )
    with JupyterServer(extra) as running:
        yield running


def test_the_banner_names_the_outage_keeps_the_last_view_and_goes_when_redis_returns(
    server: JupyterServer, redis_server: RedisServer
) -> None:
    publish(redis_server.url, ("alpha", "beta"))
    with chromium_page(1280, 900) as (page, errors):
        page.goto(server.url("clusternb/", token=True))
        page.wait_for_selector("#workers tbody tr[data-node='beta']", timeout=30_000)
        assert page.locator("#shared").is_hidden()

        redis_server.kill()
        page.wait_for_selector("#shared:not([hidden])", timeout=30_000)
        banner = page.locator("#shared").inner_text()
        assert "Redis unreachable since" in banner and "last view" in banner, banner
        assert page.locator("#workers tbody tr").count() == 2  # the last view, not an empty page
        assert page.locator("#conn").inner_text() == "live"  # the WebSocket stayed up

        redis_server.start()
        publish(redis_server.url, ("alpha", "beta", "gamma"))  # a restarted Redis is empty
        page.wait_for_selector("#workers tbody tr[data-node='gamma']", timeout=30_000)
        page.wait_for_selector("#shared[hidden]", state="attached", timeout=30_000)
    assert errors == []


@pytest.fixture
def limited_server() -> Iterator[JupyterServer]:
    """A server whose rate limit refuses a second subscription of the dashboard's 5 topics for a few seconds."""
    extra = "c.ClusterNBApp.push_interval = 0.5\nc.ClusterNBApp.rate_limit = 1.0\nc.ClusterNBApp.rate_burst = 5\n"
    with JupyterServer(extra, nodes=3) as running:
        yield running


def test_a_refused_subscription_is_shown_and_retried_when_the_server_says(limited_server: JupyterServer) -> None:
    """The dashboard used to log an error frame to the console only: under the rate limit (which WebSocket
    messages now share with REST) a reload left every card "waiting…" under a green "live" badge."""
    with chromium_page(1280, 900) as (page, errors):
        url = limited_server.url("clusternb/", token=True)
        page.goto(url)
        page.wait_for_selector("#workers tbody tr[data-node='node-0002']", timeout=30_000)
        page.goto(url)  # the bucket is empty: this subscription is refused with retry_after
        page.wait_for_selector("#notice:not([hidden])", timeout=30_000)
        assert "rate limit" in page.locator("#notice").inner_text()
        page.wait_for_selector("#workers tbody tr[data-node='node-0002']", timeout=30_000)
        page.wait_for_selector("#notice[hidden]", state="attached", timeout=30_000)
    assert errors == []
