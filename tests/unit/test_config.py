"""One configuration: defaults, CLUSTERNB_* variables, config files and keyword arguments, in that order."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from traitlets import Float, Int

from clusternb.config import Bounded, BoundedInt, ClusterNB, load_config, mask_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ClusterNB.class_trait_names(config=True):
        monkeypatch.delenv(f"CLUSTERNB_{name.upper()}", raising=False)
    monkeypatch.delenv("CLUSTERNB_CONFIG", raising=False)
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", "")


def test_defaults() -> None:
    s = load_config()
    assert s.interval == 2.0 and s.history_window == 3600.0 and s.disk_path == "/"
    assert s.redis_url == "" and s.net_exclude == ["lo"]
    assert s.ttl("workers") == 20.0 and s.ttl("cluster") == 30.0
    assert s.thresholds(2.0) == (4.0, 6.0)


def test_env_then_file_then_kwargs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLUSTERNB_INTERVAL", "5")
    monkeypatch.setenv("CLUSTERNB_LABELS", "rack=a1, role=gpu")
    monkeypatch.setenv("CLUSTERNB_CACHE_TTLS", '{"workers": 3}')
    monkeypatch.setenv("CLUSTERNB_NET_EXCLUDE", "lo,docker0")
    s = load_config()
    assert s.interval == 5.0 and s.labels == {"rack": "a1", "role": "gpu"}
    assert s.ttl("workers") == 3.0 and s.ttl("metrics") == 15.0
    assert s.net_exclude == ["lo", "docker0"]

    cfg = tmp_path / "clusternb_config.py"
    cfg.write_text("c.ClusterNB.interval = 7\n")
    monkeypatch.setenv("CLUSTERNB_CONFIG", str(cfg))
    assert load_config().interval == 7.0  # a config file beats the environment, as in Jupyter
    assert load_config(interval=1).interval == 1.0  # keyword arguments beat both


def test_jupyter_config_dir_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "jupyter").mkdir()
    (tmp_path / "jupyter" / "clusternb_config.json").write_text('{"ClusterNB": {"disk_path": "/tmp"}}')
    assert load_config().disk_path == "/tmp"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": 0}, "interval"),
        ({"history_window": -1}, "history_window"),
        ({"cache_ttls": {"workers": -2}}, "cache_ttls"),
        ({"intervall": 2}, "unknown setting"),
    ],
)
def test_invalid_settings_raise_value_error_naming_them(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(**kwargs)  # type: ignore[arg-type]


def test_invalid_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERNB_INTERVAL", "fast")
    with pytest.raises(ValueError, match="CLUSTERNB_INTERVAL='fast'"):
        load_config()


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTERNB_CONFIG", "/nonexistent/clusternb.py")
    with pytest.raises(ValueError, match="CLUSTERNB_CONFIG"):
        load_config()


def test_passwords_never_shown() -> None:
    assert mask_url("redis://:s3cret@db:6379/2") == "redis://:***@db:6379/2"
    assert mask_url("rediss://user:s3cret@db/0") == "rediss://user:***@db/0"
    assert mask_url("redis://db:6379") == "redis://db:6379"
    assert "s3cret" not in str(load_config(redis_url="redis://:s3cret@db:6379/0").settings())


BOUNDED = sorted(n for n, t in ClusterNB.class_traits(config=True).items() if isinstance(t, Bounded | BoundedInt))


def test_every_numeric_setting_is_bounded() -> None:
    numeric = {n for n, t in ClusterNB.class_traits(config=True).items() if isinstance(t, Float | Int)}
    assert set(BOUNDED) == numeric  # a new number setting must say its physical bounds


@pytest.mark.parametrize("name", BOUNDED)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e300, 1e300])
def test_a_setting_out_of_its_bounds_is_a_clear_error(name: str, value: float) -> None:
    if isinstance(ClusterNB.class_traits()[name], BoundedInt):
        if not math.isfinite(value):
            with pytest.raises(ValueError, match=rf"'{name}' trait .* expected an int"):
                load_config(**{name: value})
            return
        value = int(value)
    with pytest.raises(ValueError, match=rf"^{name} must be between"):
        load_config(**{name: value})


@pytest.mark.parametrize(
    ("ttls", "message"),
    [({"workers": float("nan")}, "cache_ttls\\['workers'\\] must be between"), ({"a:b": 1.0}, "not a namespace")],
)
def test_cache_ttls_are_bounded(ttls: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(cache_ttls=ttls)
