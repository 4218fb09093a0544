"""An agent's GET /v1/health for readiness checks: straight to it, never through a proxy.

`urllib.request.urlopen` sends a request through whatever proxy the environment names
(HTTPS_PROXY, ALL_PROXY), even to 127.0.0.1 or a kit on the local network: a laptop set up
for an office proxy, or a kit whose service environment names one for its package updates,
then waited for a health answer that could never come (an upgrade's trial rolled back). The
certificate is not checked here: readiness only, and callers compare the device ID answered.
"""

from __future__ import annotations

import json
import ssl
import urllib.request
from typing import Any

__all__ = ["read_health"]


def read_health(host: str, port: int, timeout: float = 3.0) -> dict[str, Any]:
    """The health answer as a mapping; OSError when the agent cannot be reached, ValueError when
    its answer is not a JSON object."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    url = f"https://{host if ':' not in host else f'[{host}]'}:{port}/v1/health"
    with opener.open(url, timeout=timeout) as answer:
        data = json.load(answer)
    if not isinstance(data, dict):
        raise ValueError("the health answer is not an object")
    return data
