"""Kernel reports in a real Redis: hostile records are skipped, counted and pruned; an outage is no error; and
another user's kernel arrives without its path."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pandas as pd
import pytest

from clusternb.kernel_usage.board import FILE_MAX_BYTES, KEY, FileBoard, MemoryBoard, MirroredBoard, RedisBoard
from clusternb.kernel_usage.record import encode_report
from clusternb.queries import Client
from clusternb.redisio.link import RedisLink
from clusternb.rejects import Rejections
from tests.helpers import make_kernel, make_report
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


def _board(redis_server: RedisServer) -> RedisBoard:
    return RedisBoard(RedisLink(redis_server.url), Rejections(), expire_after=60.0)


def test_hostile_reports_are_skipped_counted_and_pruned(redis_server: RedisServer, reader: Client) -> None:
    now = time.time()
    good = make_report("good", time=now)
    raw = msgspec.json.decode(encode_report(make_report("absurd", time=now)))
    raw["kernels"][0]["rss_bytes"] = 2**62  # no machine has that
    r = redis_server.client()
    r.hset(KEY, mapping={
        good.publisher: encode_report(good),
        "pickle": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.",
        "absurd": msgspec.json.encode(raw),
        "future": encode_report(make_report("future", time=now + 86_400)),
        "stale": encode_report(make_report("stale", time=now - 3_600)),
        "xss": b'{"node": "<img src=x onerror=alert(1)>", "server": 5}',
    })  # fmt: skip
    df = reader.kernels()
    assert set(df["node"]) == {"good"}
    assert reader.rejections.total == 4  # pickle, absurd, future, xss; a stale report is not an error
    assert r.hkeys(KEY) == [good.publisher.encode()]  # the bad and the stale are gone from Redis
    status = reader.cluster_status()
    assert status.loc[0, "records_rejected"] >= 4


def test_a_key_of_the_wrong_type_reads_as_no_kernels(redis_server: RedisServer, reader: Client) -> None:
    redis_server.client().set(KEY, b"not a hash")
    assert reader.kernels().empty


def test_another_users_kernel_shows_no_path(redis_server: RedisServer, reader: Client) -> None:
    """As a server run by another Unix user on a shared node would publish it: the reader sees it, not its path."""
    theirs = make_kernel("theirs", user="someone-else", path="private/thesis.ipynb")
    mine = make_kernel("mine", user=reader.kernel_service.viewer.user, path="mine.ipynb")
    _board(redis_server).put(make_report("shared", time=time.time(), kernels=(theirs, mine)))
    df = reader.kernels()
    assert set(df.index) == {"theirs", "mine"}
    assert pd.isna(df.loc["theirs", "path"]) and df.loc["mine", "path"] == "mine.ipynb"
    assert "thesis" not in df.to_csv()
    assert list(reader.kernels(me=True).index) == ["mine"]
    assert reader.kernels(path="private/*").empty


def test_an_outage_answers_with_this_servers_kernels_and_the_last_view(redis_server: RedisServer) -> None:
    link = RedisLink(redis_server.url)
    board = MirroredBoard(RedisBoard(link, Rejections(), 60.0), MemoryBoard(60.0))
    other = make_report("other", time=time.time())
    _board(redis_server).put(other)
    assert [r.node for r in board.reports()] == ["other"]
    redis_server.kill()
    mine = make_report("mine", time=time.time())
    board.put(mine)  # no error: the report is kept in memory
    assert sorted(r.node for r in board.reports()) == ["mine", "other"]


def test_report_files_are_validated_like_redis_records(tmp_path: Path) -> None:
    """Embedded mode's board: garbage, absurd and stale files are skipped (the bad ones counted) and deleted."""
    rejections = Rejections()
    board = FileBoard(tmp_path, rejections, expire_after=60.0)
    good = make_report("good", time=time.time())
    board.put(good)
    (tmp_path / "clusternb-kernels-garbage.json").write_bytes(b"\x80\x04 not json")
    (tmp_path / "clusternb-kernels-stale.json").write_bytes(encode_report(make_report("old", time=time.time() - 3600)))
    (tmp_path / "clusternb-kernels-huge.json").write_bytes(b" " * (FILE_MAX_BYTES + 1))
    (tmp_path / "unrelated.json").write_bytes(b"{}")
    assert board.reports() == [good]
    assert rejections.total == 2  # the garbage and the huge file (not read past the limit); a stale one is no error
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([board._path(good.publisher).name, "unrelated.json"])
    board.remove(good.publisher)
    assert board.reports() == []


def test_more_memory_than_the_node_has_is_skipped_and_another_version_is_kept(
    redis_server: RedisServer, reader: Client
) -> None:
    """Within the record's bounds but not within its node: an absurd number never reaches the screen. A report
    of another schema version (a rolling upgrade) is skipped and counted, and left for its own readers."""
    from tests.helpers import make_snapshot

    reader.store.put(make_snapshot("small", time=time.time()))  # a 16 GiB node
    board = _board(redis_server)
    board.put(make_report("small", time=time.time(), kernels=(make_kernel("huge", pss_bytes=2**60),)))
    raw = msgspec.json.decode(encode_report(make_report("next", time=time.time())))
    raw["schema"], raw["field_of_version_2"] = 2, 1
    redis_server.client().hset(KEY, "next-version", msgspec.json.encode(raw))
    df = reader.kernels()
    assert "huge" not in df.index and df.empty
    assert reader.rejections.total == 2
    assert redis_server.client().hexists(KEY, "next-version")  # not ours to delete
