"""The hardware-gate checker both sides run: each requirement, met, unmet and unknown, in words."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.toolkit.gates import describe, unmet, version_tuple
from agent.wire import (
    CpuFacts,
    CpuFlags,
    DataDir,
    DisksFacts,
    FactFamilies,
    Manifest,
    MemoryFacts,
    Requirements,
    RuntimeFacts,
)

MIB = 1 << 20


def kit(
    arch: str = "x86_64",
    memory_mb: int = 4096,
    free_mb: int = 1000,
    providers: list[str] | None = None,
    version: str = "1.17.3",
    **flags: bool,
) -> FactFamilies:
    return FactFamilies(
        cpu=CpuFacts(arch=arch, flags=CpuFlags(avx2=True, vnni=False, **flags)),
        memory=MemoryFacts(total_bytes=memory_mb * MIB),
        disks=DisksFacts(data_dir=DataDir(free_bytes=free_mb * MIB)),
        runtime=RuntimeFacts(version=version, providers=providers or ["CPUExecutionProvider"]),
    )


def test_no_requirements_refuse_nothing() -> None:
    assert unmet(None, kit()) == []
    assert unmet(Requirements(), kit()) == []
    assert describe(None) == "none"


def test_every_requirement_met() -> None:
    requires = Requirements(
        arch=["x86_64", "aarch64"],
        min_memory_mb=2048,
        min_free_disk_mb=500,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        cpu_features=["avx2"],
        min_onnxruntime="1.17",
    )
    assert unmet(requires, kit()) == []
    assert describe(requires) == (
        "arch x86_64|aarch64, RAM >= 2048 MiB, free disk >= 500 MiB, "
        "provider CUDAExecutionProvider|CPUExecutionProvider, CPU avx2, onnxruntime >= 1.17"
    )


def test_each_unmet_requirement_gives_its_own_reason() -> None:
    requires = Requirements(
        arch=["aarch64"],
        min_memory_mb=8192,
        min_free_disk_mb=2000,
        providers=["CUDAExecutionProvider"],
        cpu_features=["vnni", "avx2"],
        min_onnxruntime="1.18.0",
    )
    reasons = unmet(requires, kit())
    assert reasons == [
        "architecture: needs aarch64, the kit is x86_64",
        "memory: needs 8192 MiB of RAM, the kit has 4096 MiB",
        "free disk: needs 2000 MiB free where models are kept, the kit has 1000 MiB free",
        "execution provider: needs CUDAExecutionProvider, the kit has CPUExecutionProvider",
        "CPU features: needs vnni, avx2, the kit lacks vnni",
        "ONNX Runtime: needs ONNX Runtime 1.18.0 or newer, the kit has 1.17.3",
    ]


def test_unknown_facts_count_as_unmet_and_say_so() -> None:
    requires = Requirements(arch=["x86_64"], min_memory_mb=1, cpu_features=["dotprod"], min_onnxruntime="1.0")
    reasons = unmet(requires, FactFamilies())
    assert len(reasons) == 4
    assert all("unknown" in r or "do not say" in r for r in reasons), reasons
    unread = kit()
    assert unread.cpu is not None
    unread.cpu.flags = CpuFlags(avx2=True)  # dotprod never reported
    assert unmet(Requirements(cpu_features=["dotprod"]), unread) == [
        "CPU features: needs dotprod, the kit lacks dotprod (dotprod not reported)"
    ]


def test_aliases_and_versions() -> None:
    requires = Requirements.model_validate(
        {"arch": ["AMD64", "arm64"], "cpu_features": ["avx512f", "asimddp", "avx_vnni"]}
    )
    assert requires.arch == ["x86_64", "aarch64"]
    assert requires.cpu_features == ["avx512", "dotprod", "vnni"]
    assert unmet(Requirements(arch=["arm64"]), kit(arch="aarch64")) == []
    assert version_tuple("1.17.3+cu118") == (1, 17, 3)
    assert unmet(Requirements(min_onnxruntime="1.17"), kit(version="1.17.0")) == []
    assert unmet(Requirements(min_onnxruntime="1.17.1"), kit(version="1.17")) != []
    assert unmet(Requirements(min_onnxruntime="1.9"), kit(version="1.10.0")) == []
    assert "unreadable" in unmet(Requirements(min_onnxruntime="1.9"), kit(version="dev"))[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"cpu_features": ["sse9"]},
        {"arch": ["../x86"]},
        {"providers": ["CPU Execution"]},
        {"min_onnxruntime": "latest"},
        {"min_memory_mb": 0},
        {"arch": []},
    ],
)
def test_bad_requirements_are_refused_by_the_manifest(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Requirements.model_validate(bad)


def test_a_manifest_carries_its_requirements() -> None:
    manifest = Manifest.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": "raw",
            "input": {"name": "x", "height": 1, "width": 1},
            "sha256": "0" * 64,
            "size_bytes": 1,
            "requires": {"arch": ["x86_64"], "cpu_features": ["avx512_vnni"]},
        }
    )
    assert manifest.requires == Requirements(arch=["x86_64"], cpu_features=["vnni"])
