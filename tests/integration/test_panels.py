"""Live panels against a recording comm: unchanged data sends nothing, a change sends one batch to one section.

The comm is replaced the way ipywidgets' own tests do it (``widgets/tests/utils.py``): ``comm.create_comm``
returns a comm that records every message instead of talking to a kernel. Ticks are driven synchronously with
``poller.tick()``; the store is a MemoryStateStore the test writes into, with no local sampler.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from typing import Any

import comm
import ipywidgets
import pytest

from clusternb.config import load_config
from clusternb.queries import Client
from clusternb.state.memory import MemoryStateStore
from clusternb.widgets import panel as panels
from clusternb.widgets.poller import Poller, get_poller
from tests.comms import RecordingComm, clear, sent
from tests.helpers import make_snapshot


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    RecordingComm.instances = []
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield
    ipywidgets.Widget.close_all()


@pytest.fixture
def client() -> Iterator[Client]:
    # Generous liveness thresholds: the test's snapshots must not turn stale while it runs.
    settings = load_config(interval=0.1, stale_after=3600, offline_after=7200)
    c = Client(settings, store=MemoryStateStore(), sample_local=False)
    now = time.time()
    for i in range(3):
        for t in range(5):
            c.store.put(make_snapshot(f"n{i}", time=now - 10 + 2 * t, cpu_percent=10.0 + 5 * i + t))
    yield c
    c.close()


def make_panel(client: Client, poller: Poller, **kwargs: Any) -> panels.Panel:
    sections = [
        *panels.status_sections(),
        *panels.workers_sections(),
        *panels.metrics_sections(kwargs.pop("since", "15m"), kwargs.pop("fields", None), 10),
        *panels.alerts_sections(),
    ]
    return panels.Panel(sections, client=client, poller=poller, **kwargs)


def test_unchanged_data_sends_no_message(client: Client) -> None:
    poller = Poller(autostart=False)
    p = make_panel(client, poller)
    assert sent() > 0  # the first paint
    clear()
    for i in range(12):
        report = poller.tick(force=True)
        assert report.errors == []
        if i % 4 == 3:
            time.sleep(0.15)  # a new freshness bucket: the held results still stand (nothing they read moved)
    assert sent() == 0
    assert all(s.renders == 1 for s in p.sections)  # nothing recomputed, so nothing even re-rendered
    poller.unregister(p)  # the poller forgets what it held: results come from the cache, with a new as_of ...
    poller.register(p)
    assert poller.tick(force=True).errors == []
    assert sent() == 0  # ... and still nothing is sent, because nothing shown changed
    assert any(s.renders > 1 for s in p.sections)  # the header really did re-render and compare


def test_one_changed_section_sends_one_batched_update(client: Client) -> None:
    snap = make_snapshot("n0", time=time.time(), disk_used_bytes=99 * 2**30)  # disk_critical fires at once
    client.store.put(snap)
    client.alerting.on_sample(snap)
    poller = Poller(autostart=False)
    p = make_panel(client, poller)
    alerts = p.sections[-1]
    assert "disk" in alerts.view.value
    clear()
    poller.tick(force=True)
    assert sent() == 0
    alert_id = str(client.alerts()["alert_id"].iloc[0])
    client.acknowledge(alert_id)  # changes what the alerts section shows, and nothing else
    report = poller.tick(force=True)
    assert report.updated == 1
    changed = [c for c in RecordingComm.instances if c.messages]
    assert changed == [alerts.view.comm]
    (message,) = alerts.view.comm.messages
    assert message["method"] == "update"
    assert list(message["state"]) == ["value"]
    assert "acknowledged" in message["state"]["value"]


def test_chart_change_is_one_plotly_update(client: Client) -> None:
    poller = Poller(autostart=False)
    p = panels.Panel(panels.metrics_sections("15m", ["cpu_percent"], 10), client=client, poller=poller)
    (chart,) = p.sections
    clear()
    client.store.put(make_snapshot("n1", time=time.time(), cpu_percent=77.0))
    poller.tick(force=True)
    changed = [c for c in RecordingComm.instances if c.messages]
    assert changed == [chart.view.comm]
    updates = [m["state"]["_py2js_update"] for m in chart.view.comm.messages if m["state"].get("_py2js_update")]
    assert len(updates) == 1  # one Plotly.update: every trace change of the tick in one batch
    assert updates[0]["style_data"]["y"][0][-1] == 77.0


def test_two_panels_share_one_poller_and_close_stops_its_thread(client: Client) -> None:
    big = panels.panel(interval=3600, client=client)
    small = panels.workers_panel(interval=3600, client=client)
    poller = get_poller()
    assert big._poller is small._poller is poller
    thread = poller.thread
    assert thread is not None and thread.is_alive()
    assert [t.name for t in threading.enumerate()].count("clusternb-panels") == 1
    reused = poller.reused
    report = poller.tick(force=True)
    assert report.subscribers == 2
    # cluster, workers, metrics, kernels, alerts: "workers" runs once for both panels (metrics may be reused)
    assert report.queries + poller.reused - reused == 5
    small.close()
    assert poller.thread is thread and thread.is_alive()
    big.close()
    assert poller.thread is None
    assert not thread.is_alive()
    assert "clusternb-panels" not in [t.name for t in threading.enumerate()]


def test_closing_the_widget_stops_the_thread(client: Client) -> None:
    panels.status_panel(interval=3600, client=client)
    thread = get_poller().thread
    assert thread is not None
    ipywidgets.Widget.close_all()  # what closing every widget of the kernel does
    assert get_poller().thread is None and not thread.is_alive()


def test_thread_updates_live_in_the_creating_cells_context(client: Client) -> None:
    cell = contextvars.ContextVar("cell", default="none")
    cell.set("cell-7")
    p = panels.status_panel(interval=0.2, client=client)
    seen: list[tuple[str, str]] = []
    original = p.apply

    def spy(results: Any) -> int:
        seen.append((threading.current_thread().name, cell.get()))
        return original(results)

    p.apply = spy  # type: ignore[method-assign]
    header = p.sections[0].view
    clear()
    client.store.put(make_snapshot("n9", time=time.time()))
    deadline = time.monotonic() + 10
    while not header.comm.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert header.comm.messages, "the poller thread never sent the change"
    assert ("clusternb-panels", "cell-7") in seen
    p.close()


def test_interval_pause_and_resume(client: Client) -> None:
    poller = Poller(autostart=False)
    p = panels.Panel(panels.status_sections(), client=client, poller=poller)
    p.interval = 1
    assert p.interval_picker.value == 1.0 and "every 1 s" in p.status_line.value
    p.interval_picker.value = 5.0  # the toolbar control
    assert p.interval == 5.0
    with pytest.raises(ValueError, match="interval"):
        p.interval = 0
    p.pause()
    assert p.paused and "paused" in p.status_line.value
    client.store.put(make_snapshot("n5", time=time.time()))
    assert poller.tick(force=True).subscribers == 0
    p.resume()
    assert poller.tick(force=True).updated == 1


def test_interval_and_paused_are_traits_the_toolbar_follows(client: Client) -> None:
    p = panels.Panel(panels.status_sections(), interval=7, client=client, poller=Poller(autostart=False))
    assert p.interval_picker.value == 7.0 and ("7", 7.0) in p.interval_picker.options
    seen: list[Any] = []
    p.observe(lambda change: seen.append((change["name"], change["new"])), ["interval", "paused"])
    p.interval = 7.5  # not offered yet: the picker offers it, and its reset to the first option never leaks back
    assert p.interval_picker.value == 7.5 and "every 7.5 s" in p.status_line.value
    p.interval_picker.value = 2.0
    for bad in (True, "5", float("nan")):
        with pytest.raises(ValueError, match=r"^interval: "):
            p.interval = bad
    p.pause_button.value = True  # the toolbar button
    assert (p.pause_button.description, p.pause_button.icon) == ("Resume", "play")
    p.resume()
    assert not p.pause_button.value and (p.pause_button.description, p.pause_button.icon) == ("Pause", "pause")
    assert seen == [("interval", 7.5), ("interval", 2.0), ("paused", True), ("paused", False)]
    assert p.snapshot_text().startswith("clusternb panel (live, every 2 s)")


def test_errors_show_in_the_status_line(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    poller = Poller(autostart=False)
    p = panels.Panel(panels.workers_sections(), client=client, poller=poller)

    def broken(name: str, **params: Any) -> Any:
        raise ConnectionError("state store unreachable")

    monkeypatch.setattr(client, "query", broken)
    client.store.put(make_snapshot("n7", time=time.time()))  # new data: the tick must query, not reuse
    report = poller.tick(force=True)
    assert report.errors == []  # the panel handled it ...
    assert "state store unreachable" in p.status_line.value  # ... by showing it
    monkeypatch.undo()
    client.store.put(make_snapshot("n8", time=time.time()))
    poller.tick(force=True)
    assert "error" not in p.status_line.value


def test_repr_has_static_snapshot_next_to_the_widget_view(client: Client) -> None:
    p = panels.Panel(panels.status_sections(), client=client, poller=Poller(autostart=False))
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "3/3 nodes online" in bundle["text/plain"]
    assert "clusternb-static" in bundle["text/html"] and "healthy" in bundle["text/html"]


def test_without_a_front_end_no_thread_starts(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(comm, "create_comm", comm.DummyComm)  # a terminal / plain script
    p = panels.panel(client=client)
    assert not p.live and get_poller().thread is None
    assert "CPU busy" in p._repr_mimebundle_()["text/plain"]


def test_metrics_result_is_reused_while_the_store_is_unchanged(client: Client) -> None:
    poller = Poller(autostart=False)
    panels.Panel(panels.metrics_sections("15m", None, 10), client=client, poller=poller)
    hits = client.cache_status().loc["metrics", "hits"]
    # The cache holds the same entry (metrics stand 30 s while the generation has not moved: one policy, the
    # cache's): the poller hands out the result it holds, uncopied, and the read is counted as a cache hit.
    assert poller.tick(force=True).queries == 0 and poller.reused == 1
    assert client.cache_status().loc["metrics", "hits"] == hits + 1
    client.store.put(make_snapshot("n1", time=time.time()))
    assert poller.tick(force=True).queries == 1


def test_the_poller_holds_results_per_client_and_only_those_a_panel_wants(client: Client) -> None:
    poller = Poller(autostart=False)
    other = Client(load_config(interval=0.1), store=MemoryStateStore(), sample_local=False)
    try:
        assert other.serial != client.serial  # unlike an id(), never reused by a later client
        mine = panels.Panel(panels.status_sections(), client=client, poller=poller)
        theirs = panels.Panel(panels.status_sections(), client=other, poller=poller)
        poller.tick(force=True)
        held = {serial for serial, _ in poller._memo}
        assert held == {client.serial, other.serial}
        theirs.close()  # the other client's results are no longer wanted: dropped at the next tick
        poller.tick(force=True)
        assert {serial for serial, _ in poller._memo} == {client.serial}
        assert not mine.closed
    finally:
        other.close()
