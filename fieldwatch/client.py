"""The CLI's client commands (SPEC section 8): status, enable, disable, logs, events, alerts — over the HTTP API.

Each command is a function `Namespace -> exit code`: 0 ok, 1 runtime error (daemon
unreachable, refused or failed), 2 usage error. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

__all__ = [
    "CLIENT_COMMANDS",
    "DEFAULT_URL",
    "ClientError",
    "add_client_commands",
    "cmd_alerts",
    "cmd_disable",
    "cmd_enable",
    "cmd_events",
    "cmd_logs",
    "cmd_status",
]

if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

DEFAULT_URL = "http://127.0.0.1:8080"
_TIMEOUT_S = 10.0
_FOLLOW_TIMEOUT_S = 60.0  # the server writes a heartbeat every few seconds
_COLOURS = {"up": "32", "connecting": "36", "stale": "33", "down": "31", "faulty": "1;35", "disabled": "2"}


class ClientError(Exception):
    """A failure to report in one line; `code` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _base_url(args: argparse.Namespace) -> str:
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


def _open(args: argparse.Namespace, method: str, path: str, query: dict[str, Any], timeout_s: float) -> Any:
    base = _base_url(args)
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


def _call(args: argparse.Namespace, method: str, path: str, **query: Any) -> Any:
    with _open(args, method, path, query, _TIMEOUT_S) as resp:
        raw = resp.read()
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        raise ClientError(f"the server's answer to {path} is not JSON") from None


def _stream(args: argparse.Namespace, path: str, **query: Any) -> Iterator[dict[str, Any]]:
    with _open(args, "GET", path, {**query, "follow": "1"}, _FOLLOW_TIMEOUT_S) as resp:
        try:
            for line in resp:
                if line.strip():  # blank lines are heartbeats
                    yield json.loads(line)
        except TimeoutError:
            raise ClientError(f"the stream from {_base_url(args)} went silent (no heartbeat)") from None
        except (OSError, http.client.HTTPException, ValueError) as err:
            raise ClientError(f"the stream from {_base_url(args)} broke: {type(err).__name__}") from None
    raise ClientError(f"{_base_url(args)} closed the stream (daemon stopping?)")


def _run(body: Callable[[], None]) -> int:
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


# -- formatting ---------------------------------------------------------------


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _age(value: Any, now: float) -> str:
    ts = _parse_time(value)
    if ts is None:
        return "-"
    seconds = max(0, int(now - ts))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _colour_enabled(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def format_table(sites: list[dict[str, Any]], *, colour: bool, now: float | None = None, owners: bool = False) -> str:
    """The status table: one row per endpoint (a site without endpoints gets one row); with
    `owners` (a cluster), an OWNER column after SITE: the instance running it, `-` for none."""
    now = time.time() if now is None else now
    header: tuple[str, ...] = ("SITE", "ENDPOINT", "KIND", "STATE", "SINCE/AGE", "LAST DATA", "REASON")
    rows: list[tuple[str, ...]] = []
    for site in sites:
        endpoints = site.get("endpoints") or []
        if not endpoints:
            state = "enabled" if site.get("enabled") else "disabled"
            rows.append((str(site.get("name")), "-", "-", state, "-", "-", ""))
        for ep in endpoints:
            reason = str(ep.get("reason") or "")
            rows.append((str(site.get("name")), str(ep.get("name")), str(ep.get("kind")), str(ep.get("state")),
                         _age(ep.get("since"), now), _age(ep.get("last_data_at"), now), reason))  # fmt: skip
    state_at = 3
    if owners:
        site_owner = {str(site.get("name")): str(site.get("owner") or "-") for site in sites}
        header = (header[0], "OWNER", *header[1:])
        rows = [(row[0], site_owner.get(row[0], "-"), *row[1:]) for row in rows]
        state_at = 4
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header) - 1)]
    lines = []
    for n, row in enumerate((header, *rows)):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        if colour and n > 0 and row[state_at] in _COLOURS:
            cells[state_at] = f"\x1b[{_COLOURS[row[state_at]]}m{cells[state_at]}\x1b[0m"
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _in_cluster(args: argparse.Namespace) -> bool:
    """Whether the daemon runs in a cluster (its sites have lease epochs); False when unknown."""
    try:
        return any(site.get("epoch") is not None for site in _call(args, "GET", "/api/v1/cluster")["sites"])
    except Exception:  # noqa: BLE001 - an older daemon without the route: no owner column
        return False


def _event_line(event: dict[str, Any]) -> str:
    where = "/".join(str(event.get(k)) for k in ("site", "endpoint") if event.get(k))
    return "  ".join(str(x) for x in (event.get("time"), str(event.get("level", "")).upper().ljust(7), where or "-",
                                      event.get("event", ""), event.get("message", "")))  # fmt: skip


# -- commands -----------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    """Print every site's endpoints with state, age and last data."""

    def body() -> None:
        sites = _call(args, "GET", "/api/v1/sites")["items"]
        if not sites:
            print("no sites configured")
            return
        print(format_table(sites, colour=_colour_enabled(sys.stdout), owners=_in_cluster(args)))

    return _run(body)


def _set_site(args: argparse.Namespace, enabled: bool) -> int:
    def body() -> None:
        action = "enable" if enabled else "disable"
        site = _call(args, "POST", f"/api/v1/sites/{urllib.parse.quote(args.site, safe='')}/{action}")
        print(f"site {site.get('name')}: {'enabled' if site.get('enabled') else 'disabled'}")
        if site.get("endpoints"):
            print(format_table([site], colour=_colour_enabled(sys.stdout)))

    return _run(body)


