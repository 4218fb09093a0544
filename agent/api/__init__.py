"""The agent's HTTPS API. The app shares none of it: only the wire contract (`agent/wire`).

FastAPI (0.128 on) imports all of `pydantic.v1` as its first route is declared, only to check
that no route uses a Pydantic 1 model, which it no longer supports (fastapi/fastapi#16374). The
agent declares none, and the package is 1.6 MB of every kit's idle memory. Once FastAPI itself
is imported without it, it is made unimportable here, before any route: FastAPI's check then
answers "not a Pydantic 1 model", as it does where `pydantic.v1` is missing. An older FastAPI
that uses `pydantic.v1` imports it with itself and keeps it.
"""

import sys

import fastapi  # noqa: F401  (first, so that a FastAPI which needs pydantic.v1 has it)

if "pydantic.v1" not in sys.modules:
    sys.modules["pydantic.v1"] = None  # type: ignore[assignment]
