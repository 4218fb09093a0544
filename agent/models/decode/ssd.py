"""SSD-style detectors (TF Object Detection API, torchvision): the split form of `end2end`
(boxes, scores, classes, count), read with the manifest's box order, normalisation and
class offset."""

from __future__ import annotations

from agent.models.decode.end2end import check_split as check
from agent.models.decode.end2end import decode_split as decode

__all__ = ["check", "decode"]
