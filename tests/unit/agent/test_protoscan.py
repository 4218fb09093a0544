"""The self-contained check walks a model's encoding instead of parsing it (`agent.toolkit.protoscan`,
issue 19). It guards the kit's disk (a tensor kept "in another file" makes ONNX Runtime read that
file), so it must find every tensor the parser-based walk finds, wherever it sits, and refuse
what protobuf refuses. Checked here against protobuf's own parse on the hiding places a hostile
model uses, on every cut of a model, and on thousands of damaged copies.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from agent.toolkit import onnxfile, protoscan
from agent.toolkit.errors import BadInput, Invalid
from tests.onnx_models import classifier

_IMAGE = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])]
_OUT = [helper.make_tensor_value_info("leak", TensorProto.UINT8, [4])]


def _external(name: str, location: str = "../../etc/ssl/private/kit.key") -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.UINT8, dims=[4], data_location=TensorProto.EXTERNAL)
    tensor.external_data.add(key="location", value=location)
    return tensor


def _model(where: str) -> onnx.ModelProto:
    """A model with one tensor kept in another file, put `where` a hostile model would put it."""
    functions: list[onnx.FunctionProto] = []
    nodes = [helper.make_node("Identity", ["secret"], ["leak"])]
    initializers: list[TensorProto] = []
    if where == "initializer":
        initializers = [_external("secret")]
    elif where == "constant":
        nodes = [helper.make_node("Constant", [], ["leak"], value=_external("secret"))]
    elif where == "subgraph":
        branch = helper.make_graph(
            [helper.make_node("Identity", ["deep"], ["o"])],
            "branch",
            [],
            [helper.make_tensor_value_info("o", TensorProto.UINT8, [4])],
            [_external("deep")],
        )
        nodes = [helper.make_node("If", ["yes"], ["leak"], then_branch=branch, else_branch=branch)]
    elif where == "function":
        body = [helper.make_node("Constant", [], ["y"], value=_external("secret"))]
        functions = [helper.make_function("kf", "read", [], ["y"], body, [helper.make_opsetid("", 13)])]
        nodes = [helper.make_node("read", [], ["leak"], domain="kf")]
    graph = helper.make_graph(nodes, "g", _IMAGE, _OUT, initializers)
    if where == "sparse":
        indices = helper.make_tensor("at", TensorProto.INT64, [4], [0, 1, 2, 3])
        graph.sparse_initializer.append(helper.make_sparse_tensor(_external("secret"), indices, [4]))
    return helper.make_model(graph, functions=functions, opset_imports=[helper.make_opsetid("", 13)])


def _parsed_verdict(data: bytes) -> str:
    """What protobuf's parse and the descriptor walk say: "malformed", "external" or "clean"."""
    model = onnxfile._protos().ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:
        return "malformed"
    return "external" if onnxfile.external_data_of(model) else "clean"


def _scanned_verdict(data: bytes) -> str:
    """The walk's verdict, with why when it refuses: "malformed: wire type 3" and so on."""
    try:
        spans = protoscan.external_tensors(data, onnxfile._protos().ModelProto.DESCRIPTOR)
    except protoscan.Malformed as exc:
        return f"malformed: {exc}"
    return "external" if spans else "clean"


def _same(parsed: str, scanned: str) -> bool:
    return scanned.split(":")[0] == parsed


@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph", "function", "sparse"])
def test_a_tensor_in_another_file_is_found_wherever_it_hides(where: str, tmp_path: Path) -> None:
    path = tmp_path / "leak.onnx"
    data = _model(where).SerializeToString()
    path.write_bytes(data)
    for given in (None, data):  # read from the file by the walk, or the bytes a kit holds
        with pytest.raises(Invalid) as refused:
            onnxfile.check_self_contained(path, given)
        assert refused.value.error == "external_data"
        assert "kit.key" in refused.value.message
        assert "'secret'" in refused.value.message or "'deep'" in refused.value.message
    assert _scanned_verdict(data) == _parsed_verdict(data) == "external"


