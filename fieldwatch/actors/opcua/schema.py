"""Config schema of `kind: opcua` endpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fieldwatch.actors.opcua._certs import CertificateError, certificate_uri, load_certificate
from fieldwatch.schema.dsl import (
    Checker,
    Ctx,
    Field,
    Float,
    Invalid,
    Nullable,
    Obj,
    PathStr,
    Seq,
    Str,
)

__all__ = ["NodeConfig", "OpcuaOptions", "SCHEMA", "SecurityConfig", "ThresholdConfig"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """One OPC UA node to read: `id` like "ns=3;i=1002", stored as reading `name`."""

    id: str
    name: str
    poll_s: float = 5.0
    mode: str = "poll"  # poll | subscribe


@dataclass(frozen=True, slots=True)
class ThresholdConfig:
    """An alert when reading `reading` goes above `high` or below `low`."""

    reading: str
    high: float | None = None
    low: float | None = None
    severity: str = "warning"  # info | warning | critical
    hysteresis: float | None = None


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    """OPC UA security policy, message mode and certificate files (absolute paths)."""

    policy: str = "None"
    mode: str = "SignAndEncrypt"  # Sign | SignAndEncrypt
    cert: str | None = None
    key: str | None = None
    server_cert: str | None = None
    application_uri: str | None = None  # default: the URI in the certificate's subjectAltName


@dataclass(frozen=True, slots=True)
class OpcuaOptions:
    """An OPC UA server at `url` (opc.tcp://...), its nodes and thresholds."""

    url: str
    timeout_s: float = 5.0
    security: SecurityConfig = SecurityConfig()
    username: str | None = None
    password: str | None = None
    stale_after_s: float = 30.0
    nodes: tuple[NodeConfig, ...] = ()
    thresholds: tuple[ThresholdConfig, ...] = ()


POLICIES = ("None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss")
MODES = ("Sign", "SignAndEncrypt")
_NODE_ID = r"^(ns=\d+;|nsu=[^;]+;)?(i=\d+|s=.+|g=[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|b=.+)$"

_NODE_ID_HINT = "expected a node id such as ns=3;i=1002, ns=2;s=Pump1.Running, g=GUID or b=BASE64"


def _check_url(value: str, ctx: Ctx) -> Any:
    if not value.startswith("opc.tcp://"):
        raise Invalid("must start with opc.tcp://")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise Invalid("invalid port in URL") from None
    if not parts.hostname:
        raise Invalid("has no host (expected opc.tcp://HOST[:PORT][/PATH])")
    if port is not None and not 1 <= port <= 65535:
        raise Invalid("port must be 1..65535")
    return value


def _security_files(chk: Checker) -> None:
    if chk.values.get("policy", "None") == "None":
        return
    for key in ("cert", "key"):
        if key in chk.values and chk.values[key] is None:
            chk.fail(key, f"required when policy is {chk.values['policy']}")
    cert = chk.values.get("cert")
    if not cert or chk.values.get("application_uri") or "application_uri" not in chk.values:
        return
    try:
        uri = certificate_uri(load_certificate(cert))
    except CertificateError:
        return  # a file missing or unreadable now may be provisioned later: reported (faulty) at connect
    if uri is None:
        chk.fail(
            "application_uri",
            f"required: the certificate {cert} has no subjectAltName URI to take the application URI from",
        )


SECURITY = Obj(
    SecurityConfig,
    {
        "policy": Str(choices=POLICIES),
        "mode": Str(choices=MODES),
        "cert": Nullable(PathStr()),
        "key": Nullable(PathStr()),
        "server_cert": Nullable(PathStr()),
        "application_uri": Nullable(Str()),
    },
    checks=[_security_files],
)

NODE = Obj(
    NodeConfig,
    {
        "id": Field(Str(pattern=_NODE_ID, hint=_NODE_ID_HINT), required=True),
        "name": Field(Str(), required=True),
        "poll_s": Float(gt=0),
        "mode": Str(choices=("poll", "subscribe")),
    },
)


def _threshold_bounds(chk: Checker) -> None:
    if not chk.has("high", "low"):
        return  # already reported
    high, low = chk.values["high"], chk.values["low"]
    if high is None and low is None:
        chk.fail("high", "a threshold needs high, low or both")
    elif high is not None and low is not None and not low < high:
        chk.fail("low", f"low ({low:g}) must be less than high ({high:g})")


THRESHOLD = Obj(
    ThresholdConfig,
    {
        "reading": Field(Str(), required=True),
        "high": Nullable(Float()),
        "low": Nullable(Float()),
        "severity": Str(choices=("info", "warning", "critical")),
        "hysteresis": Nullable(Float(ge=0)),
    },
    checks=[_threshold_bounds],
)


def _thresholds_name_nodes(chk: Checker) -> None:
    nodes = chk.node.value.get("nodes")
    thresholds = chk.node.value.get("thresholds")
    if nodes is None or thresholds is None or not isinstance(thresholds.value, list):
        return
    if not isinstance(nodes.value, list):
        return
    names = {n.value["name"].value for n in nodes.value if isinstance(n.value, dict) and "name" in n.value}
    for i, item in enumerate(thresholds.value):
        reading = item.value.get("reading") if isinstance(item.value, dict) else None
        if reading is not None and isinstance(reading.value, str) and reading.value not in names:
            chk.ctx.error(
                reading.line,
                (*chk.path, "thresholds", i, "reading"),
                f"unknown reading {reading.value!r}: not the name of a node "
                f"({', '.join(sorted(map(str, names))) or 'no nodes'})",
            )
            chk.failed = True


def _credentials(chk: Checker) -> None:
    if chk.values.get("password") is not None and chk.values.get("username") is None:
        chk.fail("password", "password given without username")


SCHEMA = Obj(
    OpcuaOptions,
    {
        "url": Field(Str(convert=_check_url), required=True),
        "timeout_s": Float(gt=0),
        "security": SECURITY,
        "username": Nullable(Str()),
        "password": Nullable(Str()),
        "stale_after_s": Float(gt=0),
        "nodes": Seq(NODE, unique="name", what="node"),
        "thresholds": Seq(THRESHOLD),
    },
    checks=[_thresholds_name_nodes, _credentials],
)
"""Validates the opcua keys of an endpoint mapping into OpcuaOptions."""
