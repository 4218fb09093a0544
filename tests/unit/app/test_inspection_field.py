"""The torch-exported field models (tests/data/field_models/): what the inspection infers from each
file alone matches the manifest a technician would write by hand for it (tests/field_models.py)."""

from __future__ import annotations

import pytest

from app.fleet.inspection import Overrides, inspect_model
from tests.field_models import FAMILIES, FIELD, field_manifest

# what the files cannot say: the TF SSD's threshold is its pipeline's choice
_GIVEN = {"ssd-tf": Overrides(score_threshold=0.5)}


@pytest.mark.parametrize("family", FAMILIES)
def test_each_field_export_is_inferred_as_its_hand_written_manifest(family: str) -> None:
    model = FIELD / f"{family}.onnx"
    found = inspect_model(model, _GIVEN.get(family))
    inferred, written = found.manifest, field_manifest(family)
    assert inferred.task == written.task, found.why["task"]
    assert inferred.input.model_dump() == written.input.model_dump(), found.why
    if written.input.dtype != "uint8":  # a kit feeds 8-bit pixels as they are, whatever is written
        assert inferred.normalisation == written.normalisation, found.why["normalisation"]
    if written.task == "classification":
        assert inferred.scores == written.scores, found.why["scores"]
    else:
        assert inferred.detection is not None
        assert written.detection is not None
        assert inferred.detection.model_dump() == written.detection.model_dump(), found.why["family"]
    if inferred.labels:  # Ultralytics metadata names its classes; other exports leave them out
        assert inferred.labels == written.labels
    assert found.warnings == ()
