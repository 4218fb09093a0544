"""Hardware gates a model manifest may carry: what a kit must have before the model is installed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from agent.wire.base import WireModel

__all__ = ["CPU_FEATURE_ALIASES", "CpuFeature", "Requirements"]

# The names the kit's CPU facts report (`CpuFlags`), one per instruction-set family.
CpuFeature = Literal["avx2", "avx512", "vnni", "amx", "neon", "dotprod", "fp16"]

# /proc/cpuinfo spellings people write in manifests, mapped to the family the facts report.
CPU_FEATURE_ALIASES: dict[str, str] = {
    "avx512f": "avx512",
    "avx512_vnni": "vnni",
    "avx_vnni": "vnni",
    "amx_int8": "amx",
    "amx_tile": "amx",
    "amx_bf16": "amx",
    "asimd": "neon",
    "asimddp": "dotprod",
    "asimdhp": "fp16",
    "f16c": "fp16",
    "avx512_fp16": "fp16",
}

_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class Requirements(WireModel):
    """What a kit must have: every field given must hold (`providers`: any one of them)."""

    arch: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="machine architectures allowed, e.g. x86_64, aarch64 (amd64/arm64 accepted)",
    )
    min_memory_mb: int | None = Field(default=None, ge=1, le=1 << 30, description="installed RAM, MiB")
    min_free_disk_mb: int | None = Field(
        default=None, ge=1, le=1 << 40, description="free space where the agent keeps models, MiB"
    )
    providers: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="ONNX Runtime execution providers; the kit needs any one of them",
    )
    cpu_features: list[CpuFeature] | None = Field(
        default=None,
        min_length=1,
        max_length=16,
        description="CPU instruction sets the kit needs, all of them: avx2, avx512, vnni, amx, neon, "
        "dotprod, fp16 (cpuinfo names such as avx512_vnni, avx_vnni, avx512f, asimddp are accepted)",
    )
    min_onnxruntime: str | None = Field(
        default=None, pattern=r"^[0-9]{1,4}(\.[0-9]{1,4}){0,3}$", description="lowest ONNX Runtime version"
    )

    @field_validator("arch", mode="before")
    @classmethod
    def _arch_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_ARCH_ALIASES.get(v.lower(), v.lower()) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("arch", "providers")
    @classmethod
    def _plain_names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not (0 < len(name) <= 64 and name.replace("_", "").isalnum() and name.isascii()):
                raise ValueError(f"{name!r} is not a name: use letters, digits and _ (at most 64)")
        return value

    @field_validator("cpu_features", mode="before")
    @classmethod
    def _feature_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [CPU_FEATURE_ALIASES.get(v.lower(), v.lower()) if isinstance(v, str) else v for v in value]
        return value

    def given(self) -> bool:
        """Whether any requirement is set."""
        return any(v is not None for v in self.model_dump().values())
