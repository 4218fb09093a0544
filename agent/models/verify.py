"""Check a model file against its manifest before it may be installed.

Runs in a child process (`python -m agent.models.verify FILE MANIFEST`): a model
that crashes or hangs ONNX Runtime must not take the agent down with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.models import decode
from agent.toolkit import onnxfile
from agent.toolkit.errors import Refusal
from agent.toolkit.hashing import sha256_file
from agent.toolkit.sessions import seeded_input
from agent.wire import Manifest

_ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "uint8": "tensor(uint8)",
    "int8": "tensor(int8)",
}


class VerificationFailed(Exception):
    """The model does not match its manifest; str() says how."""


def verify(path: Path, manifest: Manifest, timeout: float = 300.0) -> None:
    """Size, sha256, then ONNX Runtime load, signature and golden check in a child process."""
    size = path.stat().st_size
    if size != manifest.size_bytes:
        raise VerificationFailed(f"the file has {size} bytes, the manifest says {manifest.size_bytes}")
    digest = sha256_file(path)
    if digest != manifest.sha256:
        raise VerificationFailed(
            f"sha256 mismatch: the file is {digest}, the manifest says "
            f"{manifest.sha256}; the upload was damaged or the manifest is wrong"
        )
    program = [sys.executable, "-m", "agent.models.verify", str(path), "-"]
    try:
        done = subprocess.run(
            program,
            input=manifest.model_dump_json(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise VerificationFailed(f"ONNX Runtime did not load the model within {timeout:g} s") from None
    if done.returncode != 0:
        problem = done.stdout.strip() or f"the checker died ({done.returncode}): {done.stderr[-300:]}"
        raise VerificationFailed(problem)


def check_in_process(path: Path, manifest: Manifest) -> None:
    """Load with ONNX Runtime and compare signature and golden outputs. Raises VerificationFailed."""
    import numpy as np
    import onnxruntime as ort

    check_self_contained(path)  # before ONNX Runtime opens the file, never after
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VerificationFailed(f"ONNX Runtime cannot load the file: {_first_line(exc)}") from None
    _check_signature(session, manifest)
    if manifest.golden is not None:
        model_input = session.get_inputs()[0]
        data = seeded_input(model_input, manifest.input.dtype, manifest.golden.seed)
        outputs = session.run(None, {model_input.name: data})
        names = [o.name for o in session.get_outputs()]
        for name, expected in manifest.golden.outputs.items():
            if name not in names:
                raise VerificationFailed(f"golden output {name!r} is not an output of the model")
            got = np.asarray(outputs[names.index(name)]).ravel()[: len(expected)].astype(float)
            if got.shape[0] != len(expected) or not np.allclose(got, expected, atol=manifest.golden.atol):
                raise VerificationFailed(
                    f"golden check failed on {name!r}: expected {expected[:4]}…, got "
                    f"{got[:4].tolist()}… (atol {manifest.golden.atol})"
                )


def check_self_contained(path: Path) -> None:
    """The toolkit's check (`agent.toolkit.onnxfile`), as a VerificationFailed."""
    try:
        onnxfile.check_self_contained(path)
    except Refusal as exc:
        raise VerificationFailed(exc.message) from None


def _check_signature(session: Any, manifest: Manifest) -> None:
    spec = manifest.input
    inputs = {i.name: i for i in session.get_inputs()}
    if len(inputs) != 1:
        raise VerificationFailed(
            f"the model has {len(inputs)} inputs ({sorted(inputs)}); kitfleet "
            "serves models with exactly one input"
        )
    if spec.name not in inputs:
        raise VerificationFailed(f"the manifest names input {spec.name!r}; the model has {sorted(inputs)}")
    model_input = inputs[spec.name]
    if model_input.type != _ORT_TYPES[spec.dtype]:
        raise VerificationFailed(f"input {spec.name!r} is {model_input.type}, the manifest says {spec.dtype}")
    shape = list(model_input.shape)
    expected = (
        [spec.channels, spec.height, spec.width]
        if spec.layout == "NCHW"
        else [spec.height, spec.width, spec.channels]
    )
    mismatched = len(shape) != 4 or any(
        isinstance(got, int) and got != want for got, want in zip(shape[1:], expected, strict=True)
    )
    if mismatched:
        raise VerificationFailed(
            f"input {spec.name!r} has shape {shape}, the manifest says "
            f"[N, {', '.join(map(str, expected))}] ({spec.layout})"
        )
    _check_outputs(session, manifest)


def _check_outputs(session: Any, manifest: Manifest) -> None:
    """The outputs agree with the manifest's task and family: the shapes the file declares, then,
    when some are free (dynamic axes), the shapes one run at the manifest's input size gives."""
    if manifest.task == "raw":
        return
    declared = {o.name: list(o.shape) for o in session.get_outputs()}
    ranked = all(declared.values())  # ONNX Runtime gives [] for an output of unknown rank
    if ranked:
        _agree(manifest, declared)
    if ranked and all(isinstance(d, int) for shape in declared.values() for d in shape[1:]):
        return  # a free batch dimension alone tells the check nothing more when it is known
    model_input = session.get_inputs()[0]
    spec = manifest.input
    sizes = {1: spec.channels, 2: spec.height, 3: spec.width}
    if spec.layout == "NHWC":
        sizes = {1: spec.height, 2: spec.width, 3: spec.channels}
    data = seeded_input(model_input, spec.dtype, 0, sizes)
    try:
        values = session.run(None, {model_input.name: data})
    except Exception as exc:  # ONNX Runtime raises its own types; the model's fault, not ours
        raise VerificationFailed(
            f"the model fails on an input of the manifest's size {list(data.shape)}: {_first_line(exc)}"
        ) from None
    _agree(manifest, {name: list(value.shape) for name, value in zip(declared, values, strict=True)})


def _agree(manifest: Manifest, shapes: dict[str, list[Any]]) -> None:
    try:
        decode.check_outputs(manifest, shapes)
    except Refusal as exc:
        raise VerificationFailed(f"{exc.message}; {exc.hint}" if exc.hint else exc.message) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    manifest = Manifest.model_validate(json.loads(sys.stdin.read()))
    try:
        check_in_process(path, manifest)
    except VerificationFailed as exc:
        print(exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
