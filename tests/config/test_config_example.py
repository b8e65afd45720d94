"""The shipped examples/fieldwatch.yaml loads, uses every kind and keeps its secrets out of views."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import pytest

from fieldwatch.actors.icmp.schema import IcmpOptions
from fieldwatch.actors.mqtt.schema import MqttOptions
from fieldwatch.actors.opcua.schema import OpcuaOptions
from fieldwatch.config import endpoint_public_dict, load_config
from fieldwatch.errors import ConfigError
from fieldwatch.policy import DEFAULT_POLICY

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "fieldwatch.yaml"
ENV = {"FIELDWATCH_TOKEN": "example-token", "SITE13_PASSWORD": "example-password"}


def test_example_loads_with_its_environment() -> None:
    config = load_config(EXAMPLE, env=ENV)
    assert config.path == str(EXAMPLE)
    assert config.instance == "plant-gw-1"
    assert config.http.token == "example-token"
    assert config.storage.url == f"sqlite:///{REPO / 'examples' / 'fieldwatch.db'}"
    assert config.logging.file == str(REPO / "examples" / "fieldwatch.log")
    assert config.supervision == DEFAULT_POLICY
    endpoints = {e.kind: e for site in config.sites for e in site.endpoints}
    assert isinstance(endpoints["opcua"].options, OpcuaOptions)
    assert isinstance(endpoints["icmp"].options, IcmpOptions)
    mqtt = endpoints["mqtt"].options
    assert isinstance(mqtt, MqttOptions)
    assert mqtt.password == "example-password"
    assert mqtt.tls is not None and mqtt.tls.ca == str(REPO / "examples" / "certs" / "ca.pem")


def test_example_writes_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for cls in (OpcuaOptions, MqttOptions, IcmpOptions):
        for f in fields(cls):
            assert f"{f.name}:" in text, f"{cls.__name__}.{f.name} missing from the example"


def test_example_needs_its_environment() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    assert [e.split(": ", 1)[1] for e in info.value.errors] == [
        "http.token: environment variable FIELDWATCH_TOKEN is not set",
        "sites[0].endpoints[1].password: environment variable SITE13_PASSWORD is not set",
    ]


def test_public_dict_has_no_secrets() -> None:
    config = load_config(EXAMPLE, env=ENV)
    for endpoint in config.sites[0].endpoints:
        public = endpoint_public_dict(endpoint)
        text = json.dumps(public)
        assert "example-password" not in text and "password" not in public
        assert public["name"] == endpoint.name and public["kind"] == endpoint.kind
    broker = endpoint_public_dict(config.sites[0].endpoints[1])
    assert broker["username"] == "site13"
    assert broker["topics"] == ["sensors/+/+", "$share/fieldwatch/meters/#"]
