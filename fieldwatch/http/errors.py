"""Domain errors mapped to HTTP once, and every error body as JSON `{"title", "description"}`."""

from __future__ import annotations

import json
import logging
from typing import Any

import falcon

from fieldwatch.errors import ConfigError, ConflictError, NotFoundError, StorageError

__all__ = ["InvalidInput", "install_error_handlers"]

logger = logging.getLogger(__name__)


class InvalidInput(falcon.HTTPBadRequest):
    """A 400 that also lists every problem found (`errors` in the body)."""

    def __init__(self, title: str, errors: list[str]) -> None:
        super().__init__(title=title, description="\n".join(errors))
        self.errors = list(errors)


def _not_found(req: falcon.Request, resp: falcon.Response, ex: NotFoundError, params: dict[str, Any]) -> None:
    raise falcon.HTTPNotFound(title="Not found", description=str(ex) or "no such site, endpoint or topic") from ex


def _conflict(req: falcon.Request, resp: falcon.Response, ex: ConflictError, params: dict[str, Any]) -> None:
    raise falcon.HTTPConflict(title="Conflict", description=str(ex)) from ex


def _config(req: falcon.Request, resp: falcon.Response, ex: ConfigError, params: dict[str, Any]) -> None:
    messages = list(ex.errors) or [str(ex)]
    raise InvalidInput("Invalid configuration", messages) from ex


def _storage(req: falcon.Request, resp: falcon.Response, ex: StorageError, params: dict[str, Any]) -> None:
    raise falcon.HTTPServiceUnavailable(title="Storage unavailable", description=str(ex), retry_after=5) from ex


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict[str, Any]) -> None:
    # The boundary of every request: a bug must not leak internals; the traceback goes to the log.
    logger.error("unhandled error in %s %s", req.method, req.path, exc_info=ex)
    raise falcon.HTTPInternalServerError(
        title="Internal server error", description="an unexpected error occurred; see the daemon log"
    ) from ex


def _serialize(req: falcon.Request, resp: falcon.Response, exception: falcon.HTTPError) -> None:
    """JSON whatever the client accepts: title, description (never absent) and extra fields."""
    body: dict[str, Any] = {"title": exception.title, "description": exception.description or exception.title}
    if exception.code is not None:
        body["code"] = exception.code
    errors = getattr(exception, "errors", None)
    if errors:
        body["errors"] = errors
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(body)


def install_error_handlers(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Register the domain-error mapping, the catch-all and the JSON error serializer."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(NotFoundError, _not_found)
    app.add_error_handler(ConflictError, _conflict)
    app.add_error_handler(ConfigError, _config)
    app.add_error_handler(StorageError, _storage)
    app.set_error_serializer(_serialize)
