"""Keeping Redis passwords out of everything the command line prints.

A Redis URL may carry a password (``redis://:secret@host``, or a ``password=``
query parameter). `redact_url` gives the URL fit to print, and `Redactor`
scrubs the password out of any text, such as an error message from a library
that quoted the URL, before it reaches a terminal or a log.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["Redactor", "redact_url"]

#: What a hidden password is shown as.
MASK = "***"

_QUERY_SECRET = re.compile(r"(?i)([?&;]password=)[^&;#]*")


def redact_url(url: str) -> str:
    """The URL with its password, if any, replaced by ``***``.

    Args:
        url: A Redis URL.

    Returns:
        The URL fit to print. A URL that cannot even be split into its parts
        is returned as its scheme and ``<unreadable URL>`` only.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        scheme = url.partition(":")[0] if ":" in url else ""
        return f"{scheme}:<unreadable URL>" if scheme.isalnum() else "<unreadable URL>"

    # The URL is edited in place rather than rebuilt, so that it reads as
    # given ("unix:///path" keeps its empty host).
    shown = url
    userinfo = parts.netloc.rpartition("@")[0]
    user, colon, _ = userinfo.partition(":")
    if colon:
        shown = shown.replace(f"{userinfo}@", f"{user}:{MASK}@", 1)
    return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, shown)


def _secrets_of(url: str) -> list[str]:
    found: list[str] = []
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        # Unreadable: hide everything that could be a password.
        userinfo = url.partition("://")[2].rpartition("@")[0]
        if userinfo:
            found.append(userinfo)
        return found
    userinfo = parts.netloc.rpartition("@")[0]
    password = userinfo.partition(":")[2]
    if password:
        found.append(password)
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key.lower() == "password" and value:
            found.append(value)
    for secret in list(found):
        decoded = urllib.parse.unquote(secret)
        if decoded != secret:
            found.append(decoded)
    # Longest first, so that a secret containing another is hidden whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


class Redactor:
    """Hides the passwords of the given URLs in any text."""

    def __init__(self, *urls: str | None) -> None:
        """Learn the passwords to hide.

        Args:
            urls: Redis URLs; ``None`` entries are skipped.
        """
        secrets: set[str] = set()
        for url in urls:
            if url:
                secrets.update(_secrets_of(url))
        self._secrets = sorted(secrets, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """The text with every known password replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text
