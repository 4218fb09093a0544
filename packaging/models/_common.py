"""What the model-making scripts share: seeding, BN folding, ONNX export and FP32 manifests.

torch is imported only by the functions that train or export, so re-quantizing needs no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from agent.toolkit.hashing import sha256_file
from agent.wire import Manifest
from app.fleet.models import manifest_path
from app.fleet.quantmanifest import golden_for

if TYPE_CHECKING:
    import torch
    from torch import nn

OPSET = 18
GOLDEN_SEED = 7


def seed_everything(seed: int) -> None:
    """Same seed, same thread count, same weights: the committed files can be re-made bit for bit.

    The scripts draw every other random number from generators seeded explicitly.
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def fuse_batchnorm(layers: nn.Sequential) -> nn.Sequential:
    """A copy of `layers` with every Conv2d → BatchNorm2d pair folded into one Conv2d (eval mode)."""
    from torch import nn

    fused: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and fused and isinstance(fused[-1], nn.Conv2d):
            fused[-1] = nn.utils.fusion.fuse_conv_bn_eval(fused[-1], layer)
        elif isinstance(layer, nn.Sequential):
            fused.append(fuse_batchnorm(layer))
        else:
            fused.append(layer)
    return nn.Sequential(*fused).eval()


def export(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_name: str) -> None:
    """Export to one self-contained ONNX file with a dynamic batch dimension."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        module.eval(),
        (example,),
        input_names=[input_name],
        output_names=[output_name],
        opset_version=OPSET,
        dynamo=True,
        dynamic_shapes=({0: batch},),
        external_data=False,
    )
    assert program is not None
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    # IR 10 adds only 4-bit types and function overloads, unused here; IR 9 loads on ONNX Runtime 1.17
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def write_fp32_manifest(model: Path, fields: dict[str, Any]) -> Manifest:
    """Validate and write `<stem>.manifest.json` beside `model`, adding sha256, size and golden."""
    manifest = Manifest.model_validate(
        {
            **fields,
            "precision": "fp32",
            "sha256": sha256_file(model),
            "size_bytes": model.stat().st_size,
            "golden": golden_for(model, fields["input"]["dtype"], "fp32", GOLDEN_SEED).model_dump(),
        }
    )
    manifest_path(model).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def update_figures(model: Path, manifest: Manifest, figures: dict[str, float]) -> Manifest:
    """Rewrite the manifest of an unchanged model with new figures."""
    updated = manifest.model_copy(update={"figures": {k: round(v, 4) for k, v in figures.items()}})
    manifest_path(model).write_text(updated.model_dump_json(indent=2) + "\n")
    return updated
