"""An idle kit's agent holds in memory only what an idle kit needs: the libraries for running,
checking and converting models, decoding pictures and video, and schedules load on first use;
FastAPI's check for Pydantic 1 models never loads `pydantic.v1`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ON_FIRST_USE = ("numpy", "PIL", "onnx", "onnxruntime", "av", "croniter", "cv2")
NEVER = ("pydantic.v1",)  # FastAPI's check for Pydantic 1 models (agent/api/__init__.py)

_BUILD = """
import sys
from pathlib import Path
from agent.api.app import create_app
from agent.api.state import AgentState
from agent.config import Settings
from agent.identity import load_or_create_lean
from agent.server import _lifespan

data = Path(sys.argv[1])
state = AgentState.open(Settings.resolve(data, {"name": "idle"}), load_or_create_lean(data))
create_app(state, _lifespan(state))
state.db.close()
print([m for m in sys.argv[2:] if sys.modules.get(m) is not None])
"""


def test_the_agent_as_started_loads_none_of_the_model_libraries(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, str(tmp_path), *ON_FIRST_USE, *NEVER],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert ast.literal_eval(done.stdout.strip().splitlines()[-1]) == []
