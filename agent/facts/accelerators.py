"""Accelerator facts: GPUs and AI accelerators from nvidia-smi, PCI, USB and device nodes."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

from agent.wire import Accelerator, AcceleratorsFacts

from ._common import read_text

NVIDIA_SMI_TIMEOUT_S = 5.0
PCI_DEVICES = Path("/sys/bus/pci/devices")
USB_DEVICES = Path("/sys/bus/usb/devices")
_NVIDIA_SMI_QUERY = [
    "--query-gpu=name,memory.total,driver_version,uuid",
    "--format=csv,noheader,nounits",
]

PCI_VENDORS = {
    "0x10de": "NVIDIA",
    "0x1002": "AMD",
    "0x8086": "Intel",
    "0x1e60": "Hailo",
    "0x1ac1": "Google Coral",
    "0x17cb": "Qualcomm",
}
# Display controllers (VGA, 3D, other) and processing accelerators, by PCI class prefix.
_PCI_CLASSES = {"0x0300": "gpu", "0x0302": "gpu", "0x0380": "gpu", "0x1200": "accelerator"}
# Vendors that make nothing but AI accelerators, whatever PCI class their cards announce.
_ACCELERATOR_VENDORS = frozenset({"0x1e60", "0x1ac1"})
# USB sticks that are common on kits, by (idVendor, idProduct).
USB_ACCELERATORS = {
    ("1a6e", "089a"): ("Google Coral", "Coral USB Accelerator (firmware not loaded yet)"),
    ("18d1", "9302"): ("Google Coral", "Coral USB Accelerator"),
    ("03e7", "2485"): ("Intel", "Neural Compute Stick 2"),
}
_DEVICE_NODE_PATTERNS = ("/dev/accel*", "/dev/apex_*", "/dev/hailo*")


def collect() -> AcceleratorsFacts:
    """Return accelerator devices (possibly none), their device nodes and any probe problems."""
    devices, problems = _nvidia_smi()
    skip_vendors = {"0x10de"} if devices else set()  # nvidia-smi already described them, better
    devices += [dev for dev in _pci_devices() if dev.vendor_id not in skip_vendors]
    devices += _usb_devices()
    nodes = sorted(path for pattern in _DEVICE_NODE_PATTERNS for path in glob.glob(pattern))
    return AcceleratorsFacts(available=True, devices=devices, device_nodes=nodes, problems=problems)


def _nvidia_smi() -> tuple[list[Accelerator], list[str]]:
    """NVIDIA GPUs as nvidia-smi reports them, and why it failed if it did."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return [], []
    try:
        done = subprocess.run(
            [binary, *_NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], [f"nvidia-smi did not answer: {exc}"]
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip().splitlines()
        return [], [f"nvidia-smi failed: {detail[0] if detail else f'exit {done.returncode}'}"]
    return [_nvidia_gpu(line) for line in done.stdout.splitlines() if line.strip()], []


def _nvidia_gpu(line: str) -> Accelerator:
    """One nvidia-smi CSV line: name, memory.total (MiB), driver_version, uuid."""
    cells = [cell.strip() for cell in line.split(",")]
    name, memory, driver, uuid = (cells + [""] * 4)[:4]
    return Accelerator(
        vendor="NVIDIA",
        name=name,
        kind="gpu",
        memory_bytes=int(memory) * 1024 * 1024 if memory.isdigit() else None,
        driver=driver or None,
        uuid=uuid or None,
        source="nvidia-smi",
    )


def _pci_devices() -> list[Accelerator]:
    devices = (_pci_device(path) for path in sorted(PCI_DEVICES.glob("*")))
    return [device for device in devices if device is not None]


def _pci_device(path: Path) -> Accelerator | None:
    """Describe a PCI function if it is a display controller or an AI accelerator."""
    vendor = read_text(path / "vendor") or ""
    kind = _PCI_CLASSES.get((read_text(path / "class") or "")[:6])
    if kind is None and vendor in _ACCELERATOR_VENDORS:
        kind = "accelerator"
    if kind is None:
        return None
    driver = path / "driver"
    vendor_name = PCI_VENDORS.get(vendor, f"vendor {vendor}")
    device = read_text(path / "device")
    return Accelerator(
        vendor=vendor_name,
        name=f"{vendor_name} {kind} {device}",
        kind=kind,
        vendor_id=vendor,
        device_id=device,
        pci_address=path.name,
        driver=driver.resolve().name if driver.exists() else None,
        source="pci",
    )


def _usb_devices() -> list[Accelerator]:
    found: list[Accelerator] = []
    for path in sorted(USB_DEVICES.glob("*")):
        ids = (read_text(path / "idVendor") or "", read_text(path / "idProduct") or "")
        if ids in USB_ACCELERATORS:
            vendor, name = USB_ACCELERATORS[ids]
            found.append(
                Accelerator(vendor=vendor, name=name, kind="accelerator", usb_id=":".join(ids), source="usb")
            )
    return found