def cmd_enable(args: argparse.Namespace) -> int:
    """Enable SITE: stored, its actors started at once; prints the site as stored."""
    return _set_site(args, True)


def cmd_disable(args: argparse.Namespace) -> int:
    """Disable SITE: stored, its actors stopped at once; prints the site as stored."""
    return _set_site(args, False)


def cmd_logs(args: argparse.Namespace) -> int:
    """Print the daemon log's last lines (and follow it with -f)."""
    query = {"lines": args.lines, "level": args.level, "site": args.site}

    def body() -> None:
        if args.follow:
            for item in _stream(args, "/api/v1/logs", **query):
                print(item.get("line", ""), flush=True)
            return
        for item in _call(args, "GET", "/api/v1/logs", **query)["items"]:
            print(item.get("line", ""))

    return _run(body)


def format_alerts(alerts: list[dict[str, Any]], *, show_resolved: bool, now: float | None = None) -> str:
    """The alerts table, in the API's order (newest first); ages are since triggered (and resolved)."""
    now = time.time() if now is None else now
    header: tuple[str, ...] = ("TRIGGERED", "AGE", "SEVERITY", "SITE/ENDPOINT", "CONDITION")
    header += ("RESOLVED",) if show_resolved else ()
    rows: list[tuple[str, ...]] = []
    for alert in alerts:
        where = f"{alert.get('site') or '-'}/{alert.get('endpoint') or '-'}"
        row: tuple[str, ...] = (str(alert.get("triggered_at")), _age(alert.get("triggered_at"), now), str(alert.get("severity")), where,
               str(alert.get("condition")))  # fmt: skip
        if show_resolved:
            row += (f"{_age(alert.get('resolved_at'), now)} ago" if alert.get("resolved_at") else "active",)
        rows.append((*row, str(alert.get("message") or "")))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=False)) + "  MESSAGE"]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def cmd_alerts(args: argparse.Namespace) -> int:
    """Print the active alerts (every alert with --all), newest first."""

    def body() -> None:
        query = {"limit": args.limit, "active": None if args.all else "true"}
        alerts = _call(args, "GET", "/api/v1/alerts", **query)["items"]
        if not alerts:
            print("no alerts" if args.all else "no active alerts")
            return
        print(format_alerts(alerts, show_resolved=args.all))

    return _run(body)


def cmd_events(args: argparse.Namespace) -> int:
    """Print the connection event log, oldest first (and follow it with -f)."""
    query = {"site": args.site, "endpoint": args.endpoint, "level": args.level, "limit": args.limit}

    def body() -> None:
        if args.follow:
            for event in _stream(args, "/api/v1/events", **query):
                print(_event_line(event), flush=True)
            return
        for event in reversed(_call(args, "GET", "/api/v1/events", **query)["items"]):
            print(_event_line(event))

    return _run(body)


# -- argparse -----------------------------------------------------------------


MAX_LIMIT = 10_000
"""SPEC section 6: `limit` accepts 1 to 10,000 (`lines` 0 to 10,000)."""


def _in_range(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text[:64]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high:,}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its error
    return parse


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=None, help=f"API base URL (default: $FIELDWATCH_URL, else {DEFAULT_URL})")
    p.add_argument("--token", default=None, help="bearer token for commands (default: $FIELDWATCH_TOKEN)")


def _add_status(sub: SubParsers) -> None:
    p = sub.add_parser("status", help="a table of sites, endpoints, states and ages")
    _common(p)


def _add_site_command(name: str, what: str) -> Callable[[SubParsers], None]:
    def add(sub: SubParsers) -> None:
        p = sub.add_parser(name, help=what)
        p.add_argument("site", metavar="SITE")
        _common(p)

    return add


def _add_logs(sub: SubParsers) -> None:
    p = sub.add_parser("logs", help="tail the daemon log through the API")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.add_argument("--level", help="this level and above (debug, info, warning, error)")
    p.add_argument("--site", help="only lines of this site's actors")
    p.add_argument("--lines", type=_in_range(0, MAX_LIMIT), default=200, help="how many lines first (default 200)")
    _common(p)


def _add_events(sub: SubParsers) -> None:
    p = sub.add_parser("events", help="the connection event log")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--site", help="only this site")
    p.add_argument("--endpoint", help="only this endpoint")
    p.add_argument("--level", help="this level and above")
    p.add_argument("--limit", type=_in_range(1, MAX_LIMIT), default=100, help="how many events first (default 100)")
    _common(p)


def _add_alerts(sub: SubParsers) -> None:
    p = sub.add_parser("alerts", help="the active alerts (all with --all), newest first")
    p.add_argument("--all", action="store_true", help="resolved alerts too")
    p.add_argument("--limit", type=_in_range(1, MAX_LIMIT), default=100, help="at most this many (default 100)")
    _common(p)


CLIENT_COMMANDS: dict[str, tuple[Callable[[SubParsers], None], Callable[[argparse.Namespace], int]]] = {
    "status": (_add_status, cmd_status),
    "enable": (_add_site_command("enable", "enable a site (its connections start at once)"), cmd_enable),
    "disable": (_add_site_command("disable", "disable a site (its connections stop at once)"), cmd_disable),
    "logs": (_add_logs, cmd_logs),
    "events": (_add_events, cmd_events),
    "alerts": (_add_alerts, cmd_alerts),
}
"""Subcommand name -> (declare its arguments, run it), the shape of `fieldwatch.cli.COMMANDS`."""


def add_client_commands(subparsers: SubParsers) -> None:
    """Declare the client commands on `subparsers`; each parser's `handler` default runs it."""
    for name, (add, handler) in CLIENT_COMMANDS.items():
        add(subparsers)
        subparsers.choices[name].set_defaults(handler=handler)
