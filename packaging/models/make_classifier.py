"""Train the bundled digits classifier, export FP32 + INT8 ONNX, write manifests and evaluation images.

    .venv/bin/python packaging/models/make_classifier.py
    .venv/bin/python packaging/models/make_classifier.py --requantize   # INT8 only, no torch needed

scikit-learn's bundled digits (1797 8×8 grayscale images), upscaled to 32×32, feed a small CNN
(~95 MFLOPs per image: enough convolution work for INT8 to pay off on a CPU). 400 stratified images
are held out and written as PNGs; the INT8 model is made with `app.fleet.quantize` (7-bit weights,
see README.md), calibrated on training images. Deterministic: the same seed gives the same files.
`--requantize` keeps the FP32 model and evaluation images there are and re-makes only the INT8 model
(and both manifests' figures) from the same calibration images; torch is imported only to train.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from _common import GOLDEN_SEED, export, fuse_batchnorm, seed_everything, update_figures, write_fp32_manifest
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from agent.wire import Manifest
from app.fleet.models import load_package
from app.fleet.quantize import QuantizeResult, quantize_model
from app.fleet.quantreport import Report
from resources import datasets_dir, images_dir, models_dir

if TYPE_CHECKING:
    import torch
    from torch import nn

SEED = 1797
SIZE = 32
EVAL_IMAGES = 400
CALIBRATION_IMAGES = 256
EPOCHS = 16
NAME = "digits-cnn"
MEAN, STD = 0.5, 0.5
CHANNELS = (32, 64, 128, 128)


def digit_pixels() -> tuple[np.ndarray, np.ndarray]:
    """All digits as uint8 [N, 32, 32] pictures (0-16 ink → 0-255, bilinear upscale) and labels."""
    digits = load_digits()
    small = np.rint(digits.images * (255 / 16)).astype(np.uint8)
    big = [
        np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.BILINEAR)) for image in small
    ]
    return np.stack(big), np.asarray(digits.target, dtype=np.int64)


def network() -> nn.Sequential:
    """Four 3×3 conv blocks (BN, ReLU; max-pool after all but the first), average pool, linear."""
    from torch import nn

    layers: list[nn.Module] = []
    previous = 1
    for i, channels in enumerate(CHANNELS):
        layers += [
            nn.Conv2d(previous, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        ]
        if i:
            layers.append(nn.MaxPool2d(2))
        previous = channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(previous, 10)]
    return nn.Sequential(*layers)


def to_input(pixels: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] → normalised float [N, 1, H, W], as the manifest tells the agent to do."""
    import torch

    return (torch.from_numpy(pixels).float().unsqueeze(1) / 255 - MEAN) / STD