def test_a_kit_that_has_not_imported_onnx_refuses_the_same_way(tmp_path: Path) -> None:
    """The kit's checker loads onnx's generated module alone, never `import onnx`."""
    path = tmp_path / "leak.onnx"
    path.write_bytes(_model("subgraph").SerializeToString())
    check = (
        "import sys; from pathlib import Path; from agent.toolkit import onnxfile\n"
        "from agent.toolkit.errors import Invalid\n"
        "try:\n    onnxfile.check_self_contained(Path(sys.argv[1]))\n"
        "except Invalid as exc:\n    print(exc.message)\n"
        "assert 'onnx' not in sys.modules, 'onnx itself was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check, str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "keeps tensor 'deep' (and 1 more tensors) in another file" in done.stdout, done.stdout


def test_data_location_is_read_as_protobuf_reads_an_int32() -> None:
    """EXTERNAL (1) written as 2**32 + 1, or as an overlong 10-byte varint: protobuf keeps the low
    32 bits, so ONNX Runtime would see EXTERNAL; the walk must too."""
    for value in ((1 << 32) + 1, (1 << 63) + 1):
        tensor = TensorProto(name="t", data_type=TensorProto.UINT8, dims=[1], raw_data=b"\0")
        encoded = tensor.SerializeToString() + bytes([14 << 3]) + _varint(value)
        graph = helper.make_graph([helper.make_node("Identity", ["t"], ["leak"])], "g", _IMAGE, _OUT)
        model = helper.make_model(graph).SerializeToString()
        # the model with the hand-encoded tensor appended to its graph as an initializer (field 5)
        graph_bytes = graph.SerializeToString() + bytes([5 << 3 | 2]) + _varint(len(encoded)) + encoded
        data = _without_graph(model) + bytes([7 << 3 | 2]) + _varint(len(graph_bytes)) + graph_bytes
        assert _parsed_verdict(data) == "external", value
        assert _scanned_verdict(data) == "external", value


def test_a_clean_model_passes_and_every_cut_of_it_is_judged_as_protobuf_judges_it(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    classifier(path, size=8)
    data = path.read_bytes()
    onnxfile.check_self_contained(path)
    onnxfile.check_self_contained(path, data)
    for cut in range(len(data)):
        assert _same(_parsed_verdict(data[:cut]), _scanned_verdict(data[:cut])), cut


@pytest.mark.parametrize("where", ["initializer", "constant", "subgraph", "function", "sparse", "clean"])
def test_damaged_copies_never_hide_a_tensor_protobuf_would_find(where: str, tmp_path: Path) -> None:
    """Random bytes changed, inserted or removed: whatever protobuf's parse makes of the copy,
    the walk agrees (it may refuse a copy protobuf takes only when that copy holds a group,
    which no ONNX writer emits)."""
    if where == "clean":  # a real classifier: weights as raw_data, dims packed
        classifier(tmp_path / "net.onnx", size=4, classes=3)
        original = (tmp_path / "net.onnx").read_bytes()
    else:
        original = _model(where).SerializeToString()
    rng = random.Random(19)
    for _ in range(20000):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.6:
                data[at] = rng.randrange(256)
            elif action < 0.8:
                data.insert(at, rng.randrange(256))
            else:
                del data[at]
        parsed, scanned = _parsed_verdict(bytes(data)), _scanned_verdict(bytes(data))
        if not _same(parsed, scanned):
            assert scanned in _GROUP, (parsed, scanned, bytes(data).hex())


def test_a_model_with_more_fields_than_the_budget_is_parsed_and_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protoscan, "FIELD_BUDGET", 5)
    path = tmp_path / "leak.onnx"
    path.write_bytes(_model("subgraph").SerializeToString())
    with pytest.raises(protoscan.OverBudget):
        protoscan.external_tensors(path.read_bytes(), onnxfile._protos().ModelProto.DESCRIPTOR)
    with pytest.raises(Invalid, match="'deep'"):
        onnxfile.check_self_contained(path)


def test_not_onnx_and_nesting_past_protobufs_limit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    for data in (
        b"PK\x03\x04 a zip, not a model",
        b"\x0f",
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    ):
        path.write_bytes(data)
        with pytest.raises(BadInput, match="not an ONNX model"):
            onnxfile.check_self_contained(path)
    # If nodes inside If nodes, deeper than protobuf's 100 levels (encoded by hand: protobuf
    # itself will not build a message that deep)
    graph = b""
    for _ in range(40):  # graph > node > attribute > graph: three levels each
        attribute = _field(1, b"then_branch") + _field(6, graph)
        graph = _field(1, _field(4, b"If") + _field(5, attribute))
    data = _field(7, graph)
    assert _parsed_verdict(data) == "malformed"
    assert _scanned_verdict(data) == f"malformed: messages nested deeper than {protoscan.MAX_DEPTH}"


def test_a_file_cut_short_while_it_is_walked_reads_as_damaged(tmp_path: Path) -> None:
    path = tmp_path / "net.onnx"
    classifier(path, size=64, classes=300, golden=False)  # larger than one window of the walk
    with path.open("rb") as handle:
        window = protoscan._Window(handle)
        path.write_bytes(path.read_bytes()[: 3 << 20])  # rewritten shorter after it was opened
        with pytest.raises(protoscan.Malformed):
            protoscan._walk(window, onnxfile._protos().ModelProto.DESCRIPTOR)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited field (a message, string or bytes) as protobuf encodes it."""
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _without_graph(model: bytes) -> bytes:
    """A serialized ModelProto with its graph (field 7) left out, the other fields kept."""
    parsed = onnx.ModelProto.FromString(model)
    parsed.ClearField("graph")
    return bytes(parsed.SerializeToString())


_GROUP = ("malformed: wire type 3", "malformed: wire type 4")  # protobuf keeps a group as an unknown field
