"""The bundle format (agent/toolkit/bundles.py): a bundle verifies only as it was signed, and each
way of tampering with it is refused with its own reason, before anything is extracted."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from agent.toolkit import bundlesign as bs
from agent.toolkit.bundlecheck import check_expiry, check_target
from agent.toolkit.bundles import MANIFEST, SIGNATURE, BundleLimits, open_bundle, write_bundle
from agent.toolkit.errors import BadInput, Forbidden, Invalid, Refusal, TooLarge

KIT = "a" * 64


@pytest.fixture
def key() -> bytes:
    return bs.ed25519_generate()


def _trusted(key: bytes) -> Any:
    public = bs.ed25519_public_key(key)
    return bs.ed25519_verifier({bs.ed25519_key_id(public): public})


def _manifest(key: bytes, **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "in",
        "signer": bs.ed25519_signer_info(bs.ed25519_public_key(key)),
        "targets": [KIT],
        "sequence": 1,
        "expires_at": time.time() + 3600,
        "actions": [],
    }
    return body | extra


def _bundle(tmp_path: Path, key: bytes, **extra: Any) -> Path:
    (tmp_path / "model.bin").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "img.png").write_bytes(b"\x89PNG" + b"x" * 3000)
    out = tmp_path / "b.kfb"
    files = [("models/m.onnx", tmp_path / "model.bin"), ("datasets/d/img.png", tmp_path / "img.png")]
    write_bundle(out, _manifest(key, **extra), files, bs.ed25519_signer(key))
    return out


def _members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]


def _rewrite(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)


def _signed_raw(tmp_path: Path, key: bytes, payload: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A bundle written by hand (as an attacker would), its manifest listing `payload` and signed."""
    import hashlib

    listed = [
        {"path": i.name, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for i, d in payload
        if i.isreg()
    ]
    body = json.dumps(_manifest(key, format="kitfleet-bundle/1", members=listed, created_at=0)).encode()
    out = tmp_path / "raw.kfb"
    _rewrite(
        out,
        [
            (tarfile.TarInfo(MANIFEST), body),
            (tarfile.TarInfo(SIGNATURE), bs.ed25519_signer(key)(body)),
            *payload,
        ],
    )
    return out


def test_a_bundle_verifies_and_extracts_what_was_put_in(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    bundle = open_bundle(path, _trusted(key))
    assert bundle.member_paths() == ["files/models/m.onnx", "files/datasets/d/img.png"]
    assert bundle.kind == "in"
    assert bundle.sequence == 1
    written = bundle.extract_to(tmp_path / "out")
    assert written[0].read_bytes() == (tmp_path / "model.bin").read_bytes()
    import hashlib

    assert bundle.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bundle_signed_by_an_unknown_key_is_refused(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    with pytest.raises(Forbidden) as refused:
        open_bundle(path, _trusted(bs.ed25519_generate()))
    assert refused.value.error == "unknown_signer"


def test_a_key_that_claims_a_trusted_key_id_fails_the_signature(tmp_path: Path, key: bytes) -> None:
    other = bs.ed25519_generate()
    trusted_public = bs.ed25519_public_key(key)
    # an impostor writes the trusted key's id into its signer block and signs with its own key
    forged = _manifest(other, signer=bs.ed25519_signer_info(trusted_public))
    (tmp_path / "f").write_bytes(b"x")
    write_bundle(tmp_path / "forged.kfb", forged, [("f", tmp_path / "f")], bs.ed25519_signer(other))
    with pytest.raises(Forbidden) as refused:
        open_bundle(tmp_path / "forged.kfb", _trusted(key))
    assert refused.value.error == "bad_signature"


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("member", [MANIFEST, SIGNATURE, "files/models/m.onnx", "files/datasets/d/img.png"])
def test_one_byte_flipped_in_any_member_is_refused(tmp_path: Path, key: bytes, member: str) -> None:
    path = _bundle(tmp_path, key)
    with tarfile.open(path) as tar:
        info = tar.getmember(member)
    _flip(path, info.offset_data + info.size // 2)
    with pytest.raises(Refusal) as refused:
        open_bundle(path, _trusted(key))
    # a flip in the manifest may leave it unreadable (no signer to find) or only unsigned
    assert refused.value.error in ("bad_signature", "unknown_signer", "member_hash_mismatch")
    if member.startswith("files/"):
        assert refused.value.error == "member_hash_mismatch"
        assert member in refused.value.message


def test_a_byte_flipped_in_a_header_is_refused(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    with tarfile.open(path) as tar:
        info = tar.getmember("files/models/m.onnx")
    _flip(path, info.offset + 2)  # the member's name in its header
    with pytest.raises(Refusal):
        open_bundle(path, _trusted(key))


@pytest.mark.parametrize(
    "where", ["in the manifest", "in the signature", "in a payload", "in the end marker"]
)
def test_a_truncated_bundle_is_refused(tmp_path: Path, key: bytes, where: str) -> None:
    path = _bundle(tmp_path, key)
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    last = members[-1]
    cut = {
        "in the manifest": members[0].offset_data + 10,
        "in the signature": members[1].offset_data + 10,
        "in a payload": members[2].offset_data + members[2].size // 2,
        "in the end marker": last.offset_data + -(-last.size // 512) * 512 + 1023,
    }[where]
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(BadInput) as refused:
        open_bundle(path, _trusted(key))
    assert refused.value.error == "bundle_truncated"


def test_a_bundle_for_another_kit_and_an_expired_one_are_refused(tmp_path: Path, key: bytes) -> None:
    bundle = open_bundle(_bundle(tmp_path, key, expires_at=time.time() - 1), _trusted(key))
    with pytest.raises(Forbidden) as other:
        check_target(bundle.manifest, "b" * 64)
    assert other.value.error == "bundle_not_for_this_kit"
    check_target(bundle.manifest, KIT)
    with pytest.raises(Forbidden) as expired:
        check_expiry(bundle.manifest)
    assert expired.value.error == "bundle_expired"


@pytest.mark.parametrize(
    "name", ["files/../../etc/passwd", "/etc/passwd", "files/a/../../x", "files//x", "x.onnx"]
)
def test_a_path_traversal_member_is_refused_even_when_signed(tmp_path: Path, key: bytes, name: str) -> None:
    path = _signed_raw(tmp_path, key, [(tarfile.TarInfo(name), b"owned")])
    with pytest.raises(Invalid) as refused:
        open_bundle(path, _trusted(key))
    assert refused.value.error == "bad_member_name"
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE])
def test_a_link_or_device_member_is_refused(tmp_path: Path, key: bytes, kind: bytes) -> None:
    link = tarfile.TarInfo("files/models/m.onnx")
    link.type, link.linkname = kind, "/etc/shadow"
    path = _signed_raw(tmp_path, key, [(link, b"")])
    with pytest.raises(Invalid) as refused:
        open_bundle(path, _trusted(key))
    assert refused.value.error == "bad_member_type"


def test_an_unlisted_member_is_refused(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    members = _members(path)
    extra = tarfile.TarInfo("files/extra.sh")
    _rewrite(path, [*members, (extra, b"#!/bin/sh\n")])
    with pytest.raises(Invalid) as refused:
        open_bundle(path, _trusted(key))
    assert refused.value.error == "unlisted_member"


def test_members_out_of_order_are_refused(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    members = _members(path)
    _rewrite(path, [members[1], members[0], *members[2:]])
    with pytest.raises(Invalid) as refused:
        open_bundle(path, _trusted(key))
    assert refused.value.error == "bad_member_order"


def test_size_caps_are_checked_before_reading(tmp_path: Path, key: bytes) -> None:
    path = _bundle(tmp_path, key)
    with pytest.raises(TooLarge):
        open_bundle(path, _trusted(key), BundleLimits(max_total_bytes=1000))
    with pytest.raises(Invalid):
        open_bundle(path, _trusted(key), BundleLimits(max_member_bytes=100))


def test_a_receipt_signed_by_a_kit_key_verifies_only_against_its_pinned_certificate(tmp_path: Path) -> None:
    from agent.identity import load_or_create

    (tmp_path / "kit").mkdir()
    (tmp_path / "impostor").mkdir()
    kit = load_or_create(tmp_path / "kit")
    impostor = load_or_create(tmp_path / "impostor")
    cert = kit.cert_path.read_text()
    manifest = _manifest(
        bs.ed25519_generate(), kind="receipt", signer={"alg": bs.ECDSA_P256, "device_id": kit.device_id}
    )
    (tmp_path / "r").write_bytes(b"results")
    out = tmp_path / "r.kfr"
    write_bundle(out, manifest, [("r", tmp_path / "r")], bs.certificate_signer(kit.key_path.read_bytes()))
    assert open_bundle(out, bs.certificate_verifier(cert, kit.device_id)).kind == "receipt"
    with pytest.raises(Forbidden):
        bs.certificate_verifier(cert, impostor.device_id)
    forged = tmp_path / "forged.kfr"
    write_bundle(
        forged, manifest, [("r", tmp_path / "r")], bs.certificate_signer(impostor.key_path.read_bytes())
    )
    with pytest.raises(Forbidden):
        open_bundle(forged, bs.certificate_verifier(cert, kit.device_id))
