"""The kernels() frame: columns from the catalogue, privacy before filters, largest memory first, bad input named."""

from __future__ import annotations

import math

import msgspec
import pandas as pd
import pytest

from clusternb import columns
from clusternb.arguments import ArgumentError
from clusternb.kernel_usage.frame import KernelFilter, Viewer, kernels_frame
from clusternb.kernel_usage.record import KernelReport, decode_report, encode_report
from clusternb.model import SchemaError
from clusternb.params import check_arguments
from tests.helpers import make_kernel, make_report

NOW = 1_700_000_100.0
GiB = 2**30


def test_columns_and_dtypes_are_the_catalogues() -> None:
    df = kernels_frame([make_report()], NOW, {"a": 16 * GiB}, Viewer("me"))
    assert [(c, str(df[c].dtype)) for c in df.columns] == [(c.name, str(c.dtype)) for c in columns.KERNEL_COLUMNS]
    assert df.index.name == "kernel_id"
    assert df.loc["k1", "age_s"] == pytest.approx(1.0)
    assert df.loc["k1", "mem_share_percent"] == pytest.approx(100 * 250 * 2**20 / (16 * GiB), abs=0.01)


def test_another_users_kernel_counts_but_shows_no_path_and_cannot_be_found_by_it() -> None:
    report = make_report()
    df = kernels_frame([report], NOW, {}, Viewer("me"))
    assert len(df) == 2  # counts and totals stay true
    assert df.loc["k1", "path"] == "k1.ipynb" and bool(df.loc["k1", "own"])
    assert pd.isna(df.loc["k2", "path"]) and not bool(df.loc["k2", "own"])
    assert "secret" not in df.to_csv()
    # The path filter runs after the paths are hidden: another user's notebook cannot be found by guessing.
    assert list(kernels_frame([report], NOW, {}, Viewer("me"), KernelFilter(path="secret*")).index) == []
    # An administrator's setting shows every path.
    admin = kernels_frame([report], NOW, {}, Viewer("me", sees_all_paths=True))
    assert admin.loc["k2", "path"] == "secret.ipynb"


def test_filters_node_me_and_min_memory() -> None:
    big = make_kernel("big", pss_bytes=3 * GiB)
    reports = [make_report("a"), make_report("b", kernels=(big,))]
    df = kernels_frame(reports, NOW, {}, Viewer("me"))
    assert list(df.index) == ["big", "k1", "k2"]  # largest memory first; unknown memory last
    assert list(kernels_frame(reports, NOW, {}, Viewer("me"), KernelFilter(node=("a",))).index) == ["k1", "k2"]
    assert "k2" not in kernels_frame(reports, NOW, {}, Viewer("me"), KernelFilter(me=True)).index
    assert list(kernels_frame(reports, NOW, {}, Viewer("me"), KernelFilter(min_memory=GiB)).index) == ["big"]


def test_a_kernel_without_measurements_has_missing_values_not_zeros() -> None:
    bare = msgspec.structs.replace(
        make_kernel("r"), pid=None, processes=0, cpu_percent=None, rss_bytes=None, pss_bytes=None, uss_bytes=None,
        threads=None,
    )  # fmt: skip
    df = kernels_frame([make_report(kernels=(bare,))], NOW, {"a": GiB}, Viewer("me"))
    assert math.isnan(df.loc["r", "mem_share_percent"]) and math.isnan(df.loc["r", "cpu_percent"])
    assert pd.isna(df.loc["r", "pss_bytes"])


def test_arguments_are_checked_with_their_names() -> None:
    checked = check_arguments("kernels", NOW, {"min_memory": "1.5GiB", "path": "*.ipynb", "node": "a"})
    assert checked == {"node": ("a",), "path": "*.ipynb", "min_memory": int(1.5 * GiB), "me": False}
    for bad, name in (({"min_memory": "lots"}, "min_memory"), ({"me": "yes"}, "me"), ({"path": ["a", "b"]}, "path")):
        with pytest.raises(ArgumentError, match=f"^{name}:"):
            check_arguments("kernels", NOW, bad)


