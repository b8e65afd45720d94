"""The resources of the HTTP API (one small class per route family)."""

from __future__ import annotations

from fieldwatch.http.resources._common import BodyLimit
from fieldwatch.http.resources.cluster import ClusterResource
from fieldwatch.http.resources.collections import (
    AlertCollection,
    EventCollection,
    ParseErrorCollection,
    ReadingCollection,
    TopicCollection,
)
from fieldwatch.http.resources.endpoints import EndpointCommand, EndpointItem
from fieldwatch.http.resources.logs import LogResource
from fieldwatch.http.resources.sites import SiteCollection, SiteCommand, SiteItem
from fieldwatch.http.resources.system import Health, MetricsResource, OpenApiResource, Ready, TreeResource
from fieldwatch.http.resources.topics import TopicCommand

__all__ = [
    "AlertCollection",
    "BodyLimit",
    "ClusterResource",
    "EndpointCommand",
    "EndpointItem",
    "EventCollection",
    "Health",
    "LogResource",
    "MetricsResource",
    "OpenApiResource",
    "ParseErrorCollection",
    "ReadingCollection",
    "Ready",
    "SiteCollection",
    "SiteCommand",
    "SiteItem",
    "TopicCollection",
    "TopicCommand",
    "TreeResource",
]
