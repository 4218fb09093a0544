"""CPU facts: model, cores, frequency and the instruction sets that speed up inference."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from agent.wire import CpuFacts, CpuFlags, CpuFrequency, Int8Advice

from ._common import read_text

# Instruction-set features that change which model variant runs fastest, with the
# /proc/cpuinfo flags (x86 "flags", ARM "Features") that reveal each one.
INFERENCE_FLAGS: dict[str, frozenset[str]] = {
    "avx2": frozenset({"avx2"}),
    "avx512": frozenset({"avx512f"}),
    "vnni": frozenset({"avx512_vnni", "avx_vnni"}),
    "amx": frozenset({"amx_tile", "amx_int8", "amx_bf16"}),
    "neon": frozenset({"neon", "asimd"}),
    "dotprod": frozenset({"asimddp"}),
    "fp16": frozenset({"asimdhp", "f16c", "avx512_fp16"}),
}

_ARM_IMPLEMENTERS = {"0x41": "ARM", "0x4e": "NVIDIA", "0xc0": "Ampere", "0x51": "Qualcomm"}
_ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53",
    ("0x41", "0xd04"): "Cortex-A35",
    ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57",
    ("0x41", "0xd08"): "Cortex-A72",
    ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75",
    ("0x41", "0xd0b"): "Cortex-A76",
    ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77",
    ("0x41", "0xd40"): "Neoverse-V1",
    ("0x41", "0xd41"): "Cortex-A78",
    ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x41", "0xd49"): "Neoverse-N2",
    ("0x41", "0xd4f"): "Neoverse-V2",
    ("0x4e", "0x004"): "Carmel",
    ("0xc0", "0xac3"): "AmpereOne",
    ("0xc0", "0xac4"): "AmpereOne A",
}

_X86 = frozenset({"x86_64", "amd64", "i386", "i686"})
# What the instructions make likely, not a promise: only a measurement says how much faster.
_INT8_FAST = "INT8 is likely faster than FP32 here; `kitfleet quantize` and a benchmark job measure it."
_INT8_SLOW = "INT8 models save memory but may run no faster than FP32; prefer FP32 unless memory is tight."


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo says: a model name, the first processor's flags, the ARM core types."""

    model: str | None = None
    flags: frozenset[str] = frozenset()
    arm_parts: tuple[tuple[str, str], ...] = ()


def parse_cpuinfo(text: str) -> CpuInfo:
    """Parse /proc/cpuinfo text (x86 or ARM) into a model name, flag set and ARM core ids."""
    fields: dict[str, str] = {}
    for key, value in _pairs(text):
        fields.setdefault(key, value)
    parts = _arm_parts(text)
    flags = fields.get("flags") or fields.get("Features") or ""
    # On ARM the part ids name the cores better than "model name" ("ARMv7 Processor rev 3").
    model = _arm_model(parts) or fields.get("model name")
    return CpuInfo(model=model, flags=frozenset(flags.split()), arm_parts=parts)


def _pairs(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            yield key.strip(), value.strip()


def _arm_parts(text: str) -> tuple[tuple[str, str], ...]:
    """Return the distinct (implementer, part) pairs in order, e.g. both halves of big.LITTLE."""
    parts: list[tuple[str, str]] = []
    implementer = ""
    for key, value in _pairs(text):
        if key == "CPU implementer":
            implementer = value.lower()
        elif key == "CPU part" and (implementer, value.lower()) not in parts:
            parts.append((implementer, value.lower()))
    return tuple(parts)


def _arm_model(parts: tuple[tuple[str, str], ...]) -> str | None:
    """Name ARM cores from implementer/part ids, e.g. "ARM Cortex-A55 + Cortex-A76"."""
    if not parts:
        return None
    vendor = _ARM_IMPLEMENTERS.get(parts[0][0], f"implementer {parts[0][0]}")
    names = [_ARM_PARTS.get(part, f"part {part[1]}") for part in parts]
    return f"{vendor} {' + '.join(names)}"


def int8_advice(arch: str, flags: set[str] | frozenset[str]) -> Int8Advice:
    """Say whether this CPU has instructions that make INT8-quantised models likely faster
    (`recommended` keeps its name in the contract; how much faster only a measurement says)."""
    arch = arch.lower()
    if arch in _X86:
        if "amx_int8" in flags:
            return _advice("amx", f"This CPU has AMX int8 tiles: {_INT8_FAST}")
        if flags & INFERENCE_FLAGS["vnni"]:
            return _advice("vnni", f"This CPU has VNNI int8 instructions: {_INT8_FAST}")
        return _advice(None, f"This CPU lacks VNNI and AMX, so {_INT8_SLOW}")
    if arch in {"aarch64", "arm64"} or arch.startswith("arm"):
        dotprod = "the ARM dot-product instructions"
        if "asimddp" in flags:
            return _advice("dotprod", f"This CPU has {dotprod}: {_INT8_FAST}")
        return _advice(None, f"This CPU lacks {dotprod}, so {_INT8_SLOW}")
    known = arch or "unknown"
    return _advice(None, f"No INT8 acceleration is known for the {known} architecture; use FP32.")


def int8_needs_reduced_range(arch: str, flags: set[str] | frozenset[str]) -> bool:
    """Whether INT8 weights should keep to 7 bits (ONNX Runtime's reduce_range) on this CPU.

    Without VNNI/AMX, ONNX Runtime's x86 u8×s8 kernels add products in pairs into int16
    (vpmaddubsw), which full 8-bit weights can overflow; VNNI/AMX and ARM kernels do not saturate.
    """
    return arch.lower() in _X86 and int8_advice(arch, flags).via is None


def int8_needs_reduced_range_here() -> bool:
    """`int8_needs_reduced_range` for the CPU this process runs on."""
    flags = parse_cpuinfo(read_text("/proc/cpuinfo") or "").flags
    return int8_needs_reduced_range(platform.machine(), flags)


def int8_advice_here() -> Int8Advice:
    """`int8_advice` for the CPU this process runs on."""
    return int8_advice(platform.machine(), parse_cpuinfo(read_text("/proc/cpuinfo") or "").flags)


def _advice(via: str | None, reason: str) -> Int8Advice:
    accelerated = via is not None
    return Int8Advice(accelerated=accelerated, via=via, recommended=accelerated, reason=reason)


def _frequency_mhz() -> CpuFrequency | None:
    # psutil lacks cpu_freq on kernels without cpufreq and /proc/cpuinfo MHz (many ARM boards).
    cpu_freq = getattr(psutil, "cpu_freq", None)
    try:
        freq = cpu_freq() if cpu_freq is not None else None
    except (OSError, NotImplementedError):  # a cpufreq file that vanished or never existed
        return None
    if freq is None:
        return None
    return CpuFrequency(current=freq.current or None, max=freq.max or None)


def collect() -> CpuFacts:
    """Return the CPU family: model, arch, cores, frequency, inference flags and INT8 advice."""
    info = parse_cpuinfo(read_text("/proc/cpuinfo") or "")
    arch = platform.machine()
    model = info.model or read_text("/proc/device-tree/model") or platform.processor() or None
    return CpuFacts(
        available=True,
        model=model,
        arch=arch,
        logical_cores=psutil.cpu_count(logical=True),
        physical_cores=psutil.cpu_count(logical=False),
        frequency_mhz=_frequency_mhz(),
        flags=CpuFlags(**{name: bool(info.flags & names) for name, names in INFERENCE_FLAGS.items()}),
        int8=int8_advice(arch, info.flags),
    )