@pytest.mark.parametrize(
    "change",
    [
        {"time": -1.0},
        {"time": 1e300},
        {"node": ""},
        {"server": "x" * 5000},
        {"schema": 99},
    ],
)
def test_a_report_out_of_bounds_is_refused_where_it_enters(change: dict[str, object]) -> None:
    raw = msgspec.json.decode(encode_report(make_report()))
    raw.update(change)
    with pytest.raises(SchemaError):
        decode_report(msgspec.json.encode(raw))


@pytest.mark.parametrize(
    "change",
    [
        {"kernel_id": "<img src=x onerror=alert(1)>"},
        {"pss_bytes": -5},
        {"rss_bytes": 2**63},
        {"cpu_percent": 1e9},
        {"path": "p" * 5000},
        {"connections": "many"},
        {"unexpected": 1},
    ],
)
def test_a_kernel_out_of_bounds_makes_its_report_refused(change: dict[str, object]) -> None:
    raw = msgspec.json.decode(encode_report(make_report()))
    raw["kernels"][0].update(change)
    with pytest.raises(SchemaError):
        decode_report(msgspec.json.encode(raw))


def test_garbage_is_refused() -> None:
    for raw in (b"", b"\x80\x04pickle", b"[]", b'{"node": 1}', b"null"):
        with pytest.raises(SchemaError):
            decode_report(raw)


def test_a_report_round_trips() -> None:
    report = make_report()
    assert decode_report(encode_report(report)) == report
    assert isinstance(decode_report(encode_report(report)), KernelReport)


def test_the_panel_shows_node_texts_as_text() -> None:
    from clusternb.widgets.views import kernels_html

    evil = "<img src=x onerror=alert(1)>"
    report = make_report(evil, kernels=(make_kernel("k1", path=f"{evil}.ipynb", execution_state=evil),))
    html = kernels_html(kernels_frame([report], NOW, {}, Viewer("me")))
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;.ipynb" in html


def test_a_kernel_id_in_two_reports_is_listed_once_from_the_newest() -> None:
    older = make_report("a", time=NOW - 5, kernels=(make_kernel("dup", path="old.ipynb"),))
    newer = make_report("b", time=NOW - 1, kernels=(make_kernel("dup", path="new.ipynb"),))
    df = kernels_frame([older, newer], NOW, {}, Viewer("me"))
    assert list(df.index) == ["dup"] and df.loc["dup", "path"] == "new.ipynb"


def test_a_kernel_id_twice_in_one_report_is_refused() -> None:
    raw = msgspec.json.decode(encode_report(make_report(kernels=(make_kernel("x"), make_kernel("y")))))
    raw["kernels"][1]["kernel_id"] = "x"
    with pytest.raises(SchemaError, match="twice"):
        decode_report(msgspec.json.encode(raw))


def test_another_versions_report_is_told_apart_from_garbage() -> None:
    from clusternb.kernel_usage.record import OtherVersion

    raw = msgspec.json.decode(encode_report(make_report()))
    raw["schema"], raw["a_field_of_version_2"] = 2, 1
    with pytest.raises(OtherVersion):
        decode_report(msgspec.json.encode(raw))


def test_the_share_of_the_node_is_at_most_100() -> None:
    df = kernels_frame([make_report(kernels=(make_kernel("k", pss_bytes=3 * GiB),))], NOW, {"a": GiB}, Viewer("me"))
    assert df.loc["k", "mem_share_percent"] == 100.0


def test_who_owns_a_kernel_is_the_hub_user_where_a_hub_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Kubernetes every user's pod runs as jovyan: the Unix user cannot tell alice's kernels from bob's."""
    from clusternb.kernel_usage.measure import current_user

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert current_user() == "hub:alice"
    alice, bob = make_kernel("a", user="hub:alice"), make_kernel("b", user="hub:bob", path="bob.ipynb")
    df = kernels_frame([make_report(kernels=(alice, bob))], NOW, {}, Viewer(current_user()))
    assert pd.isna(df.loc["b", "path"]) and df.loc["a", "path"] == "a.ipynb"


def test_a_user_cannot_show_others_paths_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from clusternb.config import load_config

    monkeypatch.setenv("CLUSTERNB_KERNEL_PATHS_OF_OTHERS", "1")
    assert load_config().kernel_paths_of_others is False  # an administrator's setting: config files only
