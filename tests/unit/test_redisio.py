"""The one translation of redis-py's exceptions, and URL checks: what decides a fallback must be right."""

from __future__ import annotations

import pytest
import redis
from redis import exceptions as rex

from clusternb.redisio.errors import Refused, Unavailable, translate
from clusternb.redisio.urls import check_url, mask_url

WHERE = "redis://:***@db:6379/0"


@pytest.mark.parametrize(
    "exc",
    [
        redis.ConnectionError("Error 111 connecting"),
        redis.TimeoutError("Timeout reading from socket"),
        rex.AuthenticationError("invalid username-password pair"),
        rex.BusyLoadingError("Redis is loading the dataset in memory"),
        rex.ReadOnlyError("You can't write against a read only replica."),
        rex.ClusterDownError("The cluster is down"),
        rex.TryAgainError("TRYAGAIN"),
        rex.MasterDownError("MASTERDOWN"),
        rex.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node"),
        rex.SlotNotCoveredError("Slot 12 is not covered by the cluster"),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_faults_of_the_server_mean_fall_back(exc: BaseException) -> None:
    fault = translate(exc, WHERE)
    assert isinstance(fault, Unavailable) and isinstance(fault, ConnectionError)
    assert WHERE in fault.reason and type(exc).__name__ in fault.reason


@pytest.mark.parametrize(
    "exc",
    [
        rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rex.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'"),
        rex.DataError("Invalid input of type: 'dict'"),
        rex.RedisClusterException("EVALSHA - all keys must map to the same key slot"),
    ],
)
def test_refusals_of_one_command_are_that_calls_error(exc: BaseException) -> None:
    assert isinstance(translate(exc, WHERE), Refused)


def test_anything_else_is_a_bug_and_passes_through() -> None:
    assert translate(KeyError("x"), WHERE) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://db:6379", "not a Redis URL"),
        ("redis://", "names no host"),
        ("unix://", "names no socket path"),
        ("redis://db:99999", "not a valid URL"),
        ("", "not a Redis URL"),
    ],
)
def test_bad_urls_name_the_setting_and_never_the_password(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        check_url(url.replace("//", "//user:hunter2@", 1) if "db" in url else url)
    assert str(info.value).startswith("redis_url: ") and "hunter2" not in str(info.value)


def test_good_urls_pass_and_passwords_are_masked() -> None:
    for url in ("redis://db:6379/0", "rediss://:pw@db:6380", "unix:///run/redis.sock"):
        assert check_url(url) == url
    assert mask_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
