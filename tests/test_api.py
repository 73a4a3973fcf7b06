"""Tests of the public surface re-exported by `exit_heartbeat`."""

from __future__ import annotations

import importlib.metadata
import inspect
import types

import exit_heartbeat

# Names every package has that are not part of its API.
_NOT_API = {"annotations"}


def _isort_key(name: str) -> tuple[int, str]:
    # Constants first, then classes, then functions, as ruff's RUF022 sorts.
    if name.isupper():
        return (0, name)
    if name[0].isupper():
        return (1, name)
    return (2, name)


def _public_names() -> set[str]:
    return {
        name
        for name, value in vars(exit_heartbeat).items()
        if not name.startswith("_")
        and name not in _NOT_API
        and not isinstance(value, types.ModuleType)
    }


def test_api_all_is_sorted() -> None:
    """__all__ is sorted constants first, then classes, then functions."""
    assert exit_heartbeat.__all__ == sorted(exit_heartbeat.__all__, key=_isort_key)


def test_api_all_has_no_duplicates() -> None:
    """Each name is listed once."""
    assert len(set(exit_heartbeat.__all__)) == len(exit_heartbeat.__all__)


def test_api_all_matches_the_public_exports() -> None:
    """__all__ lists exactly the public names the package defines."""
    assert set(exit_heartbeat.__all__) == _public_names()


def test_api_star_import_gives_all() -> None:
    """``from exit_heartbeat import *`` binds exactly the names in __all__."""
    namespace: dict[str, object] = {}
    exec("from exit_heartbeat import *", namespace)

    assert set(namespace) - {"__builtins__"} == set(exit_heartbeat.__all__)


def test_api_classes_and_functions_have_docstrings() -> None:
    """Every exported class and function says what it is for."""
    undocumented = [
        name
        for name in exit_heartbeat.__all__
        if (
            inspect.isclass(getattr(exit_heartbeat, name))
            or callable(getattr(exit_heartbeat, name))
        )
        and not inspect.getdoc(getattr(exit_heartbeat, name))
    ]

    assert undocumented == []


def test_api_version_matches_the_installed_metadata() -> None:
    """__version__ is the version the package was installed as."""
    installed = importlib.metadata.version("exit_heartbeat")

    assert exit_heartbeat.__version__ == installed


def test_api_errors_share_one_base_and_the_expected_builtins() -> None:
    """Every library error is a HeartbeatError and the built-in a user expects."""
    assert issubclass(exit_heartbeat.ConfigError, exit_heartbeat.HeartbeatError)
    assert issubclass(exit_heartbeat.ConfigError, ValueError)
    assert issubclass(exit_heartbeat.MalformedEntryError, ValueError)
    assert issubclass(exit_heartbeat.AttachError, RuntimeError)
    assert issubclass(exit_heartbeat.AlreadyAttachedError, exit_heartbeat.AttachError)
    for name in ("ConfigError", "AttachError", "MalformedEntryError"):
        assert issubclass(getattr(exit_heartbeat, name), exit_heartbeat.HeartbeatError)


def test_api_statuses_print_as_their_values() -> None:
    """Status and HeartbeatState print as the words published and logged."""
    assert [str(s) for s in exit_heartbeat.Status] == ["OK", "DEGRADED", "STOPPED"]
    assert str(exit_heartbeat.HeartbeatState.RUNNING) == "running"
    assert exit_heartbeat.Status("DEGRADED") is exit_heartbeat.Status.DEGRADED
