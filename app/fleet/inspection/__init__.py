"""Any ONNX file as a model package: its manifest inferred from the file (inputs, exporter
metadata, output layout), each field with the reason, each overridable."""

from app.fleet.inspection.building import Inspection, inspect_model
from app.fleet.inspection.facts import InspectionError
from app.fleet.inspection.overrides import NORMALISE_CHOICES, NormaliseName, Overrides, parse_size
from app.fleet.inspection.saving import write_manifest

__all__ = [
    "NORMALISE_CHOICES",
    "Inspection",
    "InspectionError",
    "NormaliseName",
    "Overrides",
    "inspect_model",
    "parse_size",
    "write_manifest",
]
