"""The HTTP API: a Falcon app built from injected collaborators, served by waitress."""

from __future__ import annotations

from fieldwatch.http.app import AppDeps, ControllerLike, create_app
from fieldwatch.http.metrics import FieldwatchCollector
from fieldwatch.http.readside import Queries, StorageQueries
from fieldwatch.http.server import HttpServer, serve

__all__ = [
    "AppDeps",
    "ControllerLike",
    "FieldwatchCollector",
    "HttpServer",
    "Queries",
    "StorageQueries",
    "create_app",
    "serve",
]
