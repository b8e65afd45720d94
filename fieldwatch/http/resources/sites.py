"""Sites: list, read, create, replace, delete, enable and disable (SPEC section 6)."""

from __future__ import annotations

from typing import Any

import falcon

from fieldwatch.http import params
from fieldwatch.http.errors import InvalidInput
from fieldwatch.http.resources._common import Resource, check_fields, read_json_object

__all__ = ["MAX_ENDPOINTS", "SITE_FIELDS", "SiteCollection", "SiteCommand", "SiteItem"]

#: Keys of a site body (endpoint objects are validated by the config schema).
SITE_FIELDS: dict[str, type] = {"name": str, "enabled": bool, "endpoints": list}
#: Endpoints one site body may declare through the API (a YAML config is not limited)
MAX_ENDPOINTS = 1000


def _site_body(req: falcon.Request, max_bytes: int, *, path_name: str | None = None) -> dict[str, Any]:
    """A site body: POST needs `name`; PUT replaces the whole site, so it needs `name` (the path's)
    and `endpoints` (an empty list given explicitly removes them all, `{}` removes nothing)."""
    body = read_json_object(req, max_bytes)
    check_fields(body, SITE_FIELDS, required=("name",) if path_name is None else ("name", "endpoints"))
    if path_name is not None and body["name"] != path_name:
        raise InvalidInput("Invalid body", [f"field 'name' must be the path's site name ({path_name[:64]!r})"])
    endpoints = body.get("endpoints", ())
    if len(endpoints) > MAX_ENDPOINTS:  # bounded before the config schema spends ~0.5 ms on each
        raise InvalidInput("Invalid body", [f"more than {MAX_ENDPOINTS} endpoints ({len(endpoints)})"])
    problems = [f"endpoints[{i}] must be an object" for i, ep in enumerate(endpoints) if not isinstance(ep, dict)]
    if problems:
        raise InvalidInput("Invalid body", problems)
    return body


class SiteCollection(Resource):
    """`GET /api/v1/sites` (every site with its endpoints), `POST` creates one at runtime."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Every site, with its endpoints and their states."""
        params.check_known(req, ())
        resp.content_type = falcon.MEDIA_JSON
        resp.text = self.deps.controller.sites_json()  # = page(list_sites()), from cached view texts

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Create a site (201); no other site's connections are touched."""
        params.check_known(req, ())
        site = self.deps.controller.create_site(_site_body(req, self.deps.max_body_bytes))
        resp.status = falcon.HTTP_201
        resp.location = f"/api/v1/sites/{site.get('name', '')}"
        resp.media = site


class SiteItem(Resource):
    """`GET`, `PUT`, `DELETE /api/v1/sites/{site}`."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, site: str) -> None:
        """One site."""
        params.check_known(req, ())
        resp.media = self.deps.controller.get_site(site)

    def on_put(self, req: falcon.Request, resp: falcon.Response, site: str) -> None:
        """Replace the site's config; only its own actors are restarted."""
        params.check_known(req, ())
        body = _site_body(req, self.deps.max_body_bytes, path_name=site)
        resp.media = self.deps.controller.replace_site(site, body)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, site: str) -> None:
        """Stop the site's actors, then delete it (204)."""
        params.check_known(req, ())
        self.deps.controller.delete_site(site)
        resp.status = falcon.HTTP_204


class SiteCommand(Resource):
    """`POST /api/v1/sites/{site}/enable` and `/disable`: 202 with the site as stored."""

    def on_post_enable(self, req: falcon.Request, resp: falcon.Response, site: str) -> None:
        """Store enabled=true and start the site's actors."""
        params.check_known(req, ())
        resp.status = falcon.HTTP_202
        resp.media = self.deps.controller.set_site_enabled(site, True)

    def on_post_disable(self, req: falcon.Request, resp: falcon.Response, site: str) -> None:
        """Store enabled=false and stop the site's actors."""
        params.check_known(req, ())
        resp.status = falcon.HTTP_202
        resp.media = self.deps.controller.set_site_enabled(site, False)
