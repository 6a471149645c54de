"""Copy-on-access JSON values: whatever a caller does with its value, the shared one never changes."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from clusternb.cache import lazycopy
from clusternb.cache.codec import make_entry
from clusternb.cache.lazycopy import FrozenDict, FrozenList, LazyDict, LazyList, freeze, plain, thaw


@pytest.fixture(autouse=True, params=[1, 8, 1000], ids=["all-lazy", "records-whole", "all-whole"])
def small(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Every test runs with each part copied level by level, with each record copied whole, and with the whole
    value copied whole when reached."""
    monkeypatch.setattr(lazycopy, "SMALL", request.param)
    return int(request.param)


def _value() -> dict[str, Any]:
    return {
        "workers": [
            {"node": f"n{i}", "cpu": {"load": [0.5, 0.4], "count": 8}, "gpus": [{"index": 0}], "labels": {"r": "a"}}
            for i in range(3)
        ],
        "total": 3,
        "tags": ["x", "y"],
        "empty": {},
    }


def _each_cpu(v: Any) -> None:
    for w in v["workers"]:
        w["cpu"]["count"] = 0


def _each_reversed(v: Any) -> None:
    for w in reversed(v["workers"]):
        w["node"] = "z"


def _each_sliced(v: Any) -> None:
    for w in v["workers"][:2]:
        w.setdefault("cpu", {})["load"].clear()


def _each_get(v: Any) -> None:
    for w in v["workers"]:
        w.get("cpu")["load"].append(2)


def _each_values(v: Any) -> None:
    for w in v["workers"]:
        for x in w["cpu"].values():
            if isinstance(x, list):
                x.append(3)


def _each_items(v: Any) -> None:
    for _, ws in v.items():
        if isinstance(ws, list) and isinstance(ws[0], dict):
            ws[0]["cpu"]["load"].append(4)


def _mutations() -> list[Callable[[Any], object]]:
    """Ways a caller changes its value, each through a different access path."""
    return [
        lambda v: v["workers"][0]["cpu"]["load"].append(1.0),
        lambda v: v["workers"][0]["labels"].update(r="changed"),
        lambda v: v["workers"].pop()["cpu"].clear(),
        lambda v: v.get("workers")[1]["gpus"][0].__setitem__("index", 7),
        _each_cpu,
        _each_reversed,
        _each_sliced,
        _each_get,
        _each_values,
        _each_items,
        lambda v: dict(v)["workers"][0]["labels"].clear(),
        lambda v: {**v}["workers"][2]["gpus"].append({"index": 9}),
        lambda v: (v | {})["tags"].append("z"),
        lambda v: v.copy()["workers"][0]["cpu"]["load"].sort(),
        lambda v: copy.copy(v)["workers"][0]["cpu"].pop("load").append(5),
        lambda v: copy.deepcopy(v)["workers"][0]["cpu"]["load"].append(6),
        lambda v: pickle.loads(pickle.dumps(v))["workers"][0]["labels"].clear(),
        lambda v: (v["workers"] + [])[0]["labels"].clear(),
        lambda v: ([] + v["workers"])[0]["labels"].clear(),
        lambda v: (v["workers"] * 2)[0]["labels"].clear(),
        lambda v: v["workers"].copy()[0]["cpu"]["load"].clear(),
        lambda v: v.pop("tags").append("w"),
        lambda v: v.popitem()[1].__setitem__("k", 1),
        lambda v: list(v["workers"])[-1]["gpus"].clear(),
        lambda v: sorted(v["workers"], key=lambda w: w["node"])[0]["labels"].clear(),
        lambda v: v["empty"].__setitem__("k", 1),
    ]


@pytest.mark.parametrize("mutate", _mutations())
def test_a_callers_change_never_reaches_the_next_caller(mutate: Callable[[Any], object]) -> None:
    entry = make_entry(_value(), 0)
    mine = entry.value_for_caller()
    assert isinstance(mine, dict) and mine == _value()
    mutate(mine)
    assert entry.value_for_caller() == _value()
    assert entry.value == _value() and plain(entry.value) == _value()


def test_a_list_changed_before_it_is_iterated_still_holds_the_right_items() -> None:
    entry = make_entry(_value(), 0)
    expected = _value()["workers"]
    mine = entry.value_for_caller()["workers"]
    mine[1]["node"] = "mine"  # one item copied on its own first
    mine.reverse()
    mine.insert(1, {"node": "new"})
    expected[1]["node"] = "mine"
    assert list(mine) == [expected[2], {"node": "new"}, expected[1], expected[0]]
    for item in mine:
        item["node"] = "changed"
    assert entry.value_for_caller() == _value()


def test_values_look_and_serialize_like_plain_json(small: int) -> None:
    mine = thaw(freeze(_value()))
    assert type(mine) is LazyDict and type(mine["workers"]) is (list if small == 1000 else LazyList)
    assert type(mine["workers"][0]) is (LazyDict if small == 1 else dict)  # a record: at most 8 dicts and lists
    assert repr(mine) == repr(_value())
    assert json.loads(json.dumps(mine)) == _value() and orjson.loads(orjson.dumps(mine)) == _value()
    assert type(mine["tags"]) is list and type(mine["workers"][0]["labels"]) is dict  # leaves are plain
    assert type(copy.deepcopy(mine)) is dict and type(pickle.loads(pickle.dumps(mine))["workers"][0]) is dict


def test_the_shared_value_refuses_every_change() -> None:
    shared = freeze(_value())
    assert isinstance(shared, FrozenDict) and isinstance(shared["workers"], FrozenList)
    changes: list[Callable[[], object]] = [
        lambda: shared.__setitem__("a", 1),
        lambda: shared.update(a=1),
        lambda: shared.pop("total"),
        lambda: shared.__init__({"a": 1}),
        lambda: shared["workers"].append(1),
        lambda: shared["workers"][0]["cpu"]["load"].append(1),
        lambda: shared["tags"].__setitem__(0, "z"),
        lambda: shared["tags"].__iadd__(["z"]),
        lambda: shared["tags"].sort(reverse=True),
    ]
    for change in changes:
        with pytest.raises(TypeError):
            change()
    assert shared == _value()
    assert shared.copy() == _value() and isinstance(shared.copy(), dict) and type(shared["tags"].copy()) is list


def test_a_list_at_the_top_and_scalars(small: int) -> None:
    entry = make_entry([{"a": [1]}, {"a": [2]}], 0)
    mine = entry.value_for_caller()
    assert type(mine) is LazyList
    assert type(mine[0]) is (LazyDict if small == 1 else dict)
    for item in mine:
        item["a"].append(0)
    assert entry.value_for_caller() == [{"a": [1]}, {"a": [2]}]
    assert make_entry(3, 0).value_for_caller() == 3 and make_entry("x", 0).value_for_caller() == "x"
