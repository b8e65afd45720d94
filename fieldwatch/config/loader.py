"""Loading of fieldwatch.yaml into a `Config`, reporting every error with file, line and key."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from fieldwatch.config.model import (
    ClusterConfig,
    Config,
    EndpointConfig,
    HttpConfig,
    LoggingConfig,
    RetentionConfig,
    SiteConfig,
    StorageConfig,
)
from fieldwatch.config.supervision import load_supervision, validate_endpoint_override
from fieldwatch.errors import ConfigError
from fieldwatch.kinds import KINDS
from fieldwatch.policy import SupervisionPolicy, default_policy
from fieldwatch.schema.dsl import (
    INVALID,
    Bool,
    Checker,
    Ctx,
    Field,
    Float,
    Int,
    Invalid,
    Nullable,
    Obj,
    PathStr,
    Schema,
    Seq,
    Str,
    resolve_path,
    type_name,
)
from fieldwatch.schema.nodes import Node, PathT, compose, sort_errors

__all__ = ["NAME_PATTERN", "load_config", "parse_config_text"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Site and endpoint names: they appear in URLs, metric labels and actor paths."""
NAME_MAX = 63
_NAME_HINT = "use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"

_COMMON_KEYS = ("name", "kind", "enabled", "supervision")


def _check_db_url(value: str, ctx: Ctx) -> Any:
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise Invalid("must be a URL such as sqlite:///fieldwatch.db or postgresql://user@host/db")
    scheme = scheme.lower()
    if scheme == "sqlite":
        if not rest.startswith("/") or not rest[1:].partition("?")[0]:
            raise Invalid("a SQLite URL is sqlite:///FILE (relative) or sqlite:////ABS/FILE")
    elif scheme in ("postgresql", "postgres"):
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise Invalid("invalid PostgreSQL URL (bad port?)") from None
        if not parts.path.strip("/"):
            raise Invalid("a PostgreSQL URL needs a database name: postgresql://user@host/DB")
    else:
        raise Invalid(f"unsupported database scheme {scheme!r}: use sqlite or postgresql")
    return value


def _resolve_db_url(url: str, base_dir: str) -> str:
    """Make a relative SQLite file absolute, relative to the config file's directory."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "sqlite":
        return url
    path, q, query = rest[1:].partition("?")
    if path == ":memory:" or path.startswith("/"):
        return url
    return f"{scheme}:///{resolve_path(path, base_dir)}{q}{query}"


def _check_listen(value: str, ctx: Ctx) -> Any:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise Invalid(f"must be HOST:PORT with PORT 0..65535 (0 picks a free port), got {value!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise Invalid("an IPv6 host must be in brackets, e.g. [::1]:8080")
    return value


def _one_retention(c: Checker) -> None:
    if c.given("retention") and c.given("retention_days"):
        c.fail("retention_days", "give storage.retention (the tiers) or the old retention_days, not both")


_RETENTION = Obj(RetentionConfig, {
    "raw_days": Float(gt=0),
    "minute_days": Float(gt=0),
    "hour_days": Float(gt=0),
    "events_days": Float(gt=0),
})
_STORAGE = Obj(StorageConfig, {
    "url": Str(convert=_check_db_url),
    "retention": _RETENTION,
    "retention_days": Float(gt=0),
    "max_queue": Int(ge=1),
}, checks=(_one_retention,))
_HTTP = Obj(HttpConfig, {
    "listen": Str(convert=_check_listen),
    "token": Nullable(Str()),
    "threads": Int(ge=1, le=1024),
    "max_body_bytes": Int(ge=1),
    "max_reading_series": Int(ge=0),
})
_CLUSTER = Obj(ClusterConfig, {
    "lease_ttl_s": Float(ge=5),
})
_LOGGING = Obj(LoggingConfig, {
    "file": Nullable(PathStr()),
    "level": Str(choices=("debug", "info", "warning", "error")),
    "format": Str(choices=("text", "json")),
    "max_bytes": Int(ge=1),
    "backups": Int(ge=0),
})


class _Endpoint(Schema):
    """An endpoint mapping: common keys plus the keys of its kind's option schema."""

    expects = "a mapping"

    def __init__(self, policy: SupervisionPolicy) -> None:
        self.policy = policy
        schemas = KINDS.option_schemas()
        self.common = Obj(None, {
            "name": Field(Str(pattern=NAME_PATTERN, hint=_NAME_HINT, max_len=NAME_MAX), required=True),
            "kind": Field(Str(choices=tuple(schemas)), required=True),
            "enabled": Bool(),
        })

    def check(self, node: Node, ctx: Ctx, path: PathT) -> Any:
        if not isinstance(node.value, dict):
            raise self.wrong_type(node, ctx, path)
        schemas = KINDS.option_schemas()
        kind_node = node.value.get("kind")
        kind = kind_node.value if kind_node is not None else None
        options_schema = schemas.get(kind) if isinstance(kind, str) else None
        # The common keys tolerate everything else; the kind's schema reports unknown keys
        # (when the kind itself is bad, nothing else can be judged).
        common = self.common.validate_keys(node, ctx, path, extra=set(node.value) - {"name", "kind", "enabled"})
        options: Any = INVALID
        if options_schema is not None:
            options = options_schema.validate_keys(node, ctx, path, extra=_COMMON_KEYS)
        override: Any = None
        sup = node.value.get("supervision")
        if sup is not None and sup.ok and sup.value is not None:
            override = validate_endpoint_override(sup, ctx, (*path, "supervision"), self.policy,
                                                  kind if options_schema is not None else None)
        if any(part is INVALID for part in (common, options, override)):
            return INVALID
        return EndpointConfig(options=options, supervision=override, **common)


