"""Hardware gates: which of a manifest's `requires` a kit's facts do not meet, in words.

One checker for both sides: the app asks it with a kit's last-known facts before uploading,
the kit asks it with its own live facts before installing. A fact the kit cannot read counts as
unmet (saying so): a gate exists to keep a model off hardware nobody has vouched for.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.wire import FactFamilies, Requirements

__all__ = ["describe", "unmet", "version_tuple"]

MIB = 1 << 20


def unmet(requires: Requirements | None, facts: FactFamilies | None) -> list[str]:
    """Every requirement in `requires` that `facts` do not meet, one reason each; [] when all hold."""
    if requires is None:
        return []
    families = facts or FactFamilies()
    reasons: list[str] = []
    for check in _CHECKS:
        reason = check(requires, families)
        if reason:
            reasons.append(reason)
    return reasons


def describe(requires: Requirements | None) -> str:
    """The requirements in one line, e.g. 'arch x86_64|aarch64, RAM >= 2048 MiB'."""
    if requires is None or not requires.given():
        return "none"
    parts = []
    if requires.arch:
        parts.append(f"arch {'|'.join(requires.arch)}")
    if requires.min_memory_mb:
        parts.append(f"RAM >= {requires.min_memory_mb} MiB")
    if requires.min_free_disk_mb:
        parts.append(f"free disk >= {requires.min_free_disk_mb} MiB")
    if requires.providers:
        parts.append(f"provider {'|'.join(requires.providers)}")
    if requires.cpu_features:
        parts.append(f"CPU {'+'.join(requires.cpu_features)}")
    if requires.min_onnxruntime:
        parts.append(f"onnxruntime >= {requires.min_onnxruntime}")
    return ", ".join(parts)


def version_tuple(version: str) -> tuple[int, ...]:
    """'1.17.3' -> (1, 17, 3); a suffix such as '+cu118' or 'rc1' after the numbers is ignored."""
    match = re.match(r"^\s*v?([0-9]+(?:\.[0-9]+)*)", version)
    if not match:
        raise ValueError(f"{version!r} is not a version number")
    return tuple(int(part) for part in match.group(1).split("."))


def _arch(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.arch:
        return None
    cpu = facts.cpu
    arch = (cpu.arch or "").lower() if cpu and cpu.available else ""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)
    wanted = " or ".join(requires.arch)
    if not arch:
        return f"architecture: needs {wanted}, but the kit's CPU facts do not say its architecture"
    if arch not in requires.arch:
        return f"architecture: needs {wanted}, the kit is {arch}"
    return None


def _memory(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.min_memory_mb:
        return None
    memory = facts.memory
    total = memory.total_bytes if memory and memory.available else None
    need = f"needs {requires.min_memory_mb} MiB of RAM"
    if total is None:
        return f"memory: {need}, but the kit's memory facts are unknown"
    if total < requires.min_memory_mb * MIB:
        return f"memory: {need}, the kit has {total // MIB} MiB"
    return None


def _disk(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.min_free_disk_mb:
        return None
    disks = facts.disks
    data_dir = disks.data_dir if disks and disks.available else None
    free = data_dir.free_bytes if data_dir else None
    need = f"needs {requires.min_free_disk_mb} MiB free where models are kept"
    if free is None:
        return f"free disk: {need}, but the kit's disk facts do not say"
    if free < requires.min_free_disk_mb * MIB:
        return f"free disk: {need}, the kit has {free // MIB} MiB free"
    return None


def _providers(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.providers:
        return None
    runtime = facts.runtime
    have = runtime.providers if runtime and runtime.available else None
    wanted = " or ".join(requires.providers)
    if have is None:
        return f"execution provider: needs {wanted}, but the kit's runtime facts are unknown"
    if not set(have) & set(requires.providers):
        return f"execution provider: needs {wanted}, the kit has {', '.join(have) or 'none'}"
    return None


def _cpu_features(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.cpu_features:
        return None
    cpu = facts.cpu
    flags = cpu.flags if cpu and cpu.available else None
    if flags is None:
        return f"CPU features: needs {', '.join(requires.cpu_features)}, but the kit's CPU flags are unknown"
    missing = [name for name in requires.cpu_features if getattr(flags, name) is not True]
    if missing:
        unknown = [name for name in missing if getattr(flags, name) is None]
        said = f" ({', '.join(unknown)} not reported)" if unknown else ""
        needs = ", ".join(requires.cpu_features)
        return f"CPU features: needs {needs}, the kit lacks {', '.join(missing)}{said}"
    return None


def _onnxruntime(requires: Requirements, facts: FactFamilies) -> str | None:
    if not requires.min_onnxruntime:
        return None
    runtime = facts.runtime
    version = runtime.version if runtime and runtime.available else None
    need = f"needs ONNX Runtime {requires.min_onnxruntime} or newer"
    if not version:
        return f"ONNX Runtime: {need}, but the kit's runtime version is unknown"
    try:
        have = version_tuple(version)
    except ValueError:
        return f"ONNX Runtime: {need}, the kit reports an unreadable version {version[:40]!r}"
    want = version_tuple(requires.min_onnxruntime)
    width = max(len(have), len(want))  # 1.17 is 1.17.0
    if have + (0,) * (width - len(have)) < want + (0,) * (width - len(want)):
        return f"ONNX Runtime: {need}, the kit has {version}"
    return None


_CHECKS: tuple[Callable[[Requirements, FactFamilies], str | None], ...] = (
    _arch,
    _memory,
    _disk,
    _providers,
    _cpu_features,
    _onnxruntime,
)
