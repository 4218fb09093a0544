"""The typed fact families: they cover what the real collectors produce, and read JSON both ways."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent import facts
from agent.facts import runtime
from agent.wire import (
    AcceleratorsFacts,
    CpuFacts,
    DisksFacts,
    FactFamilies,
    FactFamily,
    Facts,
    Int8Advice,
    MemoryFacts,
    NetworkFacts,
    PowerFacts,
    RuntimeFacts,
    SystemFacts,
    ThermalFacts,
    favoured_precision,
)

MODELS: dict[str, type[FactFamily]] = {
    "cpu": CpuFacts,
    "memory": MemoryFacts,
    "disks": DisksFacts,
    "accelerators": AcceleratorsFacts,
    "runtime": RuntimeFacts,
    "system": SystemFacts,
    "network": NetworkFacts,
    "power": PowerFacts,
    "thermal": ThermalFacts,
}

# What a kit of the previous release sent (and an inventory stored): no precision per provider.
OLD_KIT_JSON: dict[str, dict[str, Any]] = {
    "cpu": {
        "available": True,
        "model": "Ampere Altra",
        "arch": "aarch64",
        "logical_cores": 80,
        "physical_cores": None,
        "frequency_mhz": {"current": 3000.0, "max": None},
        "flags": {"avx2": False, "avx512": False, "vnni": False, "amx": False, "neon": True, "dotprod": True},
        "int8": {"accelerated": True, "via": "dotprod", "recommended": True, "reason": "fast."},
    },
    "memory": {"available": True, "total_bytes": 68719476736, "available_bytes": 60000000000},
    "runtime": {
        "available": True,
        "name": "onnxruntime",
        "distribution": "onnxruntime-gpu",
        "version": "1.17.1",
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    },
    "power": {"available": False, "reason": "no battery reported"},
    "kit": {"available": True, "name": "alpha", "kit_model": ""},
}


def extra_keys(value: Any, path: str = "") -> list[str]:
    """Every key a model kept as an extra, anywhere inside `value`, as a dotted path."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{key}" for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += extra_keys(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, list):
        return [key for i, item in enumerate(value) for key in extra_keys(item, f"{path}[{i}]")]
    return []


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FactFamily]:
    data_dir = tmp_path_factory.mktemp("agent-data")
    return {name: facts.collect_family(name, data_dir) for name in facts.FAMILIES}


@pytest.mark.parametrize("name", facts.FAMILIES)
def test_every_real_collector_fits_its_model_with_no_extra_keys(
    collected: dict[str, FactFamily], name: str
) -> None:
    family = collected[name]
    assert type(family) is MODELS[name]
    assert extra_keys(family, name) == []
    # The JSON it sends reads back into the same model, again with nothing left over.
    again = MODELS[name].model_validate_json(json.dumps(family.wire()))
    assert extra_keys(again, name) == []
    assert again.wire() == family.wire()


@pytest.mark.parametrize("name", facts.FAMILIES)
def test_an_available_family_sets_every_field_it_declares(
    collected: dict[str, FactFamily], name: str
) -> None:
    """So the wire lists each fact, even an unknown one as null, exactly as before the models."""
    family = collected[name]
    if not family.available:
        assert family.wire() == {"available": False, "reason": family.reason}
        return
    unset = set(type(family).model_fields) - family.model_fields_set - {"reason"}
    assert unset == set()


def test_the_families_cover_every_collector() -> None:
    assert set(FactFamilies.model_fields) == {*facts.FAMILIES, "kit"}
    assert set(MODELS) == set(facts.FAMILIES)


def test_json_from_an_older_kit_reads_typed_and_writes_back_unchanged() -> None:
    families = FactFamilies.model_validate_json(json.dumps(OLD_KIT_JSON))
    assert families.cpu is not None
    assert families.cpu.int8 is not None
    assert families.cpu.int8.via == "dotprod"
    assert families.cpu.frequency_mhz is not None
    assert families.cpu.frequency_mhz.current == 3000.0
    assert families.memory is not None
    assert families.memory.swap_total_bytes is None  # an older kit did not say: None, not an error
    assert families.power is not None
    assert families.power.available is False
    assert families.disks is None  # not sent at all
    assert families.wire() == OLD_KIT_JSON  # no nulls added for what it never sent


def test_fields_and_families_from_a_newer_kit_are_kept() -> None:
    newer = {
        **OLD_KIT_JSON,
        "cpu": {**OLD_KIT_JSON["cpu"], "npu_tops": 45},
        "npu": {"available": True, "cores": 2},
    }
    families = FactFamilies.model_validate(newer)
    assert families.model_extra == {"npu": {"available": True, "cores": 2}}
    assert families.cpu is not None
    assert families.cpu.model_extra == {"npu_tops": 45}
    assert families.wire() == newer


