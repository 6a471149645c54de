"""The one configuration object: every clusternb setting, its default, its help and its environment variable.

Precedence, highest first: keyword arguments (``clusternb.connect(interval=1)``), traitlets config
(``c.ClusterNB.interval = 1`` in ``jupyter_server_config.py`` or ``clusternb_config.py``), environment variables
(``CLUSTERNB_INTERVAL=1``), then the defaults below. The kernel, the server extension and the CLI all build
their settings through :func:`load_config`, so a setting means the same thing everywhere.
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path
from typing import Any

import msgspec
import orjson
from traitlets import Bool, Dict, Float, Int, List, TraitError, TraitType, Unicode, default, validate
from traitlets.config import Config, Configurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from clusternb import arguments
from clusternb.arguments import ConfigError
from clusternb.model import Labels, Name
from clusternb.redisio.urls import check_url, mask_url

ENV_PREFIX = "CLUSTERNB_"
DAY = 86400.0


class _Within(TraitType[Any, Any]):
    """A number setting within ``[lo, hi]`` and finite: a setting is input too, and NaN passes every ``<``."""

    def __init__(self, default_value: Any, lo: float, hi: float, **kwargs: Any) -> None:
        super().__init__(default_value, **kwargs)
        self.lo, self.hi = lo, hi

    def validate(self, obj: Any, value: Any) -> Any:
        number = super().validate(obj, value)  # type: ignore[misc]  # Float/Int in the MRO: their cast first
        if not (math.isfinite(number) and self.lo <= number <= self.hi):
            raise TraitError(f"{self.name} must be between {self.lo:n} and {self.hi:n}, got {number:n}")
        return number


class Bounded(_Within, Float[float, float]):
    """A float setting within ``[lo, hi]``."""


class BoundedInt(_Within, Int[int, int]):
    """An integer setting within ``[lo, hi]``."""


#: Default time-to-live, in seconds, of each query namespace in the cache.
DEFAULT_TTLS: dict[str, float] = {
    "cluster": 30.0, "workers": 20.0, "metrics": 15.0, "alerts": 10.0, "kernels": 10.0,
}  # fmt: skip


class ClusterNB(Configurable):
    """Settings shared by the kernel API, the agent, the CLI and the Jupyter server extension."""

    # -- sampling ---------------------------------------------------------------------------------------
    interval = Bounded(2.0, 0.05, 3600, help="Seconds between two samples of a node (local sampler and agent).").tag(
        config=True
    )
    node_name = Unicode(
        help="Name this host reports under. Defaults to the host name; must be unique in a cluster."
    ).tag(config=True)
    disk_path = Unicode("/", help="Filesystem path whose disk size and use are reported.").tag(config=True)
    labels = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        help="Free-form key=value labels attached to this node's snapshots (e.g. rack, role).",
    ).tag(config=True)

    net_exclude = List(
        Unicode(),
        default_value=["lo"],
        help="Network interfaces left out of net_rx_bps/net_tx_bps (loopback is a host talking to itself).",
    ).tag(config=True)

    dask_scheduler = Unicode(
        "", help="Address of a Dask scheduler (tcp://host:8786) whose workers join workers() and metrics()."
    ).tag(config=True)
    services = Dict(
        value_trait=Unicode(),
        key_trait=Unicode(),
        help="Services to probe, name -> URL (http(s)://... or tcp://host:port); status and latency appear in "
        "cluster_status() and service_down alerts fire when one stops answering.",
    ).tag(config=True)
    probe_timeout = Bounded(
        2.0, 0.01, 600, help="Seconds a service probe may take before the service counts as down."
    ).tag(config=True)

    # -- state ------------------------------------------------------------------------------------------
    history_window = Bounded(3600.0, 0, 366 * DAY, help="Seconds of per-node history kept for metrics().").tag(
        config=True
    )
    max_clock_skew = Bounded(
        300.0,
        0,
        DAY,
        help="Seconds a node's sample time may be ahead of this host's clock; a record further in the future is "
        "rejected (counted in cluster_status().records_rejected), since it would show a node online forever.",
    ).tag(config=True)
    history_max_samples = BoundedInt(
        20_000,
        1,
        10_000_000,
        help="Hard cap on samples kept per node, so memory stays flat even if clocks jump.",
    ).tag(config=True)
    stale_after = Bounded(
        0.0, 0, 366 * DAY, help="Seconds without a sample before a node is 'stale'. 0 means 2 x the node's interval."
    ).tag(config=True)
    offline_after = Bounded(
        0.0, 0, 366 * DAY, help="Seconds without a sample before a node is 'offline'. 0 means 3 x the node's interval."
    ).tag(config=True)

    kernel_paths_of_others = Bool(
        False,
        help="Show the notebook paths of kernels owned by other users in kernels() (an administrator's setting for "
        "shared nodes, read from config files only, never from the environment; by default another user's kernel "
        "counts, but its path reads <NA>).",
    ).tag(config=True, env=False)

    # -- alerts ---------------------------------------------------------------------------------------------
    alert_defaults = Bool(
        True, help="Start from the built-in alert rules (CPU, memory, disk, swap, GPU, offline)."
    ).tag(config=True)
    alert_rules = List(
        Dict(),
        help="Alert rules added or changed, as dicts (name, metric, op, threshold, for, clear, severity, "
        "message, enabled); a rule named like a built-in replaces it, {'name': 'cpu', 'enabled': False} "
        "disables one.",
    ).tag(config=True)
    alert_rules_file = Unicode(
        "", help="YAML or JSON file of alert rules, re-read when it changes; a bad file keeps the previous rules."
    ).tag(config=True)
    alert_history = BoundedInt(1000, 1, 10_000_000, help="Resolved alerts kept in the history.").tag(config=True)

    # -- Redis and the cache ----------------------------------------------------------------------------
    redis_url = Unicode(
        "",
        help="Redis URL (redis://, rediss:// or unix://). Empty: embedded mode, state and cache in memory.",
    ).tag(config=True)
    publish_host = Bool(
        False,
        help="With redis_url: also sample this host in-process and publish it to Redis. Kernels leave it off "
        "(one sampler per node): the server extension samples the Jupyter host (ClusterNBApp.sample_host) "
        "and agents sample the others.",
    ).tag(config=True)
    redis_socket_timeout = Bounded(
        0.25, 0.001, 600, help="Seconds a Redis command may take before the cache falls back to memory."
    ).tag(config=True)
    redis_connect_timeout = Bounded(0.5, 0.001, 600, help="Seconds to wait for a Redis connection.").tag(config=True)
    cache_enabled = Bool(True, help="Cache query results (set False to always recompute).").tag(config=True)
    cache_ttls = Dict(
        value_trait=Float(),
        key_trait=Unicode(),
        help=f"Seconds each query namespace stays cached, merged over the defaults {DEFAULT_TTLS}.",
    ).tag(config=True)
    cache_max_entries = BoundedInt(
        2048, 1, 10_000_000, help="Entries the in-memory cache holds before evicting (LRU)."
    ).tag(config=True)
    near_cache_bytes = BoundedInt(
        64 * 1024 * 1024,
        0,
        2**40,
        help="With redis_url: bytes (encoded) of Redis cache entries each process keeps decoded in its own "
        "memory, dropped when any process changes them (Redis CLIENT TRACKING, standalone Redis 6+). "
        "0 turns the near cache off.",
    ).tag(config=True)

    @validate("redis_url")
    def _check_redis_url(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value:
            try:
                check_url(value)
            except ValueError as exc:
                raise TraitError(str(exc)) from None
        return value

    @validate("cache_ttls")
    def _check_ttls(self, proposal: Any) -> dict[str, float]:
        """Namespaces are cache key parts (non-empty names without ':'); TTLs are seconds up to a year."""
        value: dict[str, float] = dict(proposal["value"])
        for name, ttl in value.items():
            try:
                arguments.namespace("cache_ttls", name)
            except ValueError as exc:
                raise TraitError(str(exc)) from None
            if not 0 <= ttl <= arguments.TTL_MAX:  # also NaN
                raise TraitError(f"cache_ttls[{name!r}] must be between 0 and {arguments.TTL_MAX} seconds, got {ttl}")
        return value

    @validate("node_name", "labels")
    def _check_record_fields(self, proposal: Any) -> Any:
        """What goes into every snapshot is bounded here as readers bound it (``model.Name``, ``model.Labels``):
        a name of 5,000 characters would be published, rejected by every reader, and the node would vanish."""
        name = proposal["trait"].name
        try:
            msgspec.convert(proposal["value"], {"node_name": Name, "labels": Labels}[name])
        except msgspec.ValidationError as exc:
            raise TraitError(f"{name}: {exc}") from None
        return proposal["value"]

    @default("node_name")
    def _node_name_default(self) -> str:
        return socket.gethostname()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._apply_env(explicit=set(kwargs) | set(self.config.get(type(self).__name__, {})))

    def _apply_env(self, explicit: set[str]) -> None:
        """Fill every setting not given explicitly from its ``CLUSTERNB_*`` environment variable."""
        for name, trait in self.traits(config=True).items():
            if trait.metadata.get("env") is False:  # an administrator's setting: not one a user's shell may flip
                continue
            env = ENV_PREFIX + name.upper()
            raw = os.environ.get(env)
            if raw is None or name in explicit:
                continue
            try:
                value = _parse_env(trait, raw)
                setattr(self, name, value)
            except (TraitError, ValueError) as exc:
                raise ConfigError(f"environment variable {env}={raw!r} is invalid: {exc}") from None

    def ttl(self, namespace: str) -> float:
        """The configured TTL of a cache namespace (default 15 s for namespaces without one)."""
        return float(self.cache_ttls.get(namespace, DEFAULT_TTLS.get(namespace, 15.0)))

    def thresholds(self, node_interval: float) -> tuple[float, float]:
        """(stale_after, offline_after) in seconds for a node sampled every ``node_interval`` seconds."""
        stale = self.stale_after or 2.0 * node_interval
        offline = self.offline_after or 3.0 * node_interval
        return stale, max(offline, stale)

    def settings(self) -> dict[str, Any]:
        """Every setting as plain data, for ``clusternb config`` and logs. The Redis password is masked."""
        out = {name: getattr(self, name) for name in sorted(self.traits(config=True))}
        out["redis_url"] = mask_url(self.redis_url)
        return out


def _parse_env(trait: Any, raw: str) -> Any:
    if isinstance(trait, List):
        if raw.strip().startswith("["):
            return orjson.loads(raw)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if isinstance(trait, Dict):
        raw = raw.strip()
        if raw.startswith("{"):
            return orjson.loads(raw)
        pairs = [p for p in raw.split(",") if p.strip()]
        out: dict[str, Any] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError("expected JSON or comma-separated key=value pairs")
            out[key.strip()] = value.strip()
        return out
    return trait.from_string(raw)


def config_files() -> list[Path]:
    """Where ``clusternb_config.{json,py}`` is looked for: Jupyter's config path, then ``$CLUSTERNB_CONFIG``."""
    from jupyter_core.paths import jupyter_config_path

    found: list[Path] = []
    for directory in reversed(jupyter_config_path()):  # lowest priority first, as Jupyter applies them
        for ext in ("json", "py"):
            path = Path(directory) / f"clusternb_config.{ext}"
            if path.is_file():
                found.append(path)
    extra = os.environ.get(ENV_PREFIX + "CONFIG")
    if extra:
        path = Path(extra)
        if not path.is_file():
            raise ConfigError(f"CLUSTERNB_CONFIG={extra!r} is not a file")
        found.append(path)
    return found


