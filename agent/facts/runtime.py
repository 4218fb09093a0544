"""Inference runtime facts: the ONNX Runtime version and its execution providers.

Importing onnxruntime costs tens of MB of resident memory, more than the agent's whole idle
budget, so the probe runs in a short-lived child interpreter and its answer is kept for the
life of the process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from importlib import metadata

from agent.wire import RuntimeFacts, favoured_precisions

from . import cpu
from ._common import unavailable

PROBE_TIMEOUT_S = 20.0
# ONNX Runtime ships under several distribution names, one per hardware build.
_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-directml",
    "onnxruntime-rocm",
)
_PROBE = (
    "import json, onnxruntime as ort; "
    "print(json.dumps({'version': ort.__version__, 'providers': ort.get_available_providers()}))"
)

_lock = threading.Lock()
_cached: RuntimeFacts | None = None


def collect() -> RuntimeFacts:
    """Return the runtime family, probing onnxruntime once per process."""
    global _cached
    with _lock:  # concurrent API requests must not start several probes
        if _cached is None:
            result, final = _probe()
            if result.available:  # the CPU does not change either: worked out once, with the probe
                result.precision_by_provider = favoured_precisions(
                    result.providers or [], cpu.int8_advice_here()
                )
            if not final:
                return result
            _cached = result
        return _cached.model_copy(deep=True)  # callers may edit their copy, never the cache


def _probe() -> tuple[RuntimeFacts, bool]:
    """Probe onnxruntime; the flag says whether the answer may be cached (not after a timeout)."""
    distribution = _installed_distribution()
    if distribution is None:
        return unavailable(RuntimeFacts, "onnxruntime is not installed"), True
    if getattr(sys, "frozen", False):  # sys.executable is the agent itself, not an interpreter
        return unavailable(RuntimeFacts, "a frozen agent build cannot probe onnxruntime"), True
    label = f"{distribution} {metadata.version(distribution)}"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return unavailable(RuntimeFacts, f"importing {label} took longer than {PROBE_TIMEOUT_S:.0f} s"), False
    except OSError as exc:
        return unavailable(RuntimeFacts, f"could not start a Python to probe {label}: {exc}"), False
    if done.returncode != 0:
        return unavailable(RuntimeFacts, f"{label} failed to import: {_last_line(done.stderr)}"), True
    return _parse_probe(_last_line(done.stdout), distribution), True


def _parse_probe(line: str, distribution: str) -> RuntimeFacts:
    """Read the probe's JSON line (the last one: a provider may print warnings first)."""
    try:
        found = json.loads(line)
        version, providers = str(found["version"]), [str(name) for name in found["providers"]]
    except (ValueError, KeyError, TypeError) as exc:
        return unavailable(RuntimeFacts, f"unexpected answer from the onnxruntime probe: {exc}")
    return RuntimeFacts(
        available=True,
        name="onnxruntime",
        distribution=distribution,
        version=version,
        providers=providers,
    )


def _installed_distribution() -> str | None:
    for name in _DISTRIBUTIONS:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        return name
    return None


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"