def test_a_family_in_a_form_this_version_cannot_read_is_unavailable_and_hides_nothing() -> None:
    changed = {**OLD_KIT_JSON, "cpu": {**OLD_KIT_JSON["cpu"], "frequency_mhz": 3000.0}}  # a newer shape
    answer = {"device_id": "d" * 64, "name": "alpha", "collected_at": 1.5, "families": changed}
    families = Facts.model_validate_json(json.dumps(answer)).families
    assert families.cpu is not None
    assert families.cpu.available is False
    assert "frequency_mhz" in (families.cpu.reason or "")
    assert "kitfleet provision" in (families.cpu.reason or "")
    assert families.memory == FactFamilies.model_validate(OLD_KIT_JSON).memory
    assert families.precision_by_provider()[0].precision == "fp16"


def test_the_facts_answer_keeps_its_shape_on_the_wire() -> None:
    answer = Facts(
        device_id="d" * 64, name="alpha", collected_at=1.5, families=FactFamilies.model_validate(OLD_KIT_JSON)
    )
    sent = json.loads(answer.model_dump_json(exclude_unset=True))
    assert sent == {"device_id": "d" * 64, "name": "alpha", "collected_at": 1.5, "families": OLD_KIT_JSON}


# --- the precision each execution provider favours (issue 17) ------------------------------


@pytest.mark.parametrize(
    ("via", "precision"),
    [("vnni", "int8"), ("amx", "int8"), ("dotprod", "int8"), (None, "fp32")],
)
def test_the_cpu_provider_favours_int8_only_where_int8_is_accelerated(
    via: str | None, precision: str
) -> None:
    advice = Int8Advice(accelerated=via is not None, via=via, recommended=via is not None, reason="")
    favoured = favoured_precision("CPUExecutionProvider", advice)
    assert favoured.precision == precision
    assert favoured.reason
    if via is not None:
        assert {"vnni": "VNNI", "amx": "AMX", "dotprod": "dot-product"}[via] in favoured.reason


@pytest.mark.parametrize(
    "provider",
    [
        "CUDAExecutionProvider",
        "TensorrtExecutionProvider",
        "DmlExecutionProvider",
        "CoreMLExecutionProvider",
        "ROCMExecutionProvider",
    ],
)
def test_gpu_providers_favour_fp16(provider: str) -> None:
    favoured = favoured_precision(provider, Int8Advice(accelerated=True, via="vnni"))
    assert (favoured.provider, favoured.precision) == (provider, "fp16")
    assert "FP16" in (favoured.reason or "")


def test_unknown_cpu_facts_and_unknown_providers_fall_back_to_fp32() -> None:
    assert favoured_precision("CPUExecutionProvider", None).precision == "fp32"
    assert favoured_precision("AzureExecutionProvider", None).precision == "fp32"


def test_the_runtime_family_says_what_each_provider_here_favours(collected: dict[str, FactFamily]) -> None:
    family, cpu = collected["runtime"], collected["cpu"]
    assert isinstance(family, RuntimeFacts)
    assert isinstance(cpu, CpuFacts)
    assert family.available, family.reason
    favoured = family.precision_by_provider or []
    assert [p.provider for p in favoured] == family.providers
    on_cpu = next(p for p in favoured if p.provider == "CPUExecutionProvider")
    assert cpu.int8 is not None
    assert on_cpu.precision == ("int8" if cpu.int8.accelerated else "fp32")
    assert family.wire()["precision_by_provider"][0].keys() == {"provider", "precision", "reason"}


def test_precision_for_an_older_kit_comes_from_its_providers_and_cpu() -> None:
    families = FactFamilies.model_validate(OLD_KIT_JSON)
    assert [(p.provider, p.precision) for p in families.precision_by_provider()] == [
        ("CUDAExecutionProvider", "fp16"),
        ("CPUExecutionProvider", "int8"),  # its ARM dot-product instructions
    ]
    assert FactFamilies().precision_by_provider() == []


def test_the_cached_runtime_probe_still_gives_each_caller_its_own_copy() -> None:
    first = runtime.collect()
    assert first.precision_by_provider
    first.precision_by_provider.clear()
    assert runtime.collect().precision_by_provider


def test_collect_all_writes_the_families_in_their_usual_order(tmp_path: Path) -> None:
    assert list(facts.collect_all(tmp_path).wire()) == list(facts.FAMILIES)
