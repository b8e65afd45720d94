"""Parse a site given as a JSON body (API create/replace) with the YAML validation rules."""

from __future__ import annotations

import json
from typing import Any

from fieldwatch.config.loader import parse_config_text
from fieldwatch.config.model import SiteConfig
from fieldwatch.errors import ConfigError

__all__ = ["parse_site_body"]

_PREFIX = "sites[0]."


def parse_site_body(body: Any) -> SiteConfig:
    """Validate one site mapping; ConfigError messages name the key path inside the body.

    `${NAME}` is not substituted for API bodies: the daemon's environment is not
    something a client may read back.
    """
    if not isinstance(body, dict):
        raise ConfigError(["body: expected a JSON object describing a site"])
    text = json.dumps({"sites": [body]}, indent=1)
    try:
        config = parse_config_text(text, "body", env={}, base_dir="/nonexistent/fieldwatch-api")
    except ConfigError as err:
        messages = []
        for message in err.errors:
            # "body:3: sites[0].endpoints[0].url: ..." -> "endpoints[0].url: ..."
            _, _, rest = message.partition(": ")
            rest = rest.replace(_PREFIX, "", 1) if rest.startswith(_PREFIX) else rest
            messages.append(rest or message)
        raise ConfigError(messages) from err
    if len(config.sites) != 1:
        raise ConfigError(["body: expected exactly one site"])
    return config.sites[0]