def _load_file(path: Path) -> Config:
    """One ``clusternb_config.{json,py}``; any failure (syntax, an exception the file raises) is a ConfigError.

    A Python config file is code the user wrote and runs as such (as Jupyter's own do); what it got wrong is
    reported as the user's mistake in that file, with its line, not as a traceback from traitlets' loader.
    """
    loader_cls = JSONFileConfigLoader if path.suffix == ".json" else PyFileConfigLoader
    try:
        return loader_cls(path.name, path=str(path.parent)).load_config()
    except SyntaxError as exc:
        raise ConfigError(f"config file {path}: line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        raise ConfigError(f"config file {path}: {type(exc).__name__}: {exc}") from None


def load_config(config: Config | None = None, **overrides: Any) -> ClusterNB:
    """Build settings from config files, an optional traitlets ``Config``, env vars and keyword overrides."""
    if config is not None and not isinstance(config, Config):
        raise arguments.ArgumentTypeError("config", f"expected a traitlets Config, got {arguments.shown(config)}")
    merged = Config()
    for path in config_files():
        merged.merge(_load_file(path))
    if config is not None:
        merged.merge(config)
    unknown = set(overrides) - set(ClusterNB.class_trait_names(config=True))
    if unknown:
        allowed = ", ".join(sorted(ClusterNB.class_trait_names(config=True)))
        raise ConfigError(f"unknown setting(s) {sorted(unknown)}; allowed: {allowed}")
    try:
        return ClusterNB(config=merged, **overrides)
    except TraitError as exc:
        raise ConfigError(str(exc)) from None
