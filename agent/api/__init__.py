"""The agent's HTTPS API. Only `schemas` is shared with the app (the wire contract)."""
