"""One endpoint: read it, enable, disable or restart it (SPEC section 6)."""

from __future__ import annotations

import falcon

from fieldwatch.http import params
from fieldwatch.http.resources._common import Resource

__all__ = ["EndpointCommand", "EndpointItem"]


class EndpointItem(Resource):
    """`GET /api/v1/endpoints/{site}/{endpoint}`: state, counters, latest readings."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, site: str, endpoint: str) -> None:
        """The endpoint with its latest readings."""
        params.check_known(req, ())
        resp.media = self.deps.controller.get_endpoint(site, endpoint)


class EndpointCommand(Resource):
    """`POST /api/v1/endpoints/{site}/{endpoint}/enable|disable|restart`: 202 with the site as stored."""

    def on_post_enable(self, req: falcon.Request, resp: falcon.Response, site: str, endpoint: str) -> None:
        """Store enabled=true and start the endpoint's actor."""
        params.check_known(req, ())
        resp.status = falcon.HTTP_202
        resp.media = self.deps.controller.set_endpoint_enabled(site, endpoint, True)

    def on_post_disable(self, req: falcon.Request, resp: falcon.Response, site: str, endpoint: str) -> None:
        """Store enabled=false and stop the endpoint's actor."""
        params.check_known(req, ())
        resp.status = falcon.HTTP_202
        resp.media = self.deps.controller.set_endpoint_enabled(site, endpoint, False)

    def on_post_restart(self, req: falcon.Request, resp: falcon.Response, site: str, endpoint: str) -> None:
        """Replace the endpoint's actor with a new generation."""
        params.check_known(req, ())
        resp.status = falcon.HTTP_202
        resp.media = self.deps.controller.restart_endpoint(site, endpoint)
