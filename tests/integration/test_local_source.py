"""The local sampler agrees with independent sources on this machine: /proc, os, statvfs, kernel counters."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from clusternb.sources.local import LocalSampler, SamplerOptions


def _meminfo_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def _proc_net_bytes(exclude: set[str]) -> tuple[int, int]:
    rx = tx = 0
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, data = line.split(":", 1)
            if name.strip() in exclude:
                continue
            fields = data.split()
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def test_static_values_match_the_kernel() -> None:
    sampler = LocalSampler(SamplerOptions(disk_path="/"))
    snap = sampler.sample()
    assert snap.mem_total_bytes == _meminfo_total_bytes()
    assert snap.cpu_count == os.cpu_count()
    st = os.statvfs("/")
    assert snap.disk_total_bytes == st.f_blocks * st.f_frsize
    assert 0 < snap.mem_used_bytes < snap.mem_total_bytes
    assert snap.mem_used_bytes + snap.mem_available_bytes == snap.mem_total_bytes
    assert snap.uptime_s > 0 and snap.load_1 >= 0
    assert snap.gpus == ()  # no GPU on this machine: an empty list, not an error
    assert abs(snap.time - time.time()) < 5


def _pump_loopback(total: int) -> None:
    """Send ``total`` bytes through a real TCP connection on 127.0.0.1 and wait until all arrive."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = 0

    def read() -> None:
        nonlocal received
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(1 << 20):
                received += len(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(b"x" * total)
    reader.join()
    server.close()
    assert received == total


def test_network_rates_match_kernel_counters_within_5_percent() -> None:
    # Loopback is excluded by default (net_exclude=["lo"]); include it here so the test can make traffic
    # of a known size without sending a byte off this machine.
    sampler = LocalSampler(SamplerOptions(net_exclude=()))
    rx0, tx0 = _proc_net_bytes(set())
    t0 = time.monotonic()
    _pump_loopback(64 * 2**20)
    time.sleep(0.5)
    rx1, tx1 = _proc_net_bytes(set())
    t1 = time.monotonic()
    snap = sampler.sample()
    kernel_rx = (rx1 - rx0) / (t1 - t0)
    kernel_tx = (tx1 - tx0) / (t1 - t0)
    assert kernel_rx > 10 * 2**20  # the traffic really happened
    assert snap.net_rx_bps == pytest.approx(kernel_rx, rel=0.05)
    assert snap.net_tx_bps == pytest.approx(kernel_tx, rel=0.05)


def test_loopback_is_excluded_by_default() -> None:
    sampler = LocalSampler()
    _pump_loopback(32 * 2**20)
    snap = sampler.sample()
    # All that traffic went through lo; what is left is the machine's real traffic, far below it.
    assert snap.net_rx_bps < 16 * 2**20


def test_cpu_percent_sees_a_busy_core() -> None:
    sampler = LocalSampler()
    stop = time.monotonic() + 1.0
    while time.monotonic() < stop:  # keep one of the cores busy for a second
        pass
    snap = sampler.sample()
    assert snap.cpu_percent >= 100 / (os.cpu_count() or 1) * 0.5


def test_missing_disk_path_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="disk_path '/no/such/dir' does not exist"):
        LocalSampler(SamplerOptions(disk_path="/no/such/dir"))