def shifted(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly move each picture by up to 3 pixels: handwriting is never centred the same way."""
    import torch
    from torch.nn import functional

    padded = functional.pad(batch, (3, 3, 3, 3), value=-MEAN / STD)
    dx, dy = torch.randint(0, 7, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + SIZE, dx : dx + SIZE]


def train(pixels: np.ndarray, labels: np.ndarray) -> nn.Sequential:
    import torch
    from torch.nn import functional

    model = network()
    inputs, targets = to_input(pixels), torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(SEED)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = EPOCHS * ((len(inputs) + 63) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        total = 0.0
        for start in range(0, len(inputs), 64):
            chosen = order[start : start + 64]
            loss = functional.cross_entropy(model(shifted(inputs[chosen], generator)), targets[chosen])
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total += loss.item() * len(chosen)
        print(f"epoch {epoch + 1:2d}/{EPOCHS}: loss {total / len(inputs):.4f}")
    return model.eval()


def accuracy(model: nn.Module, pixels: np.ndarray, labels: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        predicted = model(to_input(pixels)).argmax(dim=1).numpy()
    return float(np.mean(predicted == labels))


def write_pngs(pixels: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """`<folder>/<label>/<n>.png`: the folder-per-label layout `kitfleet quantize` reads labels from."""
    shutil.rmtree(folder, ignore_errors=True)
    for n, (image, label) in enumerate(zip(pixels, labels, strict=True)):
        target = folder / str(label) / f"{n}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target, optimize=True)


def write_eval_set(pixels: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """The held-out pictures as `<label>/<n>.png` plus `labels.txt`, the class names in score order."""
    write_pngs(pixels, labels, folder)
    (folder / "labels.txt").write_text("".join(f"{digit}\n" for digit in range(10)))


def write_samples(pixels: np.ndarray, labels: np.ndarray, folder: Path) -> None:
    """One held-out picture per digit: `digit-<label>.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    for digit in range(10):
        first = int(np.flatnonzero(labels == digit)[0])
        Image.fromarray(pixels[first]).save(folder / f"digit-{digit}.png", optimize=True)


def manifest_fields() -> dict[str, object]:
    return {
        "name": NAME,
        "version": "1.0",
        "task": "classification",
        "input": {
            "name": "input",
            "layout": "NCHW",
            "height": SIZE,
            "width": SIZE,
            "channels": 1,
            "dtype": "float32",
        },
        "normalisation": {"scale": 1 / 255, "mean": [MEAN], "std": [STD]},
        "labels": [str(d) for d in range(10)],
        "source_model": f"packaging/models/make_classifier.py: CNN {'-'.join(map(str, CHANNELS))} "
        f"trained on scikit-learn digits upscaled to {SIZE}x{SIZE} (seed {SEED})",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=None, help="write models here instead of resources/")
    parser.add_argument(
        "--requantize",
        action="store_true",
        help="re-make only the INT8 model from the FP32 model and evaluation images "
        "already there (no training, no torch)",
    )
    args = parser.parse_args()
    models = args.out or models_dir()
    eval_folder = (args.out / "digits-eval") if args.out else datasets_dir() / "digits-eval"
    pixels, labels = digit_pixels()
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=EVAL_IMAGES, stratify=labels, random_state=SEED
    )
    fp32, int8 = models / f"{NAME}-fp32.onnx", models / f"{NAME}-int8.onnx"
    if args.requantize:
        manifest = load_package(fp32)  # refuses a missing model or one its manifest does not describe
    else:
        manifest = train_and_export(train_x, train_y, test_x, test_y, fp32)
        write_eval_set(test_x, test_y, eval_folder)
        if args.out is None:
            write_samples(test_x, test_y, images_dir())
    result = quantize(fp32, int8, train_x, train_y, eval_folder)
    update_figures(fp32, manifest, _fp32_figures(result.report))
    print(result.report.to_text())
    for note in result.notes:
        print(f"note: {note}")


def train_and_export(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, fp32: Path
) -> Manifest:
    """Train, fold BN, export `fp32` and write its manifest (figures come later)."""
    seed_everything(SEED)
    model = fuse_batchnorm(train(train_x, train_y))
    print(f"torch accuracy on {len(test_y)} held-out images: {100 * accuracy(model, test_x, test_y):.2f} %")
    export(model, to_input(test_x[:2]), fp32, "input", "logits")
    return write_fp32_manifest(fp32, manifest_fields())


def quantize(
    fp32: Path, int8: Path, train_x: np.ndarray, train_y: np.ndarray, eval_folder: Path
) -> QuantizeResult:
    """Static INT8 calibrated on the same seeded 256 training images, with 7-bit weights: full 8-bit
    ones saturate ONNX Runtime's INT8 kernels on x86 CPUs without VNNI (see README.md)."""
    with tempfile.TemporaryDirectory() as scratch:
        calibration = Path(scratch)
        chosen = np.random.default_rng(SEED).choice(len(train_x), CALIBRATION_IMAGES, replace=False)
        write_pngs(train_x[chosen], train_y[chosen], calibration)
        return quantize_model(
            fp32,
            int8,
            "static",
            calibration,
            evaluation=eval_folder,
            seed=GOLDEN_SEED,
            runs=1000,
            reduce_range=True,
        )


def _fp32_figures(report: Report) -> dict[str, float]:
    fp32 = report.fp32
    figures = {
        "latency_ms_p50": fp32.latency_ms_p50,
        "latency_ms_p95": fp32.latency_ms_p95,
        "latency_1t_ms_p50": fp32.latency_1t_ms_p50,
    }
    if fp32.accuracy_top1 is not None:
        figures["accuracy_top1"] = fp32.accuracy_top1
    return figures


if __name__ == "__main__":
    main()
