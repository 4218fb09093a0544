"""A kit's fact families, one model per family, with the unit in each field's name.

Facts are read by apps of other versions, and from inventories that saved them as plain JSON
months ago, so every field is optional with a default and unknown fields are kept (`extra`).
On the wire a family carries only the fields its collector set (`FactRecord.wire`): the same
JSON an older kit sent, with no nulls for what a producer never knew about.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from agent.wire.base import WireModel
from agent.wire.models import Precision

__all__ = [
    "Accelerator",
    "AcceleratorsFacts",
    "Battery",
    "CpuFacts",
    "CpuFlags",
    "CpuFrequency",
    "DataDir",
    "DisksFacts",
    "FactFamily",
    "FactRecord",
    "Filesystem",
    "Int8Advice",
    "IpAddress",
    "KitFacts",
    "KitIdentity",
    "MemoryFacts",
    "NetworkFacts",
    "NetworkInterface",
    "PowerFacts",
    "PowerSupply",
    "ProviderPrecision",
    "RuntimeFacts",
    "SystemFacts",
    "TemperatureSensor",
    "ThermalFacts",
]


class FactRecord(WireModel):
    """A part of the facts: tolerant both ways, so kits and apps of other versions agree."""

    model_config = ConfigDict(extra="allow")

    def wire(self) -> dict[str, Any]:
        """The JSON mapping as sent and stored: only the fields that were set, extras kept."""
        return self.model_dump(mode="json", exclude_unset=True)


class FactFamily(FactRecord):
    """One family: `available: false` with a `reason` when its source could not be read."""

    available: bool = Field(default=True, description="false when the source could not be read")
    reason: str | None = Field(default=None, description="why the family is not available")


# --- cpu ------------------------------------------------------------------------------


class CpuFrequency(FactRecord):
    current: float | None = Field(default=None, description="MHz now (the parent is `frequency_mhz`)")
    max: float | None = Field(default=None, description="highest MHz, None when the kernel does not say")


class CpuFlags(FactRecord):
    """Instruction sets that change which model variant runs fastest; None when unknown."""

    avx2: bool | None = None
    avx512: bool | None = Field(default=None, description="AVX-512 foundation (avx512f)")
    vnni: bool | None = Field(default=None, description="x86 INT8 dot products (AVX-512 or AVX VNNI)")
    amx: bool | None = Field(default=None, description="Intel AMX tiles")
    neon: bool | None = Field(default=None, description="ARM SIMD (NEON / ASIMD)")
    dotprod: bool | None = Field(default=None, description="ARM INT8 dot product (asimddp)")
    fp16: bool | None = Field(default=None, description="half-precision arithmetic or conversion")


class Int8Advice(FactRecord):
    accelerated: bool | None = Field(default=None, description="the CPU has INT8 dot-product instructions")
    via: str | None = Field(default=None, description="which: vnni, amx or dotprod; None when none")
    recommended: bool | None = Field(default=None, description="INT8 models are worth using here")
    reason: str | None = Field(default=None, description="the advice in a sentence")


class CpuFacts(FactFamily):
    model: str | None = Field(default=None, description="CPU model, or the ARM core types")
    arch: str | None = Field(default=None, description="machine architecture, e.g. x86_64, aarch64")
    logical_cores: int | None = Field(default=None, description="hardware threads")
    physical_cores: int | None = Field(default=None, description="cores; None when unknown")
    frequency_mhz: CpuFrequency | None = Field(default=None, description="clock in MHz; None without cpufreq")
    flags: CpuFlags | None = None
    int8: Int8Advice | None = Field(default=None, description="whether INT8 models pay off on this CPU")


# --- memory and disks -----------------------------------------------------------------


class MemoryFacts(FactFamily):
    total_bytes: int | None = Field(default=None, description="installed RAM")
    available_bytes: int | None = Field(default=None, description="RAM a new model could use now")
    swap_total_bytes: int | None = Field(default=None, description="swap space")


class Filesystem(FactRecord):
    device: str | None = None
    mountpoint: str | None = None
    fstype: str | None = None
    total_bytes: int | None = Field(default=None, description="size; None when unreadable")
    free_bytes: int | None = Field(default=None, description="free for an unprivileged process")


class DataDir(FactRecord):
    path: str | None = Field(default=None, description="where the agent keeps models and jobs")
    mountpoint: str | None = Field(default=None, description="the filesystem it lives on")
    total_bytes: int | None = None
    free_bytes: int | None = Field(default=None, description="room left for models and results")


class DisksFacts(FactFamily):
    filesystems: list[Filesystem] | None = Field(default=None, description="block-device filesystems")
    data_dir: DataDir | None = Field(default=None, description="None when the agent has no data dir")


# --- accelerators ---------------------------------------------------------------------


class Accelerator(FactRecord):
    """A GPU or AI accelerator; which fields are set depends on `source`."""

    vendor: str | None = None
    name: str | None = None
    kind: str | None = Field(default=None, description="gpu or accelerator")
    memory_bytes: int | None = Field(default=None, description="device memory (nvidia-smi)")
    vendor_id: str | None = Field(default=None, description="PCI vendor id, e.g. 0x10de")
    device_id: str | None = Field(default=None, description="PCI device id")
    pci_address: str | None = None
    usb_id: str | None = Field(default=None, description="USB vendor:product")
    driver: str | None = Field(default=None, description="driver version or kernel driver name")
    uuid: str | None = None
    source: str | None = Field(default=None, description="nvidia-smi, pci or usb")


class AcceleratorsFacts(FactFamily):
    devices: list[Accelerator] | None = Field(default=None, description="none found is an empty list")
    device_nodes: list[str] | None = Field(default=None, description="/dev nodes of accelerators")
    problems: list[str] | None = Field(default=None, description="probes that failed, and how")


# --- runtime --------------------------------------------------------------------------


class ProviderPrecision(FactRecord):
    """The precision an ONNX Runtime execution provider runs fastest, and why."""

    provider: str | None = Field(default=None, description="e.g. CPUExecutionProvider")
    precision: Precision | None = Field(default=None, description="fp32, fp16 or int8")
    reason: str | None = None


class RuntimeFacts(FactFamily):
    name: str | None = Field(default=None, description="the inference runtime, onnxruntime")
    distribution: str | None = Field(default=None, description="which build, e.g. onnxruntime-gpu")
    version: str | None = None
    providers: list[str] | None = Field(default=None, description="execution providers available")
    precision_by_provider: list[ProviderPrecision] | None = Field(
        default=None, description="per provider, the precision it favours; None from older kits"
    )


# --- system, network ------------------------------------------------------------------


class KitIdentity(FactRecord):
    """From DMI (x86) or the device tree (ARM boards); None where firmware says nothing."""

    vendor: str | None = None
    model: str | None = None
    serial: str | None = Field(default=None, description="None unless the agent runs as root (DMI)")
    board: str | None = None


class SystemFacts(FactFamily):
    os: str | None = Field(default=None, description="e.g. Ubuntu 22.04.4 LTS")
    kernel: str | None = None
    python: str | None = Field(default=None, description="the agent's Python version")
    hostname: str | None = None
    boot_time: float | None = Field(default=None, description="when the kit booted, Unix epoch seconds")
    kit: KitIdentity | None = None


class IpAddress(FactRecord):
    address: str | None = None
    netmask: str | None = None


class NetworkInterface(FactRecord):
    name: str | None = None
    up: bool | None = Field(default=None, description="link up; None when the kernel has no stats")
    speed_mbps: int | None = Field(default=None, description="link speed in Mbit/s; None when unknown")
    mtu: int | None = Field(default=None, description="largest packet, in bytes")
    mac: str | None = None
    ipv4: list[IpAddress] | None = None
    ipv6: list[IpAddress] | None = None


class NetworkFacts(FactFamily):
    interfaces: list[NetworkInterface] | None = Field(default=None, description="sorted by name")


# --- power, thermal -------------------------------------------------------------------


class Battery(FactRecord):
    available: bool = Field(default=True, description="false when the kit reports no battery")
    reason: str | None = None
    percent: float | None = Field(default=None, description="charge, 0-100 %")
    plugged: bool | None = Field(default=None, description="on external power")
    secs_left: int | None = Field(default=None, description="seconds of charge left; None on AC or unknown")


class PowerSupply(FactRecord):
    name: str | None = None
    type: str | None = Field(default=None, description="Mains, USB, Battery, UPS, ...")
    online: bool | None = Field(default=None, description="supplying power; None when not reported")
    status: str | None = Field(default=None, description="e.g. Charging, Discharging, Full")


class PowerFacts(FactFamily):
    on_ac: bool | None = Field(default=None, description="external power connected; None when unknown")
    battery: Battery | None = None
    supplies: list[PowerSupply] | None = None


class TemperatureSensor(FactRecord):
    sensor: str | None = Field(default=None, description="the chip, e.g. coretemp")
    label: str | None = None
    current_c: float | None = Field(default=None, description="°C now")
    high_c: float | None = Field(default=None, description="°C the chip calls high")
    critical_c: float | None = Field(default=None, description="°C the chip calls critical")


class ThermalFacts(FactFamily):
    sensors: list[TemperatureSensor] | None = None
    max_c: float | None = Field(default=None, description="the hottest current reading, °C")


# --- the kit entry the agent's API adds -----------------------------------------------


class KitFacts(FactFamily):
    name: str | None = Field(default=None, description="the kit's display name")
    kit_model: str | None = Field(default=None, description="from the agent's settings, or empty")
