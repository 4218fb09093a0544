"""Train the bundled YOLO-style shapes detector on drawn scenes, export ONNX + manifest + samples.

    .venv/bin/python packaging/models/make_detector.py

Scenes come from `shapes.py` (re-exported here: `make_scene`, `draw_scene`, `moving_scenes`).
The network predicts one box per cell of a 12×12 grid (stride 8 on a 96×96 RGB input); decoding
happens inside the graph as in a YOLOv5 export, so the single output [N, 144, 8] holds
(cx, cy, w, h) in input pixels, objectness and three class scores, all sigmoid-ed.
The exported model is scored (mAP@0.5, precision, recall) on held-out scenes with the agent's own
decoder. Deterministic: the same seed gives the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from _common import export, fuse_batchnorm, seed_everything, update_figures, write_fp32_manifest
from shapes import CLASSES, SIZE, Shape, draw_scene, make_scene, moving_scenes, random_shapes, to_json
from torch import nn
from torch.nn import functional

from agent.models.postprocess import decode_yolo
from agent.wire import Detection, DetectionSpec
from app.fleet.quantreport import latency_ms
from resources import images_dir, models_dir

__all__ = ["Yolo", "draw_scene", "evaluate", "make_scene", "moving_scenes", "random_shapes", "scenes"]

SEED = 96
NAME = "shapes-yolo"
STRIDE = 8
GRID = SIZE // STRIDE
ANCHOR = 24.0  # w = (2·sigmoid(t))² · ANCHOR spans 0-96 px, YOLOv5's parametrisation
OUTPUTS = 5 + len(CLASSES)
TRAIN_SCENES = 3200  # drawn afresh every epoch: the network never sees a scene twice
EVAL_SCENES = 500
EPOCHS = 24
BATCH = 32
SPEC = DetectionSpec(score_threshold=0.25, iou_threshold=0.45, max_detections=100)


def _block(inputs: int, outputs: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU()]


class Yolo(nn.Module):
    """A small conv backbone, a 1×1 head and the YOLOv5 box decoding."""

    def __init__(self, layers: nn.Sequential | None = None) -> None:
        super().__init__()
        self.layers = layers or nn.Sequential(
            *_block(3, 16, 2),
            *_block(16, 32, 2),
            *_block(32, 32),
            *_block(32, 64, 2),
            *_block(64, 64),
            *_block(64, 64),
            *_block(64, 64),
            nn.Conv2d(64, OUTPUTS, 1),
        )
        ys, xs = torch.meshgrid(torch.arange(GRID), torch.arange(GRID), indexing="ij")
        self.grid: torch.Tensor
        self.register_buffer("grid", torch.stack([xs, ys], -1).reshape(1, GRID * GRID, 2).float())

    def raw(self, images: torch.Tensor) -> torch.Tensor:
        """Undecoded predictions [N, cells, 5 + classes]."""
        features: torch.Tensor = self.layers(images)
        return features.flatten(2).transpose(1, 2)

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        scores = raw.sigmoid()
        centre = (scores[..., 0:2] * 2 - 0.5 + self.grid) * STRIDE
        size = (scores[..., 2:4] * 2) ** 2 * ANCHOR
        return torch.cat([centre, size, scores[..., 4:]], dim=-1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.raw(images))


def scenes(rng: np.random.Generator, count: int) -> tuple[torch.Tensor, list[list[Shape]]]:
    """`count` drawn scenes as a float batch (0-1, NCHW) and their shapes."""
    pictures, truth = [], []
    for _ in range(count):
        image, shapes = make_scene(rng)
        pictures.append(np.asarray(image))
        truth.append(shapes)
    batch = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255
    return batch, truth


def targets(truth: list[list[Shape]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image index, cell and target row (cx, cy, w, h, class) per positive, YOLOv5-style.

    Each object is given to the cell holding its centre and to the two neighbours its centre
    leans towards, which the (2·sigmoid − 0.5) offset can still reach.
    """
    images, cells, rows = [], [], []
    for index, shapes in enumerate(truth):
        for shape in shapes:
            x1, y1, x2, y2 = shape.box
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            gx, gy = cx / STRIDE, cy / STRIDE
            col, row = int(gx), int(gy)
            neighbours = [
                (col, row),
                (col - 1 if gx % 1 < 0.5 else col + 1, row),
                (col, row - 1 if gy % 1 < 0.5 else row + 1),
            ]
            for c, r in neighbours:
                if 0 <= c < GRID and 0 <= r < GRID:
                    images.append(index)
                    cells.append(r * GRID + c)
                    rows.append([cx, cy, x2 - x1, y2 - y1, shape.label])
    return torch.tensor(images), torch.tensor(cells), torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of (cx, cy, w, h) boxes, row by row."""
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    overlap = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(dim=1)
    union = a[:, 2:].prod(dim=1) + b[:, 2:].prod(dim=1) - overlap
    hull = (torch.max(a2, b2) - torch.min(a1, b1)).prod(dim=1)
    iou = overlap / union.clamp(min=1e-6)
    return iou - (hull - union) / hull.clamp(min=1e-6)


def loss(model: Yolo, images: torch.Tensor, truth: list[list[Shape]]) -> torch.Tensor:
    raw = model.raw(images)
    decoded = model.decode(raw)
    image, cell, row = targets(truth)
    objectness = torch.zeros(raw.shape[:2])
    if not len(image):
        return functional.binary_cross_entropy_with_logits(raw[..., 4], objectness)
    boxes = decoded[image, cell, :4]
    overlap = giou(boxes, row[:, :4])
    # objectness learns the IoU it achieved, so scores rank well-placed boxes first
    objectness[image, cell] = overlap.detach().clamp(min=0)
    classes = functional.one_hot(row[:, 4].long(), len(CLASSES)).float()
    return (
        (1 - overlap).mean()
        + 4 * functional.binary_cross_entropy_with_logits(raw[..., 4], objectness)
        + functional.binary_cross_entropy_with_logits(raw[image, cell, 5:], classes)
    )


def train(seed: int, epochs: int = EPOCHS) -> Yolo:
    model = Yolo()
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    steps_per_epoch = TRAIN_SCENES // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=3e-3, total_steps=epochs * steps_per_epoch
    )
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for _ in range(steps_per_epoch):
            images, truth = scenes(rng, BATCH)
            value = loss(model, images, truth)
            optimiser.zero_grad()
            value.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total += value.item()
        print(f"epoch {epoch + 1:2d}/{epochs}: loss {total / steps_per_epoch:.4f}", flush=True)
    return model.eval()


def evaluate(model: Path, seed: int, count: int = EVAL_SCENES) -> dict[str, float]:
    """mAP@0.5 (all-point interpolated, mean over classes) and precision/recall at SPEC's threshold."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    images, truth = scenes(np.random.default_rng(seed), count)
    low = SPEC.model_copy(update={"score_threshold": 0.001})
    found = [
        decode_yolo(
            session.run(None, {"input": image[None].numpy()})[0], low, CLASSES, (1.0, 1.0), (SIZE, SIZE)
        )
        for image in images
    ]
    per_class = [_average_precision(found, truth, c) for c in range(len(CLASSES))]
    kept = [[d for d in ds if d.score >= SPEC.score_threshold] for ds in found]
    hits = sum(int(_matches(ds, shapes).sum()) for ds, shapes in zip(kept, truth, strict=True))
    predicted, actual = sum(map(len, kept)), sum(map(len, truth))
    return {
        "map50": float(np.mean(per_class)),
        "precision": hits / max(predicted, 1),
        "recall": hits / max(actual, 1),
        "eval_images": float(count),
        **{f"ap50_{name}": ap for name, ap in zip(CLASSES, per_class, strict=True)},
    }


