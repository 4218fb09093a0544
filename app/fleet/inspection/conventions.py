"""What exporters mean without saying it: pixel normalisation, letterbox, the name and the version."""

from __future__ import annotations

import re

from agent.wire import NAME_PATTERN, VERSION_PATTERN, InputSpec, Normalisation
from app.fleet.inspection.facts import Facts, InspectionError
from app.fleet.inspection.outputs import Family
from app.fleet.inspection.overrides import NormaliseName

__all__ = [
    "NORMALISATIONS",
    "choose_letterbox",
    "choose_name",
    "choose_normalise",
    "choose_version",
    "valid_name",
]

_IMAGENET_MEAN, _IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
NORMALISATIONS: dict[str, Normalisation] = {
    "imagenet": Normalisation(mean=_IMAGENET_MEAN, std=_IMAGENET_STD),
    "unit": Normalisation(),  # pixels / 255
    "symmetric": Normalisation(mean=[0.5], std=[0.5]),  # -1 to 1
    "none": Normalisation(scale=1.0),  # pixels as they are, 0-255
}
_OVERRIDE = "give --normalise imagenet|unit|symmetric|none (or pick it in the Deploy window) if not"


def normalisation(name: str, channels: int) -> Normalisation:
    """The named normalisation for 1 or 3 channels (a grey picture averages ImageNet's three)."""
    chosen = NORMALISATIONS[name]
    if channels == 1 and len(chosen.mean) == 3:
        mean, std = sum(chosen.mean) / 3, sum(chosen.std) / 3
        return Normalisation(scale=chosen.scale, mean=[round(mean, 4)], std=[round(std, 4)])
    return chosen


def choose_normalise(
    facts: Facts, family: Family, spec: InputSpec, given: NormaliseName | None
) -> tuple[str, str]:
    """(imagenet | unit | symmetric | none, why)."""
    if given is not None:
        return given, "from --normalise"
    if spec.dtype in ("uint8", "int8"):
        return "none", f"the input takes 8-bit pixels as they are; {_OVERRIDE}"
    if facts.ultralytics:
        return "unit", "Ultralytics exports take pixels / 255"
    if family.task == "detection":
        return "unit", f"YOLO/SSD-style detectors usually take pixels / 255; {_OVERRIDE}"
    if family.task == "classification" and spec.layout == "NHWC":
        return (
            "unit",
            f"a channels-last classifier: Keras/TF-style exports usually take pixels / 255; {_OVERRIDE}",
        )
    if family.task == "classification":
        source = facts.producer.split(" ")[0] or "an unnamed exporter"
        return "imagenet", (
            f"a classifier from {source}: torchvision/timm/PaddleClas-style classifiers are trained "
            f"on ImageNet mean/std; {_OVERRIDE}"
        )
    return "unit", f"pixels / 255, the most common input; {_OVERRIDE}"


def choose_letterbox(facts: Facts, family: Family, given: bool | None) -> tuple[bool, str]:
    if given is not None:
        return given, "from --letterbox" if given else "from --no-letterbox"
    if facts.ultralytics and family.task == "detection":
        return True, "Ultralytics detectors are trained on letterboxed pictures (aspect kept, grey padding)"
    if family.name in ("yolo", "yolov8", "end2end"):
        return True, (
            "YOLO-family and NMS-inside exports (YOLOv5-v11, YOLOv10/YOLO26, EfficientNMS) are trained on "
            "letterboxed pictures (aspect kept, grey padding); give --no-letterbox if yours is not"
        )
    return False, "the picture is resized to the input (give --letterbox to keep its aspect ratio)"


def valid_name(stem: str) -> str:
    """A file stem as a model name: lower case, runs of other characters as '-' (mynet_v2.0 -> mynet_v2-0)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", stem.lower()).strip("-_")[:64].rstrip("-_")
    return name or "model"


def choose_name(facts: Facts, given: str | None) -> tuple[str, str]:
    if given is not None:
        if not re.match(NAME_PATTERN, given):
            raise InspectionError(
                f"--name {given!r} is not a model name: 1-64 lower-case letters, digits, - and _, "
                f"starting with a letter or digit (e.g. {valid_name(given)})"
            )
        return given, "from --name"
    name = valid_name(facts.path.stem)
    made = "" if name == facts.path.stem else f" (made valid from {facts.path.stem!r})"
    return name, f"the file's name{made}; give --name to choose another"


def choose_version(facts: Facts, sha256: str, given: str | None) -> tuple[str, str]:
    if given is not None:
        if not re.match(VERSION_PATTERN, given):
            raise InspectionError(
                f"--version {given!r} is not a version: 1-32 letters, digits, '.', '_', '+' and '-', "
                "starting with a letter or digit (e.g. 2.1)"
            )
        return given, "from --version"
    if facts.model_version > 0:
        return str(facts.model_version), "the model's model_version"
    keys = (
        ("model_version",) if facts.ultralytics else ("model_version", "version")
    )  # theirs is the exporter's
    for key in keys:
        value = _as_version(facts.metadata.get(key, ""))
        if value:
            return value, f"the exporter's metadata ({key})"
    return sha256[:12], "the start of the file's sha256 (the model states no version); give --version"


def _as_version(text: str) -> str:
    value = re.sub(r"[^0-9A-Za-z._+-]+", "-", text.strip()).strip("-._+")[:32]
    return value if value and re.match(VERSION_PATTERN, value) else ""
