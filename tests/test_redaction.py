"""Tests of hiding Redis passwords in URLs and in any text."""

from __future__ import annotations

import pytest

from exit_heartbeat.redaction import Redactor, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:pw@host/1", "rediss://user:***@host/1"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        (
            "unix:///run/redis.sock?password=pw&db=2",
            "unix:///run/redis.sock?password=***&db=2",
        ),
    ],
)
def test_redact_url_hides_password_only(url: str, shown: str) -> None:
    """The password, and nothing else, is replaced by ***."""
    assert redact_url(url) == shown


def test_redact_url_unreadable_url_shows_nothing_of_it() -> None:
    """A URL that cannot be split is not echoed back."""
    assert redact_url("redis://:pw@[::1") == "redis:<unreadable URL>"


def test_redactor_scrubs_password_from_any_text() -> None:
    """Every occurrence of the password, raw or percent-decoded, is hidden."""
    scrub = Redactor("redis://:p%40ss@host/0")

    text = scrub("auth p%40ss failed for p@ss at redis://:p%40ss@host/0")

    assert "p%40ss" not in text
    assert "p@ss" not in text
    assert text.count("***") == 3


def test_redactor_without_password_changes_nothing() -> None:
    """A URL with no password leaves text alone."""
    assert Redactor("redis://host/0", None)("redis://host/0 down") == (
        "redis://host/0 down"
    )