def _iou(box: tuple[float, float, float, float], other: tuple[float, float, float, float]) -> float:
    width = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
    height = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
    overlap = width * height
    union = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - overlap
    return overlap / union if union > 0 else 0.0


def _matches(detections: list[Detection], shapes: list[Shape]) -> np.ndarray:
    """True for each detection (best first) that claims a same-class object at IoU ≥ 0.5 first."""
    free = list(shapes)
    hits = np.zeros(len(detections), dtype=bool)
    for i, found in enumerate(sorted(detections, key=lambda d: -d.score)):
        scored = [(_iou(found.box, s.box), s) for s in free if s.label == found.index]
        best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
        if best[1] is not None and best[0] >= 0.5:
            hits[i] = True
            free.remove(best[1])
    return hits


def _average_precision(found: list[list[Detection]], truth: list[list[Shape]], label: int) -> float:
    scored: list[tuple[float, bool]] = []
    for detections, shapes in zip(found, truth, strict=True):
        mine = sorted((d for d in detections if d.index == label), key=lambda d: -d.score)
        hits = _matches(mine, shapes)
        scored += [(d.score, bool(h)) for d, h in zip(mine, hits, strict=True)]
    positives = sum(s.label == label for shapes in truth for s in shapes)
    if not positives:
        return 0.0
    order = sorted(scored, key=lambda pair: -pair[0])
    hit = np.cumsum([h for _, h in order])
    recall = np.concatenate([[0.0], hit / positives])
    precision = np.concatenate([[1.0], hit / np.arange(1, len(order) + 1)])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))


