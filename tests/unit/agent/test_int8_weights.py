"""Which INT8 weight range a kit's own CPU runs accurately (used by the on-kit quantize job)."""

from __future__ import annotations

import pytest

from agent.facts import cpu


@pytest.mark.parametrize(
    ("arch", "flags", "reduced"),
    [
        ("x86_64", {"avx2", "fma"}, True),  # vpmaddubsw adds u8×s8 pairs into int16 and saturates
        ("x86_64", {"avx2", "avx512f", "avx512bw"}, True),  # AVX-512 without VNNI saturates the same way
        ("amd64", {"sse4_1"}, True),
        ("x86_64", {"avx2", "avx512f", "avx512_vnni"}, False),  # vpdpbusd accumulates in int32
        ("x86_64", {"avx2", "avx_vnni"}, False),
        ("x86_64", {"avx512_vnni", "amx_tile", "amx_int8"}, False),
        ("aarch64", {"asimd", "asimddp"}, False),
        ("aarch64", {"asimd"}, False),  # ARM kernels widen to 16 bits before adding: nothing saturates
        ("armv7l", {"neon"}, False),
    ],
)
def test_seven_bit_weights_only_where_the_int8_kernels_saturate(
    arch: str, flags: set[str], reduced: bool
) -> None:
    assert cpu.int8_needs_reduced_range(arch, flags) is reduced
