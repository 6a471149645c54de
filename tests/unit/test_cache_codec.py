"""Cache entries round-trip values and dtypes, and refuse anything that is not one of ours."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from clusternb import frames
from clusternb.cache import codec
from clusternb.cache.codec import COMPRESS_ABOVE, DecodeError, EncodeError, entry_from_bytes, make_entry
from tests.helpers import make_snapshot


def _frame() -> pd.DataFrame:
    snaps = [make_snapshot("a", time=100.0), make_snapshot("b", time=99.0, labels={"x": "y"})]
    return frames.workers_frame(snaps, 101.0, lambda i: (2 * i, 3 * i))


@pytest.mark.parametrize("value", [None, True, 0, 3.5, "text", [1, "a", None], {"a": {"b": [1.5]}}, [], {}])
def test_json_values_round_trip(value: object) -> None:
    entry = entry_from_bytes(make_entry(value, 1.0).to_bytes())
    assert entry.value_for_caller() == value
    assert entry.created == 1.0


def test_frames_round_trip_with_dtypes() -> None:
    df = _frame()
    back = entry_from_bytes(make_entry(df, 1.0).to_bytes()).value_for_caller()
    pd.testing.assert_frame_equal(back, df)
    assert back["status"].cat.ordered and str(back["last_seen"].dtype) == "datetime64[ns, UTC]"
    assert back.index.dtype == df.index.dtype


def test_large_frames_are_stored_compressed_and_read_back_exactly() -> None:
    snaps = [make_snapshot(f"node-{i:05d}", time=100.0 - i % 7, labels={"rack": f"r{i % 40}"}) for i in range(5_000)]
    df = frames.workers_frame(snaps, 101.0, lambda i: (2 * i, 3 * i))
    entry = make_entry(df, 1.0)
    raw_arrow = pa.Table.from_pandas(df, preserve_index=True).nbytes
    assert raw_arrow > COMPRESS_ABOVE and entry.size < raw_arrow / 2  # stored compressed
    back = entry_from_bytes(entry.to_bytes(), decode=True).value_for_caller()
    pd.testing.assert_frame_equal(back, df)
    assert back.index.dtype == df.index.dtype and back["status"].cat.ordered


def test_series_and_empty_frame_round_trip() -> None:
    s = pd.Series([1.0, np.nan], index=["a", "b"], name="cpu")
    pd.testing.assert_series_equal(entry_from_bytes(make_entry(s, 0).to_bytes()).value_for_caller(), s)
    unnamed = pd.Series([1, 2])
    pd.testing.assert_series_equal(entry_from_bytes(make_entry(unnamed, 0).to_bytes()).value_for_caller(), unnamed)
    empty = frames.empty_alerts_frame()
    pd.testing.assert_frame_equal(entry_from_bytes(make_entry(empty, 0).to_bytes()).value_for_caller(), empty)


def test_each_caller_gets_its_own_copy() -> None:
    entry = make_entry({"a": [1]}, 0)
    first = entry.value_for_caller()
    first["a"].append(2)
    assert entry.value_for_caller() == {"a": [1]}
    df_entry = make_entry(_frame(), 0)
    mine = df_entry.value_for_caller()
    mine.loc["a", "cpu_percent"] = -1
    assert df_entry.value_for_caller().loc["a", "cpu_percent"] == 12.5


def test_an_entry_read_from_redis_hands_its_decode_to_one_caller_and_copies_to_the_others() -> None:
    entry = entry_from_bytes(make_entry({"a": [1]}, 0).to_bytes())
    first = entry.value_for_caller()
    first["a"].append(2)
    second = entry.value_for_caller()
    assert second == {"a": [1]} and second is not first
    second["a"].append(3)
    assert entry.value_for_caller() == {"a": [1]}


def test_share_hands_out_the_entrys_own_value() -> None:
    entry = make_entry({"a": [1]}, 0)
    assert entry.value_for_caller(share=True) is entry.value_for_caller(share=True)
    assert entry.value_for_caller() is not entry.value_for_caller(share=True)
    frame_entry = make_entry(_frame(), 0)
    assert frame_entry.value_for_caller(share=True) is frame_entry.value


def test_frames_are_copied_deeply_where_pandas_does_not_copy_on_write(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = make_entry(_frame(), 0)
    own = entry.value["cpu_percent"].to_numpy()
    assert codec.copy_on_write()  # pandas 3: a shallow copy, whose first write copies
    assert np.shares_memory(entry.value_for_caller()["cpu_percent"].to_numpy(), own)
    monkeypatch.setattr(codec, "_PANDAS_3", False)  # pandas 2 without mode.copy_on_write: a deep copy
    monkeypatch.setattr(codec, "_cow_option", lambda: False)
    assert not codec.copy_on_write()
    assert not np.shares_memory(entry.value_for_caller()["cpu_percent"].to_numpy(), own)


def test_content_hash_follows_content() -> None:
    assert make_entry({"a": 1}, 0).content_hash == make_entry({"a": 1}, 5).content_hash
    assert make_entry({"a": 1}, 0).content_hash != make_entry({"a": 2}, 0).content_hash
    assert make_entry(_frame(), 0).content_hash == make_entry(_frame(), 1).content_hash


class _Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (eval, ("1/0",))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage bytes that are long enough to have a header" * 2,
        pickle.dumps(_Boom()),
        pickle.dumps({"a": 1}),
        b"CNB\x02j" + b"\x00" * 40,  # a future format version
        make_entry({"a": 1}, 0).to_bytes()[:-1],  # truncated payload
        make_entry({"a": 1}, 0).to_bytes()[:-2] + b"!}",  # corrupted payload
    ],
)
def test_foreign_bytes_raise_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        entry_from_bytes(data, decode=True)


def test_uncacheable_values_raise_encode_error() -> None:
    with pytest.raises(EncodeError, match="object"):
        make_entry(object(), 0)
    with pytest.raises(EncodeError):
        make_entry({1: "int keys would come back as strings"}, 0)