def write_samples(folder: Path, seed: int) -> None:
    """shapes-1…4.png (the last one larger than the input, to exercise resizing) and shapes.json."""
    rng = np.random.default_rng(seed)
    truth: dict[str, list[dict[str, object]]] = {}
    for number, (size, count) in enumerate([(SIZE, 1), (SIZE, 2), (SIZE, 3), (2 * SIZE, 3)], start=1):
        shapes = random_shapes(rng, size, count)
        name = f"shapes-{number}.png"
        draw_scene(shapes, rng, size).save(folder / name, optimize=True)
        truth[name] = to_json(shapes)
    (folder / "shapes.json").write_text(json.dumps(truth, indent=2) + "\n")


def manifest_fields(figures: dict[str, float]) -> dict[str, object]:
    return {
        "name": NAME,
        "version": "1.0",
        "task": "detection",
        "input": {
            "name": "input",
            "layout": "NCHW",
            "height": SIZE,
            "width": SIZE,
            "channels": 3,
            "dtype": "float32",
        },
        "normalisation": {"scale": 1 / 255, "mean": [0.0], "std": [1.0]},
        "labels": list(CLASSES),
        "detection": SPEC.model_dump(),
        "figures": figures,
        "source_model": f"packaging/models/make_detector.py: YOLO-style grid {GRID}x{GRID}, stride "
        f"{STRIDE}, trained on drawn scenes (seed {SEED})",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=None, help="write the model here instead of resources/")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="fewer for a quick trial")
    args = parser.parse_args()
    seed_everything(SEED)
    model = Yolo(fuse_batchnorm(train(SEED, args.epochs).layers)).eval()
    path = (args.out or models_dir()) / f"{NAME}-fp32.onnx"
    export(model, torch.zeros(2, 3, SIZE, SIZE), path, "input", "detections")
    figures = evaluate(path, SEED + 1)
    manifest = write_fp32_manifest(path, manifest_fields(figures))
    p50, p95 = latency_ms(path, runs=1000)
    update_figures(path, manifest, {**figures, "latency_ms_p50": p50, "latency_ms_p95": p95})
    print(json.dumps({**figures, "latency_ms_p50": p50, "latency_ms_p95": p95}, indent=2))
    if args.out is None:
        write_samples(images_dir(), SEED + 2)


if __name__ == "__main__":
    main()
