"""The CLI's HTTP client of the API: one request (`call`), a followed stream (`stream`), and
running a command body with its failures as one line and an exit code (`run_command`).

Only the standard library is used. The token comes from --token or FIELDWATCH_TOKEN and
never shows in an error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["DEFAULT_URL", "FOLLOW_TIMEOUT_S", "TIMEOUT_S", "ClientError", "base_url", "call", "run_command", "stream"]

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 10.0
FOLLOW_TIMEOUT_S = 60.0  # the server writes a heartbeat every few seconds


class ClientError(Exception):
    """A failure to report in one line; `code` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def base_url(args: argparse.Namespace) -> str:
    url = str(getattr(args, "url", None) or os.environ.get("FIELDWATCH_URL") or DEFAULT_URL).rstrip("/")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"invalid --url {url!r}: expected http://host:port", code=2)
    return url


def _token(args: argparse.Namespace) -> str | None:
    """The token of --token or FIELDWATCH_TOKEN, checked before use; an error never shows it."""
    token = getattr(args, "token", None) or os.environ.get("FIELDWATCH_TOKEN")
    if not token:
        return None
    source = "--token" if getattr(args, "token", None) else "FIELDWATCH_TOKEN"
    for position, char in enumerate(token):
        if not "!" <= char <= "~":  # a header value: visible ASCII only (no space, newline or other text)
            raise ClientError(
                f"the token of {source} has a character that cannot be sent in an HTTP header at position "
                f"{position + 1} ({_char_name(char)}); a token is printable ASCII without spaces",
                code=2,
            )
    return token


def _char_name(char: str) -> str:
    if char in "\r\n\t ":
        return {"\r": "a carriage return", "\n": "a newline", "\t": "a tab", " ": "a space"}[char]
    return f"U+{ord(char):04X}"


def open_api(args: argparse.Namespace, method: str, path: str, query: dict[str, Any], timeout_s: float) -> Any:
    base = base_url(args)
    params = {k: v for k, v in query.items() if v is not None and v is not False}
    url = base + path + ("?" + urllib.parse.urlencode(params) if params else "")
    headers = {"Accept": "application/json", "User-Agent": "fieldwatch-cli"}
    token = _token(args)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = b"" if method in ("POST", "PUT") else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as err:
        raise ClientError(_http_error(err, bool(token))) from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ConnectionRefusedError):
            raise ClientError(
                f"cannot connect to {base}: connection refused (is fieldwatch running? set --url or FIELDWATCH_URL)"
            ) from None
        if isinstance(reason, TimeoutError):
            raise ClientError(f"no answer from {base} within {timeout_s:g} s") from None
        raise ClientError(f"cannot reach {base}: {reason}") from None
    except TimeoutError:
        raise ClientError(f"no answer from {base} within {timeout_s:g} s") from None
    except OSError as err:
        raise ClientError(f"cannot reach {base}: {err}") from None


def _http_error(err: urllib.error.HTTPError, had_token: bool) -> str:
    try:
        body = json.loads(err.read() or b"{}")
    except ValueError:
        body = {}
    title = body.get("title") if isinstance(body, dict) else None
    description = body.get("description") if isinstance(body, dict) else None
    message = f"{err.code} {title or err.reason}" + (f": {description}" if description else "")
    if err.code == 401 and not had_token:
        message += " (set --token or FIELDWATCH_TOKEN)"
    return message.replace("\n", "; ")


def call(args: argparse.Namespace, method: str, path: str, **query: Any) -> Any:
    with open_api(args, method, path, query, TIMEOUT_S) as resp:
        raw = resp.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise ClientError(f"the server's answer to {path} is not JSON") from None


def stream(args: argparse.Namespace, path: str, **query: Any) -> Iterator[dict[str, Any]]:
    with open_api(args, "GET", path, {**query, "follow": "1"}, FOLLOW_TIMEOUT_S) as resp:
        try:
            for line in resp:
                if line.strip():  # blank lines are heartbeats
                    yield json.loads(line)
        except TimeoutError:
            raise ClientError(f"the stream from {base_url(args)} went silent (no heartbeat)") from None
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise ClientError(f"the stream from {base_url(args)} broke: {type(err).__name__}") from None
    raise ClientError(f"{base_url(args)} closed the stream (daemon stopping?)")


def run_command(body: Callable[[], None]) -> int:
    """Run a command body: ClientError -> its message and code; Ctrl-C or a closed pipe -> 0."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:  # text the terminal cannot show is escaped, never a traceback
            reconfigure(errors="backslashreplace")
    try:
        body()
    except ClientError as err:
        print(f"fieldwatch: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        sys.stderr.close()  # `fieldwatch logs | head`: not an error
        return 0
    return 0
