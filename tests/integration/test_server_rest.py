"""The REST API of the server extension, through a real Jupyter server (pytest-jupyter's ``jp_fetch``)."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import orjson
import pytest
from tornado.httpclient import HTTPClientError

from clusternb.server.service import Topic
from tests.jupyter_fixtures import *  # noqa: F403
from tests.jupyter_fixtures import extension, fill, on_server_loop

pytestmark = pytest.mark.server

ENDPOINTS = ["cluster/status", "workers", "metrics/system", "alerts", "cache/status", "openapi.json"]


async def get(jp_fetch: Any, path: str, **kwargs: Any) -> Any:
    return await jp_fetch("clusternb", "api", *path.split("/"), **kwargs)


async def status_of(jp_fetch: Any, path: str, **kwargs: Any) -> tuple[int, Any]:
    try:
        response = await get(jp_fetch, path, **kwargs)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, exc.response
    return response.code, response


@pytest.mark.parametrize("path", ENDPOINTS)
@on_server_loop
async def test_every_endpoint_answers_json(jp_fetch: Any, path: str) -> None:
    response = await get(jp_fetch, path)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = orjson.loads(response.body)
    if path == "openapi.json":
        assert body["openapi"].startswith("3.")
        assert "/workers" in body["paths"]
        return
    assert {"as_of", "content_hash", "data_hash", "columns", "data"} <= set(body)
    assert body["as_of"].endswith("Z")
    assert response.headers["ETag"].startswith(f'"{body["content_hash"]}-')  # the content and its as_of


@on_server_loop
async def test_workers_rows_match_the_store(jp_fetch: Any) -> None:
    body = orjson.loads((await get(jp_fetch, "workers")).body)
    assert body["index"] == "node"
    assert [r["node"] for r in body["data"]] == ["n0", "n1", "n2"]
    row = body["data"][0]
    assert row["status"] == "online"
    assert row["cpu_percent"] == 12.5
    assert row["last_seen"].endswith("Z")
    assert row["cpu_limit"] is None  # NaN travels as null


@on_server_loop
async def test_metrics_parameters_filter(jp_fetch: Any) -> None:
    params = {"since": "10m", "node": "n0,n1", "fields": "cpu_percent"}
    body = orjson.loads((await get(jp_fetch, "metrics/system", params=params)).body)
    assert body["columns"] == ["time", "node", "cpu_percent"]
    assert {r["node"] for r in body["data"]} == {"n0", "n1"}


@on_server_loop
async def test_gzip_above_1kb_and_not_below(jp_fetch: Any) -> None:
    headers = {"Accept-Encoding": "gzip"}
    big = await get(jp_fetch, "workers", headers=headers, decompress_response=False)
    assert big.headers.get("Content-Encoding") == "gzip"
    assert orjson.loads(gzip.decompress(big.body))["query"] == "workers"
    small = await get(jp_fetch, "alerts", headers=headers, decompress_response=False)
    assert len(small.body) < 1024
    assert "Content-Encoding" not in small.headers
    plain = await get(jp_fetch, "workers", headers={"Accept-Encoding": "identity"}, decompress_response=False)
    assert "Content-Encoding" not in plain.headers
    assert len(plain.body) > 1024


@on_server_loop
async def test_encoding_happens_once_per_content_hash(jp_fetch: Any, jp_serverapp: Any) -> None:
    encoded = extension(jp_serverapp).service.encoded
    first = await get(jp_fetch, "workers")
    before = encoded.encodes
    for _ in range(5):
        again = await get(jp_fetch, "workers")
        if again.headers["ETag"] != first.headers["ETag"]:
            break  # the interval bucket moved on: a new result is a new encoding, legitimately
    else:
        assert encoded.encodes == before


@on_server_loop
async def test_an_encoded_result_is_found_without_the_pool(jp_fetch: Any, jp_serverapp: Any) -> None:
    service = extension(jp_serverapp).service
    first = await get(jp_fetch, "workers")
    found = service.ready(Topic("workers"))  # on the loop: memory cache and memory store
    if found is not None:  # None only when the interval bucket moved on in between
        assert first.headers["ETag"] == f'"{found.etag}"'
    assert service.ready(Topic("cache")) is None  # live counters: always computed


@on_server_loop
async def test_concurrent_requests_share_one_pool_call(jp_serverapp: Any) -> None:
    service = extension(jp_serverapp).service
    calls = []
    compute = service.compute

    def counting(topic: Topic) -> Any:
        calls.append(topic.key)
        return compute(topic)

    service.compute = counting
    try:
        results = await asyncio.gather(*(service.get(Topic("cache")) for _ in range(8)))
    finally:
        del service.compute
    assert calls == ["cache"]
    assert all(r is results[0] for r in results)
    again = await service.get(Topic("cache"))  # settled: the next request computes afresh
    assert again is not results[0]


@on_server_loop
async def test_etag_gives_304(jp_fetch: Any) -> None:
    first = await get(jp_fetch, "workers")
    code, response = await status_of(jp_fetch, "workers", headers={"If-None-Match": first.headers["ETag"]})
    assert code == 304 or response.headers["ETag"] != first.headers["ETag"]  # 304 unless a new bucket began
    code, _ = await status_of(jp_fetch, "openapi.json")
    openapi = await get(jp_fetch, "openapi.json")
    code, _ = await status_of(jp_fetch, "openapi.json", headers={"If-None-Match": openapi.headers["ETag"]})
    assert code == 304


@pytest.mark.parametrize(
    ("path", "params", "word"),
    [
        ("metrics/system", {"since": "yesterday-ish"}, "since"),
        ("metrics/system", {"node": "nope"}, "node"),
        ("metrics/system", {"fields": "cpu_temperature"}, "field"),
        ("alerts", {"severity": "loud"}, "severity"),
        ("alerts", {"active": "maybe"}, "active"),
        ("workers", {"color": "red"}, "color"),
    ],
)
@on_server_loop
async def test_bad_parameters_are_400_with_a_message(
    jp_fetch: Any, path: str, params: dict[str, str], word: str
) -> None:
    code, response = await status_of(jp_fetch, path, params=params)
    assert code == 400
    assert word in orjson.loads(response.body)["message"]


@pytest.mark.parametrize("path", ENDPOINTS)
@on_server_loop
async def test_without_token_is_403(jp_fetch: Any, path: str) -> None:
    code, response = await status_of(jp_fetch, path, headers={"Authorization": ""})
    assert code == 403
    assert "message" in orjson.loads(response.body)


@pytest.mark.parametrize("clusternb_app_config", [{"rate_limit": 0.5, "rate_burst": 3}])
@on_server_loop
async def test_rate_limit_answers_429_with_retry_after(jp_fetch: Any, clusternb_app_config: Any) -> None:
    codes = []
    for _ in range(6):
        code, response = await status_of(jp_fetch, "alerts")
        codes.append(code)
        if code == 429:
            assert int(response.headers["Retry-After"]) >= 1
            break
    assert codes[:3] == [200, 200, 200]
    assert codes[-1] == 429


@on_server_loop
async def test_new_data_changes_the_etag(jp_fetch: Any, cluster_store: Any) -> None:
    first = await get(jp_fetch, "workers")
    fill(cluster_store, cpu_percent=77.0)
    second = await get(jp_fetch, "workers")
    assert second.headers["ETag"] != first.headers["ETag"]
    assert orjson.loads(second.body)["data"][0]["cpu_percent"] == 77.0


@on_server_loop
async def test_prometheus_text(jp_fetch: Any) -> None:
    await get(jp_fetch, "workers")
    response = await jp_fetch("clusternb", "metrics")
    text = response.body.decode()
    assert 'clusternb_node_cpu_percent{node="n0"} 12.5' in text
    assert "clusternb_cluster_nodes_online 3.0" in text
    assert "clusternb_cache_hits_total" in text
    assert "clusternb_request_duration_seconds_bucket" in text
    assert "clusternb_websocket_clients 0.0" in text
    code, _ = await status_of_path(jp_fetch, ("clusternb", "metrics"), headers={"Authorization": ""})
    assert code == 403  # authenticate_prometheus defaults to True, as for Jupyter's own /metrics


async def status_of_path(jp_fetch: Any, parts: tuple[str, ...], **kwargs: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch(*parts, **kwargs)
    except HTTPClientError as exc:
        return exc.code, exc.response
    return response.code, response


@on_server_loop
async def test_dashboard_page_and_assets_need_auth(jp_fetch: Any) -> None:
    page = await jp_fetch("clusternb", "")
    assert b"clusternb" in page.body and b"plotly.min.js" in page.body
    js = await jp_fetch("clusternb", "static", "plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert js.code == 200
    assert "max-age" in js.headers["Cache-Control"]
    code, _ = await status_of_path(
        jp_fetch, ("clusternb", "static", "plotly.min.js"), headers={"Authorization": ""}, follow_redirects=False
    )
    assert code in (302, 403)
