"""Check a model file against its manifest before it may be installed: the child's side.

Runs in a child process a model that crashes or hangs ONNX Runtime cannot take the agent
down with: kept ready by the agent (`--ready FD`, see `verifier.py`: it imports ONNX Runtime,
then waits for `FILE<TAB>MANIFEST-JSON` on the pipe FD), or by hand
(`python -m agent.models.verify FILE -`, the manifest on stdin). It prints one JSON line,
`{"problem": null | "what is wrong", "times": {stage: seconds}, "got": monotonic time}`,
and exits 0 when the model passed, 1 when it did not.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agent.models import decode
from agent.models.verifier import READY_FLAG, VerificationFailed
from agent.toolkit import onnxfile
from agent.toolkit.errors import Refusal
from agent.toolkit.sessions import seeded_input
from agent.warm import read_line
from agent.wire import Manifest

__all__ = ["VerificationFailed", "check_in_process", "check_self_contained", "main"]

_ORT_TYPES = {
    "float32": "tensor(float)",
    "float16": "tensor(float16)",
    "uint8": "tensor(uint8)",
    "int8": "tensor(int8)",
}


def check_in_process(path: Path, manifest: Manifest, times: dict[str, float] | None = None) -> None:
    """Load with ONNX Runtime and compare signature and golden outputs. Raises VerificationFailed.
    `times` gets the seconds each stage took."""
    import onnxruntime as ort

    times = {} if times is None else times
    started = time.perf_counter()
    data = path.read_bytes()  # read once: ONNX Runtime is given exactly the bytes checked
    check_self_contained(path, data)  # before ONNX Runtime sees the bytes, never after
    times["external-data check"], started = time.perf_counter() - started, time.perf_counter()
    options = ort.SessionOptions()
    # The check asks whether ONNX Runtime loads and runs the model, not how fast it runs: without
    # pre-packing (each kernel's copy of its weights in its own layout) a 100 MB model loads in
    # 0.17 s instead of 0.3 s, and the check holds one copy of the weights, not two.
    options.add_session_config_entry("session.disable_prepacking", "1")
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise VerificationFailed(f"ONNX Runtime cannot load the file: {_first_line(exc)}") from None
    finally:
        del data
    times["ONNX Runtime load"], started = time.perf_counter() - started, time.perf_counter()
    _check_signature(session, manifest)
    _check_golden(session, manifest)
    times["signature and golden run"] = time.perf_counter() - started


def _check_golden(session: Any, manifest: Manifest) -> None:
    import numpy as np

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


def check_self_contained(path: Path, data: bytes | None = None) -> None:
    """The toolkit's check (`agent.toolkit.onnxfile`), as a VerificationFailed."""
    try:
        onnxfile.check_self_contained(path, data)
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
    if argv[0] == READY_FLAG:
        _warm_up()
        line = read_line(int(argv[1]))
        if line is None:  # let go without a model: no upload needs it any more
            return 0
        got = time.monotonic()
        name, manifest_json = line.split("\t", 1)
        path, manifest = Path(name), Manifest.model_validate_json(manifest_json)
    else:
        got = time.monotonic()
        path, manifest = Path(argv[0]), Manifest.model_validate(json.loads(sys.stdin.read()))
    times: dict[str, float] = {}
    try:
        check_in_process(path, manifest, times)
    except VerificationFailed as exc:
        print(json.dumps({"problem": str(exc), "times": times, "got": got}), flush=True)
        return 1
    print(json.dumps({"problem": None, "times": times, "got": got}), flush=True)
    return 0


def _warm_up() -> None:
    """What a check needs, imported before its model comes."""
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401

        onnxfile.preload()
    except Exception:  # the check imports it again and fails there, with its own message
        return


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # out at once: the agent waits for this exit, and tearing down ONNX Runtime and a 100 MB
    # model's memory takes a busy kit a few tenths of a second for nothing
    os._exit(code)
