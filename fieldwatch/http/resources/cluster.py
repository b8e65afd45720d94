"""`GET /api/v1/cluster`: the instances sharing the database and each site's owner (SPEC 6, 10)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import falcon

from fieldwatch.cluster.view import ClusterSource, LocalCluster
from fieldwatch.http import params
from fieldwatch.http.resources._common import Resource

if TYPE_CHECKING:
    from fieldwatch.http.app import AppDeps

__all__ = ["ClusterResource"]


class ClusterResource(Resource):
    """Instances (name, started_at, last_seen, live, sites owned) and sites (owner, epoch)."""

    def __init__(self, deps: AppDeps) -> None:
        super().__init__(deps)
        controller = deps.controller
        # No cluster view injected (tests, embedders): this host alone runs every site.
        self.source: ClusterSource = deps.cluster or LocalCluster(
            socket.gethostname(), lambda: [site["name"] for site in controller.list_sites()])

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The cluster as this instance sees it now."""
        params.check_known(req, ())
        resp.media = self.source.snapshot()
