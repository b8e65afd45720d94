"""`POST /api/v1/topics/enable|disable`: switch processing of one discovered topic."""

from __future__ import annotations

import falcon

from fieldwatch.http import params
from fieldwatch.http.resources._common import Resource, check_fields, read_json_object

__all__ = ["TOPIC_FIELDS", "TopicCommand"]

TOPIC_FIELDS: dict[str, type] = {"site": str, "endpoint": str, "topic": str}


class TopicCommand(Resource):
    """Body `{"site", "endpoint", "topic"}`; stored and applied at once; 200 with the topic row."""

    def _set(self, req: falcon.Request, resp: falcon.Response, active: bool) -> None:
        params.check_known(req, ())
        body = read_json_object(req, self.deps.max_body_bytes)
        check_fields(body, TOPIC_FIELDS, required=tuple(TOPIC_FIELDS))
        resp.media = self.deps.controller.set_topic_active(body["site"], body["endpoint"], body["topic"], active)

    def on_post_enable(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Process the topic's messages again."""
        self._set(req, resp, True)

    def on_post_disable(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Stop processing the topic's messages (they are still counted as ignored)."""
        self._set(req, resp, False)
