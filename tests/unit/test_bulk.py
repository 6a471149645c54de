"""paused_gc: the collector is off inside, back on after (also after an error), and left off if it was off."""

from __future__ import annotations

import gc

import pytest

from clusternb.bulk import paused_gc


def test_collector_is_off_inside_and_back_on_after_even_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        with paused_gc():  # nested: the inner block must not turn it back on early
            pass
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_someone_else_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
