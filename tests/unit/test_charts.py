"""Pure chart building: one line per node below the many-node threshold, top-k plus median and band above."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clusternb import frames
from clusternb.widgets import charts
from tests.helpers import make_snapshot

T0 = 1_700_000_000.0


def metrics(nodes: int, samples: int = 5, fields: tuple[str, ...] = frames.METRIC_FIELDS) -> pd.DataFrame:
    snaps = [
        make_snapshot(f"n{i:03d}", time=T0 + 2 * t, cpu_percent=float(i % 100), net_rx_bps=100.0 * i, net_tx_bps=1.0)
        for i in range(nodes)
        for t in range(samples)
    ]
    return frames.metrics_frame(snaps, fields)


CPU, MEMORY, NETWORK = charts.DEFAULT_CHARTS


def test_few_nodes_get_one_line_each_in_name_order() -> None:
    traces = charts.traces(metrics(3), CPU)
    assert [t["name"] for t in traces] == ["n000", "n001", "n002"]
    assert traces[1]["y"] == [1.0] * 5
    assert traces[0]["x"][0] == "2023-11-14T22:13:20.000Z"
    assert len({t["line"]["color"] for t in traces}) == 3


def test_columns_are_summed_for_network() -> None:
    traces = charts.traces(metrics(2), NETWORK)
    assert traces[1]["y"][0] == 101.0  # rx 100 + tx 1


def test_many_nodes_get_band_median_and_top_k() -> None:
    traces = charts.traces(metrics(150), CPU, top_k=10)
    names = [t["name"] for t in traces]
    assert names[:3] == ["p10", "p10-p90", "median"]
    assert len(traces) == 3 + 10
    # cpu is i % 100, so the ten busiest (mean 90-99) are n090..n099
    assert set(names[3:]) == {f"n{i:03d}" for i in range(90, 100)}
    lo, hi, mid = traces[0]["y"][0], traces[1]["y"][0], traces[2]["y"][0]
    assert lo < mid < hi
    assert traces[1]["fill"] == "tonexty" and traces[0]["showlegend"] is False


def test_quantiles_per_time_bin() -> None:
    data = charts.series(metrics(100, samples=3), CPU)
    lo, mid, hi = charts.quantile_band(data)
    assert len(mid) == 3  # one bin per sampling instant (bin = median spacing, 2 s)
    assert mid.iloc[0] == pytest.approx(49.5)
    assert lo.iloc[0] == pytest.approx(9.9) and hi.iloc[0] == pytest.approx(89.1)


def test_threshold_is_configurable() -> None:
    assert len(charts.traces(metrics(5), CPU, many=4, top_k=2)) == 3 + 2


def test_output_is_deterministic_and_json_able() -> None:
    frame = metrics(120)
    a = json.dumps(charts.figure_dict(frame, MEMORY), sort_keys=True)
    b = json.dumps(charts.figure_dict(frame.copy(), MEMORY), sort_keys=True)
    assert a == b


def test_missing_values_become_gaps_and_empty_frames_no_traces() -> None:
    frame = metrics(2, fields=("gpu_util_percent",))  # no GPUs: every value NaN
    assert charts.traces(frame, charts.spec_for_field("gpu_util_percent")) == []
    assert charts.traces(metrics(0), CPU) == []


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        charts.traces(metrics(2, fields=("cpu_percent",)), MEMORY)


def test_spec_for_field_units_from_names() -> None:
    assert charts.spec_for_field("net_rx_bps").unit == "B/s"
    assert charts.spec_for_field("mem_used_bytes").unit == "B"
    assert charts.spec_for_field("gpu_temperature_c").unit == "°C"
    assert charts.spec_for_field("cpu_percent").y_max == 100.0


def test_layout_keeps_user_zoom_and_fixes_percent_range() -> None:
    layout = charts.layout(CPU)
    assert layout["uirevision"] == "cpu"
    assert layout["yaxis"]["range"] == [0, 105.0]
    assert "range" not in charts.layout(NETWORK)["yaxis"]


def test_axis_ranges_follow_the_data() -> None:
    figure = charts.figure_dict(metrics(2), NETWORK)
    assert figure["layout"]["xaxis"]["range"] == ["2023-11-14T22:13:20.000Z", "2023-11-14T22:13:28.000Z"]
    assert figure["layout"]["yaxis"]["range"] == [0, round(101.0 * 1.05, 3)]
    assert charts.axis_ranges([], CPU) == {"yaxis": {"range": [0, 105.0]}}


def test_static_svg_draws_one_polyline_per_trace() -> None:
    traces = charts.traces(metrics(3), CPU)
    svg = charts.svg(traces, CPU)
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "no data" in charts.svg([], CPU)
    assert charts.svg(charts.traces(metrics(2, samples=1), CPU), CPU).count("<circle") == 2


PHISHING = '<a href="https://evil.example/login">Session expired: click to log in</a>'


def test_a_node_name_reaches_plotly_as_text_never_as_markup() -> None:
    frame = frames.metrics_frame(
        [make_snapshot(PHISHING, time=T0 + t) for t in range(3)] + [make_snapshot("$x$ & 'y'", time=T0)],
        frames.METRIC_FIELDS,
    )
    for spec in charts.DEFAULT_CHARTS:
        figure = charts.figure_dict(frame, spec)
        names = [t["name"] for t in figure["data"]]
        assert "&lt;a href=&#34;https://evil.example/login&#34;&gt;Session expired: click to log in&lt;/a&gt;" in names
        assert "&#36;x&#36; &amp; &#39;y&#39;" in names  # $...$ would be TeX where MathJax is loaded
        text = json.dumps(figure)
        assert "<" not in text and "$x$" not in text  # nowhere: names, hover, titles
    # The many-node view (top-k lines) escapes the same way.
    names = [t["name"] for t in charts.traces(frame, CPU, many=1, top_k=5)]
    assert "&lt;a href=&#34;https://evil.example/login&#34;&gt;Session expired: click to log in&lt;/a&gt;" in names


def test_plotly_text_escapes_what_plotly_would_read_as_markup() -> None:
    assert charts.plotly_text("<b>x</b><br>") == "&lt;b&gt;x&lt;/b&gt;&lt;br&gt;"
    assert charts.plotly_text("a&b \"c\" 'd' $e$") == "a&amp;b &#34;c&#34; &#39;d&#39; &#36;e&#36;"
    assert charts.plotly_text("node-0001.example.org") == "node-0001.example.org"  # plain names unchanged


def test_rate_axes_have_si_ticks_in_bytes_per_second() -> None:
    axis = charts.layout(NETWORK)["yaxis"]
    assert axis["ticksuffix"] == "B/s" and axis["tickformat"] == "~s"
    # An idle network still gets an axis up to 10 B/s, so its ticks never read 200mB/s.
    idle = metrics(2).assign(net_rx_bps=0.0, net_tx_bps=0.0)
    assert charts.figure_dict(idle, NETWORK)["layout"]["yaxis"]["range"] == [0, 10.5]


def test_byte_axes_have_iec_ticks() -> None:
    spec = charts.spec_for_field("mem_used_bytes")
    frame = metrics(2, fields=("mem_used_bytes",))  # 4 GiB each
    axis = charts.figure_dict(frame, spec)["layout"]["yaxis"]
    assert axis["ticktext"] == ["0 B", "1.0 GiB", "2.0 GiB", "3.0 GiB", "4.0 GiB"]
    assert axis["tickvals"] == [i * 2.0**30 for i in range(5)]
    assert charts.iec_ticks(5000) == [0.0, 1024.0, 2048.0, 3072.0, 4096.0]
    assert charts.iec_ticks(0) == [0.0]


def test_static_svg_escapes_its_title() -> None:
    spec = charts.ChartSpec("x", "a <b> & c", ("cpu_percent",), "%")
    assert "a &lt;b&gt; &amp; c" in charts.svg([], spec)


def test_band_is_pandas_quantiles_per_bin_on_irregular_samples() -> None:
    """The vectorised band (int64 nanoseconds, one sort) gives exactly pandas' linear quantiles per time bin."""
    rng = np.random.default_rng(7)
    snaps = [
        make_snapshot(
            f"n{rng.integers(0, 150):03d}", time=T0 + rng.random() * 600, cpu_percent=float(rng.integers(0, 100))
        )
        for _ in range(3000)
    ]
    data = charts.series(frames.metrics_frame(snaps, ("cpu_percent",)), CPU)
    lo, mid, hi = charts.quantile_band(data, bin_s=7.5)
    bins = data["time"].astype("int64") // 7_500_000_000
    grouped = data["value"].groupby(bins.to_numpy())
    for mine, expected in ((lo, grouped.quantile(0.1)), (mid, grouped.median()), (hi, grouped.quantile(0.9))):
        assert mine.to_numpy().tolist() == expected.to_numpy().tolist()
        assert (mine.index.asi8 == expected.index.to_numpy() * 7_500_000_000).all()
    assert str(lo.index.tz) == "UTC"


def test_times_are_the_same_strings_whether_remembered_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = metrics(120)
    warm = charts.traces(frame, CPU)
    charts._ISO.clear()
    assert charts.traces(frame, CPU) == warm
    monkeypatch.setattr(charts, "_ISO_MAX", 3)  # a memo that overflows on every call still gives every string
    assert charts.traces(frame, CPU) == warm
    assert warm[0]["x"][0] == "2023-11-14T22:13:20.000Z"