def _config_schema(policy: SupervisionPolicy) -> Obj:
    site = Obj(SiteConfig, {
        "name": Field(Str(pattern=NAME_PATTERN, hint=_NAME_HINT, max_len=NAME_MAX), required=True),
        "enabled": Bool(),
        "endpoints": Seq(_Endpoint(policy), unique="name", what="endpoint", null_empty=True),
    })
    return Obj(None, {
        "instance": Str(),
        "storage": Nullable(_STORAGE),
        "http": Nullable(_HTTP),
        "logging": Nullable(_LOGGING),
        "cluster": Nullable(_CLUSTER),
        "sites": Seq(site, unique="name", what="site", null_empty=True),
    })


def _check_cluster_storage(root: Node, ctx: Ctx) -> None:
    """`cluster:` needs a database shared by the instances: PostgreSQL, never SQLite (SPEC 10).

    Judged on the raw nodes, so the error is reported beside any others in the file.
    """
    node = root.value.get("cluster")
    if node is None or node.value is None:
        return
    storage = root.value.get("storage")
    url_node = storage.value.get("url") if storage is not None and isinstance(storage.value, dict) else None
    url = url_node.value if url_node is not None else StorageConfig().url
    if isinstance(url, str) and url.partition("://")[0].strip().lower() == "sqlite":
        ctx.error(node.line, ("cluster",),
                  "a cluster needs a shared PostgreSQL database, but storage.url is SQLite "
                  "(set storage.url to postgresql://... or remove cluster:)")


def _load_policy(root: Node, ctx: Ctx, env: Mapping[str, str],
                 sup_errors: list[str]) -> SupervisionPolicy:
    """The policy named by `supervision:`, else supervision.yaml beside the file, else built-in."""
    node = root.value.get("supervision")
    if node is not None:
        path = PathStr().validate(node, ctx, ("supervision",))
        if path is INVALID:
            return default_policy()
        if not os.path.isfile(path):
            ctx.error(node.line, ("supervision",), f"file not found: {path}")
            return default_policy()
    else:
        path = os.path.join(ctx.base_dir, "supervision.yaml")
        if not os.path.isfile(path):
            return default_policy()
    try:
        return load_supervision(path, env)
    except ConfigError as err:
        sup_errors.extend(err.errors)
        return default_policy()


def parse_config_text(text: str, filename: str, env: Mapping[str, str] | None = None,
                      base_dir: str | None = None) -> Config:
    """Parse and validate fieldwatch.yaml text; raises ConfigError with every error found.

    Relative paths resolve against `base_dir` (default: the directory of `filename`);
    `${NAME}` reads `env` (default: os.environ).
    """
    env = os.environ if env is None else env
    base = base_dir or os.path.dirname(os.path.abspath(filename))
    root, errors = compose(text, filename, env)
    ctx = Ctx(filename, base, errors)
    sup_errors: list[str] = []
    if root is None:
        root = Node({}, 1, ok=not errors)
    if not isinstance(root.value, dict):
        if root.ok:
            ctx.error(root.line, (), f"expected a mapping at the top level, got {type_name(root.value)}")
        raise ConfigError(ctx.errors)
    policy = _load_policy(root, ctx, env, sup_errors)
    data = _config_schema(policy).validate_keys(root, ctx, (), extra=("supervision",))
    _check_cluster_storage(root, ctx)
    if ctx.errors or sup_errors:
        raise ConfigError(sort_errors(ctx.errors, filename) + sup_errors)
    storage = data.get("storage") or StorageConfig()
    storage = replace(storage, url=_resolve_db_url(storage.url, base))
    return Config(
        instance=data.get("instance") or socket.gethostname(),
        storage=storage,
        http=data.get("http") or HttpConfig(),
        logging=data.get("logging") or LoggingConfig(),
        supervision=policy,
        sites=data.get("sites") or (),
        cluster=data.get("cluster"),
    )


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a fieldwatch.yaml (and its supervision file); raises ConfigError."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"{filename}: cannot read: {err}"]) from err
    config = parse_config_text(text, filename, env)
    return replace(config, path=os.path.abspath(filename))
