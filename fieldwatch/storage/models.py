"""Peewee models of the fieldwatch schema (created by `migrations`, never by create_tables).

Times are Unix seconds as floats (same on SQLite and PostgreSQL); configs are JSON text.
"""

from __future__ import annotations

import peewee

from fieldwatch.storage.db import database_proxy

__all__ = [
    "BaseModel",
    "Site",
    "Endpoint",
    "Event",
    "Series",
    "Alert",
    "Topic",
    "ParseError",
    "Device",
    "ALL_MODELS",
]


class BaseModel(peewee.Model):
    """Every model is bound to the one database proxy."""

    class Meta:
        database = database_proxy
        legacy_table_names = False


class Site(BaseModel):
    """A site: a group of endpoints enabled and disabled together."""

    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    enabled = peewee.BooleanField()
    origin = peewee.TextField()  # 'config' | 'api'
    config = peewee.TextField(default="{}")
    created_at = peewee.DoubleField()
    updated_at = peewee.DoubleField()


class Endpoint(BaseModel):
    """One connection (of a registered kind) with its current state as last persisted."""

    id = peewee.AutoField()
    site = peewee.ForeignKeyField(Site, backref="endpoints", on_delete="CASCADE")
    site_id: int  # peewee's id accessor of `site`, declared for type checkers
    name = peewee.TextField()
    kind = peewee.TextField()
    enabled = peewee.BooleanField()
    origin = peewee.TextField()
    config = peewee.TextField(default="{}")
    state = peewee.TextField(default="disabled")
    since = peewee.DoubleField(null=True)
    reason = peewee.TextField(null=True)
    down_since = peewee.DoubleField(null=True)
    last_data_at = peewee.DoubleField(null=True)
    generation = peewee.IntegerField(default=0)
    restarts = peewee.IntegerField(default=0)
    reconnects = peewee.IntegerField(default=0)
    updated_at = peewee.DoubleField()

    class Meta:
        indexes = ((("site", "name"), True),)


class Event(BaseModel):
    """The connection event log; keeps its names when the endpoint is deleted."""

    id = peewee.BigAutoField()
    time = peewee.DoubleField()
    site_name = peewee.TextField(null=True)
    endpoint_name = peewee.TextField(null=True)
    endpoint = peewee.ForeignKeyField(Endpoint, null=True, on_delete="SET NULL")
    level = peewee.TextField()
    event = peewee.TextField()
    message = peewee.TextField(default="")
    exc_type = peewee.TextField(null=True)
    attempt = peewee.IntegerField(null=True)
    generation = peewee.IntegerField(default=0)


class Series(BaseModel):
    """What a stored reading belongs to: (endpoint, name, device); `aux` names a companion value's series.

    The raw rows (`reading_raw`) and rollups (`rollup_1m`, `rollup_1h`) are read with SQL
    in `storage.readings`: they have composite keys and no model.
    """

    id = peewee.AutoField()
    endpoint = peewee.ForeignKeyField(Endpoint, on_delete="CASCADE")
    name = peewee.TextField()
    device = peewee.TextField(default="")
    aux = peewee.ForeignKeyField("self", null=True, on_delete="SET NULL")


class Alert(BaseModel):
    """An alert; active while resolved_at is NULL, at most one per (endpoint, condition, subject)."""

    id = peewee.AutoField()
    endpoint = peewee.ForeignKeyField(Endpoint, on_delete="CASCADE")
    condition = peewee.TextField()
    subject = peewee.TextField(default="")
    severity = peewee.TextField()
    message = peewee.TextField(default="")
    triggered_at = peewee.DoubleField()
    resolved_at = peewee.DoubleField(null=True)


class Topic(BaseModel):
    """A topic seen on an endpoint, and whether its messages are processed."""

    id = peewee.AutoField()
    endpoint = peewee.ForeignKeyField(Endpoint, on_delete="CASCADE")
    topic = peewee.TextField()
    first_seen = peewee.DoubleField()
    last_seen = peewee.DoubleField()
    count = peewee.BigIntegerField(default=0)
    is_processable = peewee.BooleanField()
    is_active = peewee.BooleanField(default=True)


class ParseError(BaseModel):
    """A payload a parser rejected, with a sample of at most 5,000 characters."""

    id = peewee.BigAutoField()
    endpoint = peewee.ForeignKeyField(Endpoint, on_delete="CASCADE")
    time = peewee.DoubleField()
    topic = peewee.TextField(null=True)
    parser = peewee.TextField()
    error = peewee.TextField()
    sample = peewee.TextField(default="")


class Device(BaseModel):
    """A device (a `+device` topic segment) with its last message time."""

    id = peewee.AutoField()
    endpoint = peewee.ForeignKeyField(Endpoint, on_delete="CASCADE")
    name = peewee.TextField()
    first_seen = peewee.DoubleField()
    last_seen = peewee.DoubleField()
    online = peewee.BooleanField()


ALL_MODELS: tuple[type[BaseModel], ...] = (Site, Endpoint, Event, Series, Alert, Topic, ParseError, Device)
