"""Each query parameter is declared once: the Python check, REST/WebSocket parsing and OpenAPI follow from it.

The tables compared here are all derived from :data:`clusternb.params.QUERY_PARAMS`; the last tests add a
parameter to the declaration and see it reach every face, so a new parameter needs no other edit.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from clusternb import frames
from clusternb.arguments import ArgumentError, ArgumentTypeError
from clusternb.cache.fallback import FallbackBackend
from clusternb.cache.memory import MemoryBackend
from clusternb.cache.redis import RedisBackend
from clusternb.params import QUERY_PARAMS, Kind, Param, check_arguments, declared
from clusternb.queries import Client
from clusternb.server.handlers import default_handlers
from clusternb.server.openapi import ACKNOWLEDGE_PATH, openapi, parameter
from clusternb.server.service import QUERY_OF, make_topic, params_of, topic_from_arguments, topics_of
from clusternb.state.fallback import MirroredStore
from clusternb.state.memory import MemoryStateStore
from clusternb.state.redis import RedisStateStore

NOW = 1_700_000_000.0


def _path_topics() -> dict[str, str]:
    """OpenAPI path -> topic, from the REST route table itself."""
    out = {}
    for route in default_handlers:
        if len(route) == 3:
            out[route[0].removeprefix("/clusternb/api")] = route[2]["topic"]
    return out


def test_every_rest_route_has_a_topic_and_every_query_a_declaration() -> None:
    assert sorted(_path_topics().values()) == sorted(QUERY_OF)
    assert {q for q in QUERY_OF.values() if q} == set(QUERY_PARAMS)


def test_openapi_parameters_of_each_path_are_the_declaration() -> None:
    paths = openapi("/", "0")["paths"]
    assert set(paths) == {*_path_topics(), ACKNOWLEDGE_PATH}  # every query route, and the one POST
    ack_route = next(r[0] for r in default_handlers if r[0].endswith("/acknowledge"))
    assert ack_route.removeprefix("/clusternb/api").replace("([^/]+)", "{alert_id}") == ACKNOWLEDGE_PATH
    assert set(paths[ACKNOWLEDGE_PATH]) == {"post"}
    for path, topic in _path_topics().items():
        documented = paths[path]["get"]["parameters"]
        params = params_of(topic)
        assert [d["name"] for d in documented] == [p.name for p in params], path
        for doc, param in zip(documented, params, strict=True):
            assert doc == parameter(param)
            assert doc["description"].startswith(param.doc)
            assert doc["in"] == "query" and doc["required"] is False
            schema = doc["schema"]
            assert schema.get("default") == param.default
            if param.kind is Kind.CHOICE:
                assert schema["enum"] == list(param.choices)
            if param.kind is Kind.NAMES and not param.single:
                assert schema["type"] == "array" and doc["explode"] is True
                assert schema["items"].get("enum", []) == list(param.choices)
            if param.kind is Kind.BOOLEAN:
                assert schema["type"] == "boolean"


@pytest.mark.parametrize(("query", "method"), [("metrics", Client.metrics), ("alerts", Client.alerts)])
def test_python_signature_is_the_declaration(query: str, method: Any) -> None:
    """Names, order and defaults of the public method and of its builder match the declaration."""
    want = [(p.name, p.default) for p in declared(query)]
    for fn in (method, getattr(Client, f"_build_{query}")):
        sig = [(n, p.default) for n, p in inspect.signature(fn).parameters.items() if n not in ("self", "now")]
        assert sig == want, fn


def test_python_check_messages_keep_their_form() -> None:
    cases: list[tuple[str, dict[str, Any], type[Exception], str]] = [
        ("alerts", {"severity": "urgent"}, ArgumentError, "severity: 'urgent' is not one of ['info', 'warning'"),
        ("alerts", {"active": "yes"}, ArgumentTypeError, "active: expected True or False, got 'yes'"),
        ("alerts", {"active": None}, ArgumentTypeError, "active: expected True or False, got None"),
        ("alerts", {"node": ["a", "b"]}, ArgumentTypeError, "node: expected a node name, got ['a', 'b']"),
        ("metrics", {"fields": ["cpu"]}, ArgumentError, "fields: unknown field(s) ['cpu']; allowed: cpu_percent"),
        ("metrics", {"fields": []}, ArgumentError, "fields: an empty list selects nothing"),
        ("metrics", {"node": [1]}, ArgumentTypeError, "node: expected names (strings), got 1"),
        ("metrics", {"since": None}, ArgumentTypeError, "since: expected a duration or a time, got None"),
        ("metrics", {"since": "soon"}, ArgumentError, "since: could not understand 'soon'"),
        ("metrics", {"step": 1}, ArgumentError, "step: unknown parameter for metrics; allowed: ['since', 'until'"),
    ]
    for query, values, error, message in cases:
        with pytest.raises(error) as info:
            check_arguments(query, NOW, values)
        assert str(info.value).startswith(message), (values, str(info.value))


def test_python_check_normalises() -> None:
    got = check_arguments("metrics", NOW, {"node": ["b", "a", "b"], "fields": "load_1"})
    assert got == {"since": NOW - 900, "until": None, "node": ("b", "a"), "fields": ("load_1",)}
    got = check_arguments("alerts", NOW, {"since": 60, "severity": "critical", "node": "n0"})
    assert got == {"active": True, "since": NOW - 60, "severity": "critical", "node": "n0"}
    assert check_arguments("workers", NOW, {}) == {}


def test_rest_parsing_follows_the_kinds() -> None:
    topic = topic_from_arguments(
        "metrics", {"node": [b"a,b", b" c "], "fields": [b"load_1"], "since": [b"1h", b"600"], "token": [b"x"]}
    )
    assert topic.params == (("since", "600"), ("node", ("a", "b", "c")), ("fields", ("load_1",)))
    assert make_topic("metrics", {"node": ",", "fields": None}).params == ()  # empty lists mean "not given"
    for text, value in [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("no", False)]:
        assert make_topic("alerts", {"active": text}).as_dict() == {"active": value}
    assert make_topic("alerts", {"node": ["n0"]}).as_dict() == {"node": "n0"}  # one name, not a list
    assert make_topic("alerts", {"node": "a,b"}).as_dict() == {"node": ["a", "b"]}  # refused by the query
    assert topic_from_arguments("alerts", {"node": [b"a", b"b"]}).as_dict() == {"node": ["a", "b"]}


def test_rest_parsing_messages_keep_their_form() -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("alerts", {"active": "maybe"}, "active: expected true or false, got 'maybe'"),
        ("alerts", {"severity": 3}, "severity: expected a string, got 3"),
        ("metrics", {"since": True}, "since: expected a duration or a time, got True"),
        ("metrics", {"until": [1]}, "until: expected a duration or a time, got [1]"),
        ("metrics", {"node": 5}, "node: expected a name or a list of names, got 5"),
        ("workers", {"since": "1h"}, "since: unknown parameter for workers; allowed: []"),
        ("nope", {}, "topic: unknown topic 'nope'"),
    ]
    for name, values, message in cases:
        with pytest.raises(ArgumentError) as info:
            make_topic(name, values)
        assert str(info.value).startswith(message), str(info.value)
    with pytest.raises(ArgumentError, match=r"^subscribe\[0\]\.active: expected true or false"):
        topics_of([{"topic": "alerts", "active": "maybe"}])


@pytest.fixture
def extra_params(monkeypatch: pytest.MonkeyPatch) -> tuple[Param, Param]:
    """Two parameters added to the metrics declaration, and to nothing else."""
    step = Param("step", Kind.TIME, "bucket width")
    groups = Param("group", Kind.NAMES, "groups to include", choices=("x", "y"))
    monkeypatch.setitem(QUERY_PARAMS, "metrics", (*QUERY_PARAMS["metrics"], step, groups))
    return step, groups


def test_a_declared_parameter_reaches_rest_and_openapi(extra_params: tuple[Param, Param]) -> None:
    step, groups = extra_params
    assert params_of("metrics")[-2:] == extra_params
    topic = topic_from_arguments("metrics", {"step": [b"1m", b"5m"], "group": [b"x", b"y,x"]})
    assert topic.as_dict() == {"step": "5m", "group": ["x", "y", "x"]}  # a list is repeated, a time is not
    assert topics_of([{"topic": "metrics", "step": 30}])[0].as_dict() == {"step": 30}
    documented = openapi("/", "0")["paths"]["/metrics/system"]["get"]["parameters"]
    assert documented[-2:] == [parameter(step), parameter(groups)]
    assert documented[-1]["schema"]["items"]["enum"] == ["x", "y"]
    checked = check_arguments("metrics", NOW, {"step": "1m", "group": ["y", "x", "y"]})
    assert checked["step"] == NOW - 60 and checked["group"] == ("y", "x")
    with pytest.raises(ArgumentError, match=r"^group: unknown group\(s\) \['z'\]; allowed: x, y"):
        check_arguments("metrics", NOW, {"group": "z"})


def test_a_parameter_left_out_of_the_declaration_is_refused_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(QUERY_PARAMS, "metrics", tuple(p for p in QUERY_PARAMS["metrics"] if p.name != "fields"))
    with pytest.raises(ArgumentError, match=r"^fields: unknown parameter for metrics"):
        make_topic("metrics", {"fields": "load_1"})
    with pytest.raises(ArgumentError, match=r"^fields: unknown parameter for metrics"):
        check_arguments("metrics", NOW, {"fields": "load_1"})
    documented = openapi("/", "0")["paths"]["/metrics/system"]["get"]["parameters"]
    assert "fields" not in [d["name"] for d in documented]


def test_fields_choices_are_the_metric_fields() -> None:
    (fields,) = [p for p in declared("metrics") if p.name == "fields"]
    assert fields.choices == frames.METRIC_FIELDS


def test_in_process_is_said_by_the_interfaces() -> None:
    """What the REST service asks instead of checking concrete classes."""
    assert MemoryBackend.in_process and MemoryStateStore.in_process
    for cls in (FallbackBackend, RedisBackend, MirroredStore, RedisStateStore):
        assert cls.in_process is False, cls
