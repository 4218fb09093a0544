"""The choices the parser offers, written out so that building it imports nothing heavy.

Their sources are the wire contract (pydantic models), the quantizer (ONNX Runtime) and the
model inspector (numpy); `kitfleet --help` must not pay for those. Each tuple here is checked
against its source by `tests/unit/app/test_cli_start.py`, so they cannot drift apart.
"""

from __future__ import annotations

__all__ = ["JOB_KINDS", "NORMALISE", "QUANTIZE_METHODS", "QUANTIZE_MODES", "SCOPES", "TASKS"]

SCOPES = ("viewer", "operator", "admin")  # agent.wire.SCOPES
TASKS = ("classification", "detection", "raw")  # agent.wire.Task
NORMALISE = ("imagenet", "unit", "symmetric", "none")  # app.fleet.inspection.NORMALISE_CHOICES
# jobspec.KINDS
JOB_KINDS = ("batch-infer", "benchmark", "evaluate", "quantize", "command", "stream", "fine-tune")
QUANTIZE_MODES = ("static", "dynamic", "fp16")  # app.fleet.quantize.MODES
QUANTIZE_METHODS = ("minmax", "entropy", "percentile")  # agent.toolkit.quantize.METHODS
