"""OPC UA endpoint URLs: validated, with the default port, and their paths compared without a trailing slash."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fieldwatch.actors.opcua.classify import Failure, SessionError
from fieldwatch.states import FAULTY

__all__ = ["DEFAULT_PORT", "normalize_url", "path_key"]

DEFAULT_PORT = 4840


def normalize_url(url: str) -> tuple[str, str]:
    """Validate an ``opc.tcp://host[:port][/path]`` URL; return it with a port, and its path."""
    parts = urlsplit(url.strip())
    if parts.scheme != "opc.tcp":
        raise SessionError(Failure(FAULTY, f"invalid URL {url!r}: the scheme must be opc.tcp"))
    try:
        port = parts.port
    except ValueError as err:
        raise SessionError(Failure(FAULTY, f"invalid URL {url!r}: {err}")) from err
    if not parts.hostname:
        raise SessionError(Failure(FAULTY, f"invalid URL {url!r}: no host"))
    netloc = parts.netloc if port is not None else f"{parts.netloc}:{DEFAULT_PORT}"
    return urlunsplit(("opc.tcp", netloc, parts.path, parts.query, "")), path_key(parts.path)


def path_key(path: str) -> str:
    """Endpoint paths compare without a trailing slash ("" and "/" are the same)."""
    return path.rstrip("/")
