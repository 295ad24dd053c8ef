"""skprune.load from the attacker's side: hostile files run nothing and stay bounded.

Each test forges a file the way an attacker would, by editing a valid saved
file's JSON or arrays and recomputing the manifest's checksums so that the
parser is reached, and asserts that loading raises ``ModelFileError`` or
``UntrustedTypeError`` and that nothing ran: no sentinel file, no new
directory, no new module in ``sys.modules``, memory bounded.
"""

import contextlib
import hashlib
import json
import os
import struct
import sys
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import small_net

import skprune
from skprune import PrunedClassifier
from skprune.persistence import ModelFileError, UntrustedTypeError

# forging ------------------------------------------------------------------------


def read_parts(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_parts(path, parts: dict[str, bytes], fix_checksums=True) -> None:
    """Write ``parts`` as a zip, with the manifest's checksums and sizes made to
    match them so that the loader gets past its integrity checks."""
    manifest = None
    if fix_checksums and "manifest.json" in parts:
        # A mutated manifest that is not JSON has no checksums to make match.
        with contextlib.suppress(ValueError):
            manifest = json.loads(parts["manifest.json"])
    if isinstance(manifest, dict) and isinstance(manifest.get("parts"), dict):
        for name, record in manifest["parts"].items():
            if name in parts and isinstance(record, dict):
                record["sha256"] = hashlib.sha256(parts[name]).hexdigest()
                record["bytes"] = len(parts[name])
        parts = {**parts, "manifest.json": json.dumps(manifest).encode()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def arrays_header(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def arrays_part(header: dict, buffer: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + buffer


def forge(path, document=None, arrays=None) -> None:
    """Rewrite a saved file through ``document(doc) -> doc`` (the JSON) and
    ``arrays(header, buffer) -> (header, buffer)`` (the safetensors part)."""
    parts = read_parts(path)
    if document is not None:
        parts["estimator.json"] = json.dumps(
            document(json.loads(parts["estimator.json"]))
        ).encode()
    if arrays is not None:
        parts["arrays.safetensors"] = arrays_part(
            *arrays(*arrays_header(parts["arrays.safetensors"]))
        )
    write_parts(path, parts)


def nodes(node, predicate):
    """Every dict in a JSON document for which ``predicate`` holds."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if predicate(item):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def net_params(document) -> dict:
    """The fitted net's parameters in a PrunedClassifier's document."""
    return document["estimator"]["fields"]["fitted"]["estimator_"]["fields"]["params"]


def set_array(header, buffer, key, values: np.ndarray):
    """Overwrite a stored array's bytes in place (same size)."""
    begin, end = header[key]["data_offsets"]
    raw = np.ascontiguousarray(values).tobytes()
    assert len(raw) == end - begin
    return header, buffer[:begin] + raw + buffer[end:]


# fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(text_data):
    X, y = text_data
    clf = PrunedClassifier(small_net(), prune_ratio=0.9, random_state=0).fit(X, y)
    return clf, clf.compress()


@pytest.fixture
def saved(models, tmp_path):
    """A valid saved classifier in its own directory, loaded once (so that what
    loading imports is imported before the attack)."""
    path = tmp_path / "files" / "m.skprune"
    path.parent.mkdir()
    skprune.save(models[0], path)
    skprune.load(path)
    return path


@pytest.fixture
def saved_compressed(models, tmp_path):
    path = tmp_path / "files" / "c.skprune"
    path.parent.mkdir()
    skprune.save(models[1], path)
    skprune.load(path)
    return path


@pytest.fixture
def nothing_runs(tmp_path, monkeypatch):
    """Run in an empty working directory; afterwards, assert that no file or
    directory appeared in it or beside the model, and no module was imported."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def snapshot():
        return {
            os.path.join(root, name)
            for root, dirs, files in os.walk(tmp_path)
            for name in dirs + files
        }

    state = {}

    def start():
        state["files"], state["modules"] = snapshot(), set(sys.modules)

    yield start
    assert state, "the test did not start watching"
    assert snapshot() == state["files"]
    assert set(sys.modules) == state["modules"]


def load_refused(path, error, match=None, **kwargs):
    with pytest.raises(error, match=match) as caught:
        skprune.load(path, **kwargs)
    return caught.value


# code the file names ----------------------------------------------------------------


def test_module_naming_skprunes_own_file_writer_is_refused_before_it_runs(
    saved, tmp_path, nothing_runs
):
    """The attack of issue 14: ``module`` names a skprune function that writes a
    file, with ``module__*`` arguments of the file's choosing."""
    sentinel = tmp_path / "sentinel"

    def attack(document):
        params = net_params(document)
        params["module"] = {"__ref__": "skprune.persistence._container.write_container"}
        params["module__path"] = str(sentinel)
        params["module__manifest"] = {}
        params["module__parts"] = {}
        return document

    forge(saved, attack)
    nothing_runs()
    error = load_refused(saved, UntrustedTypeError)
    assert error.names == ["skprune.persistence._container.write_container"]
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("slot", "name"),
    [
        ("module", "builtins.print"),  # a registered function, never called
        ("module", "torch.optim.SGD"),  # a registered class of another role
        ("criterion", "skprune.MLPModule"),
        ("optimizer", "skprune.importance.magnitude"),
        ("iterator_train", "torch.nn.CrossEntropyLoss"),
        ("callbacks__print_log__sink", "skprune.LazyAdam"),
    ],
)
def test_registered_names_reach_only_the_slots_of_their_role(
    saved, nothing_runs, capsys, slot, name
):
    def attack(document):
        net_params(document)[slot] = {"__ref__": name}
        net_params(document)["module__sep"] = "printed by the file"
        return document

    forge(saved, attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match=rf"{slot}.*not a registered")
    assert "printed by the file" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "reference",
    [
        {"__object__": "subprocess.Popen", "params": {"args": ["touch", "popen"]}},
        {"__ref__": "os.system"},
        {"__ref__": "builtins.eval"},
        {"__ref__": "skprune.persistence._values.import_trusted"},
        {"__ref__": "skprune.modules.MLPModule"},  # a module path, not a registry name
        {"__object__": "skprune.MLPModule", "params": {"n_features": 1}},
    ],
)
def test_names_outside_the_registry_need_trust(saved, nothing_runs, reference):
    def attack(document):
        net_params(document)["module"] = reference
        return document

    forge(saved, attack)
    nothing_runs()
    error = load_refused(saved, UntrustedTypeError)
    assert error.names == [reference.get("__ref__") or reference["__object__"]]
    assert not os.path.exists("popen")


@pytest.mark.parametrize(
    ("record", "error", "match"),
    [
        (
            {"__type__": "skorch.callbacks.Checkpoint", "fields": {}},
            ModelFileError,
            "unknown type 'skorch.callbacks.Checkpoint'",
        ),
        (
            {"__object__": "skorch.callbacks.training.Checkpoint", "params": {}},
            UntrustedTypeError,
            "Checkpoint",
        ),
        (
            {"__object__": "skorch.callbacks.TensorBoard", "params": {}},
            UntrustedTypeError,
            "TensorBoard",
        ),
    ],
)
def test_skorch_callbacks_that_write_files_are_not_loaded(
    saved, tmp_path, nothing_runs, record, error, match
):
    directory = tmp_path / "checkpoints"
    record = json.loads(
        json.dumps(record).replace("{}", json.dumps({"dirname": str(directory)}), 1)
    )

    def attack(document):
        net_params(document)["callbacks"].append(record)
        return document

    forge(saved, attack)
    nothing_runs()
    load_refused(saved, error, match=match)
    assert not directory.exists()


@pytest.mark.parametrize(
    "name",
    [
        "scipy.signal.windows.hann",
        "scipy.odr.ODR",
        "torch.utils.tensorboard.SummaryWriter",
    ],
)
def test_checking_a_name_imports_no_lazy_submodule(saved, nothing_runs, name):
    package = name.rsplit(".", 1)[0]
    assert package not in sys.modules  # the attack needs a module not yet loaded

    def attack(document):
        document["estimator"]["fields"]["params"]["importance"] = {"__ref__": name}
        return document

    forge(saved, attack)
    nothing_runs()
    error = load_refused(saved, UntrustedTypeError)
    assert error.names == [name]
    assert package not in sys.modules


def test_restoring_an_objects_dict_is_not_a_thing_a_file_can_ask(saved, nothing_runs):
    """The version-1 ``__instance__`` record (a class plus its whole ``__dict__``)."""

    def attack(document):
        callbacks = net_params(document)["callbacks"]
        callbacks[0]["__tuple__"][1] = {
            "__instance__": "skprune.Pruning",
            "state": {"masks_": {}, "_next_step": 0},
        }
        return document

    forge(saved, attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match="malformed object")


def test_trusted_name_that_cannot_be_imported_says_so(saved):
    def attack(document):
        document["estimator"]["fields"]["params"]["importance"] = {
            "__ref__": "no_such_package_h14.score"
        }
        return document

    forge(saved, attack)
    with pytest.raises(ImportError, match="no_such_package_h14.score"):
        skprune.load(saved, trusted=["no_such_package_h14.score"])


def test_name_of_thousands_of_dotted_parts_is_answered_at_once(saved, nothing_runs):
    name = "a." * 50_000 + "b"  # 100 KB; a lookup quadratic in the parts takes hours

    def attack(document):
        document["estimator"]["fields"]["params"]["importance"] = {"__ref__": name}
        return document

    forge(saved, attack)
    nothing_runs()
    start = time.perf_counter()
    error = load_refused(saved, UntrustedTypeError, max_bytes=2**30 * 16)
    assert time.perf_counter() - start < 5.0  # linear: milliseconds
    assert error.names == [name]
    assert len(str(error)) < 1_000  # the message shows a prefix of it


# bounded ------------------------------------------------------------------------


def _zero_bomb(n_mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``n_mib`` MiB of zeros (about 1 KB per MiB),
    made from independent flushed segments; and its CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(bytes(2**20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(bytes(2**20), crc)
    return segment * n_mib + compressor.flush(), crc


def _raw_zip(members) -> bytes:
    """A zip of ``(name, deflated bytes, crc, declared file size)`` members,
    written by hand so that a member may understate what it inflates to."""
    out, central = b"", b""
    for name, data, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(data),
                size,
                len(encoded),
                0,
            )
            + encoded
            + data
        )
        central += (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                20,
                20,
                0,
                8,
                0,
                0,
                crc,
                len(data),
                size,
                len(encoded),
                0,
                0,
                0,
                0,
                0,
                offset,
            )
            + encoded
        )
    end = struct.pack(
        "<IHHHHIIH",
        0x06054B50,
        0,
        0,
        len(members),
        len(members),
        len(central),
        len(out),
        0,
    )
    return out + central + end


def _deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("bomb_part", ["estimator.json", "arrays.safetensors"])
def test_member_of_2_mb_inflating_to_2_gib_is_read_bounded(
    saved, nothing_runs, bomb_part
):
    """The member's own header and the manifest both say it is small; it inflates
    to 2 GiB. Only what the manifest declares (plus one byte) is ever inflated."""
    parts = read_parts(saved)
    bomb, crc = _zero_bomb(2048)
    assert len(bomb) < 2_200_000
    declared = len(parts[bomb_part])
    members = [
        (name, _deflated(data), zlib.crc32(data), len(data))
        for name, data in parts.items()
        if name != bomb_part
    ]
    members.append((bomb_part, bomb, crc, declared))  # understates its size
    saved.write_bytes(_raw_zip(members))
    nothing_runs()
    tracemalloc.start()
    try:
        load_refused(saved, ModelFileError, match=bomb_part)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_manifest_declaring_gib_parts_is_refused_before_reading(saved, nothing_runs):
    parts = read_parts(saved)
    manifest = json.loads(parts["manifest.json"])
    manifest["parts"]["arrays.safetensors"]["bytes"] = 5 * 2**30
    parts["manifest.json"] = json.dumps(manifest).encode()
    write_parts(saved, parts, fix_checksums=False)
    nothing_runs()
    tracemalloc.start()
    try:
        load_refused(saved, ModelFileError, match="more than max_bytes=4294967296")
        # Past the cap, the read still stops at what the member holds.
        load_refused(saved, ModelFileError, match="inflate", max_bytes=8 * 2**30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_max_bytes_bounds_the_json_and_can_be_raised(saved):
    size = len(read_parts(saved)["estimator.json"])
    load_refused(saved, ModelFileError, match="max_bytes", max_bytes=size * 64 - 64)
    assert type(skprune.load(saved, max_bytes=size * 64 + 2**20)) is PrunedClassifier
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        skprune.load(saved, max_bytes=0)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda node: node.update(shape=[10**6, 10**6]), "declares shape"),
        (lambda node: node.update(shape=[2**62, 8]), "declares shape"),
        (lambda node: node.update(dtype="<U1000000000"), "unknown dtype"),
        (lambda node: node.update(dtype="object"), "unknown dtype"),
    ],
    ids=["shape-1e12", "shape-2e62x8", "dtype-U1e9", "dtype-object"],
)
def test_packed_mask_or_dtype_declaring_a_huge_array_allocates_nothing(
    saved, nothing_runs, edit, match
):
    def attack(document):
        masks = document["estimator"]["fields"]["fitted"]["masks_"]
        edit(next(iter(masks.values())))
        return document

    forge(saved, attack)
    nothing_runs()
    tracemalloc.start()
    try:
        load_refused(saved, ModelFileError, match=match)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_strings_declaring_a_huge_shape_are_refused(saved, nothing_runs):
    def attack(document):
        document["estimator"]["fields"]["fitted"]["classes_"] = {
            "__strings__": ["x" * 100_000] + [""] * 10_000,
            "shape": [10_001],
        }
        return document

    forge(saved, attack)
    nothing_runs()
    # 10,001 strings of up to 100,000 characters: 4 GB as a numpy array.
    load_refused(saved, ModelFileError, match="max_bytes", max_bytes=2**30)

    def wrong_shape(document):
        document["estimator"]["fields"]["fitted"]["classes_"] = {
            "__strings__": ["a", "b"],
            "shape": [10**12],
        }
        return document

    forge(saved, wrong_shape)
    load_refused(saved, ModelFileError, match="does not hold its shape")


def test_array_entries_referenced_many_times_are_counted_each_time(saved, nothing_runs):
    def attack(document):
        mask = next(iter(document["estimator"]["fields"]["fitted"]["masks_"].values()))
        document["estimator"]["fields"]["fitted"]["pruning_report_"] = [
            {"copy": mask} for _ in range(50_000)
        ]
        return document

    forge(saved, attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match="arrays would take", max_bytes=2**30)


@pytest.mark.parametrize(
    ("param", "value", "match"),
    [
        ("module__n_features", 10**9, "bytes of weights, more than max_bytes"),
        ("module__hidden_layer_sizes", {"__tuple__": [4] * 1_000_000}, "layers"),
    ],
)
def test_module_parameters_asking_for_a_huge_module_build_nothing(
    saved, nothing_runs, param, value, match
):
    """The fresh module is sized on torch's meta device, its layers counted
    against the saved state, before anything is allocated for it."""

    def attack(document):
        net_params(document)[param] = value
        return document

    forge(saved, attack)
    nothing_runs()
    start = time.perf_counter()
    load_refused(saved, ModelFileError, match=match)
    assert time.perf_counter() - start < 5.0  # a million layers would take minutes


def test_json_nested_100000_deep_is_refused(saved, nothing_runs):
    parts = read_parts(saved)
    parts["estimator.json"] = b"[" * 100_000 + b"]" * 100_000
    write_parts(saved, parts)
    nothing_runs()
    load_refused(saved, ModelFileError, match="estimator.json is not valid JSON")
    # Shallow enough for the parser, too deep for the decoder's recursion.
    parts["estimator.json"] = b'{"estimator":' + b'{"a":' * 70 + b"1" + b"}" * 70 + b"}"
    write_parts(saved, parts)
    load_refused(saved, ModelFileError, match="nests deeper than 64 levels")


def test_safetensors_header_with_offsets_past_its_end_is_refused(saved, nothing_runs):
    def attack(header, buffer):
        key = next(k for k in header if k != "__metadata__")
        header[key]["data_offsets"] = [0, 2**40]
        header[key]["shape"] = [2**40 // 4]
        return header, buffer

    forge(saved, arrays=attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match="do not fit")


# the structure arrays claim ---------------------------------------------------------


def _first_mask(document):
    return next(iter(document["estimator"]["fields"]["fitted"]["masks_"].values()))


def test_mask_whose_shape_is_not_its_weights_is_refused(saved, nothing_runs):
    def transposed(document):
        for mask in nodes(
            document, lambda n: n.get("dtype") == "bool" and "shape" in n
        ):
            if len(mask["shape"]) == 2:
                mask["shape"] = mask["shape"][::-1]
        return document

    forge(saved, transposed)
    nothing_runs()
    load_refused(saved, ModelFileError, match=r"masks_\['layers.0.weight'\]")


def test_mask_disagreeing_with_the_pruned_weights_is_refused(saved, nothing_runs):
    """A mask that claims kept weights where the weight is zero predicts silently
    wrong; a forged one is refused."""

    def attack(header, buffer):
        document = json.loads(read_parts(saved)["estimator.json"])
        key = _first_mask(document)["__array__"]
        packed = np.frombuffer(
            buffer,
            np.uint8,
            count=header[key]["shape"][0],
            offset=header[key]["data_offsets"][0],
        )
        return set_array(header, buffer, key, ~packed)

    forge(saved, arrays=attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match="masks_")


def test_nan_weights_are_refused(saved, nothing_runs):
    def attack(header, buffer):
        document = json.loads(read_parts(saved)["estimator.json"])
        state = document["estimator"]["fields"]["fitted"]["estimator_"]["fields"][
            "fitted"
        ]["module_state"]
        key = state["layers.1.weight"]["__tensor__"]
        n = int(np.prod(state["layers.1.weight"]["shape"]))
        return set_array(header, buffer, key, np.full(n, np.nan, np.float32))

    forge(saved, arrays=attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match=r"module_state\['layers.1.weight'\].*NaN")


def test_history_that_is_not_a_list_of_dicts_is_refused(saved, nothing_runs):
    def attack(document):
        fitted = document["estimator"]["fields"]["fitted"]["estimator_"]["fields"]
        fitted["fitted"]["history"] = [1, 2, 3]
        return document

    forge(saved, attack)
    nothing_runs()
    load_refused(saved, ModelFileError, match="history")


def _sparse_weight(document):
    network = document["estimator"]["fields"]["params"]["network"]["fields"]
    return next(w for w in network["weights"] if "__sparse__" in w)


def _private_copy(weight: dict, part: str, change):
    """A forgery of one CSR array of ``weight``: its bytes changed by ``change``
    and stored under a new key, since entries are shared by content."""

    def arrays(header, buffer):
        key = weight[part]["__array__"]
        dtype = np.dtype(weight[part]["dtype"])
        begin, end = header[key]["data_offsets"]
        values = change(np.frombuffer(buffer[begin:end], dtype).copy())
        header["forged"] = {
            **header[key],
            "data_offsets": [len(buffer), len(buffer) + end - begin],
        }
        return header, buffer + values.astype(dtype).tobytes()

    def document(document):
        _sparse_weight(document)[part]["__array__"] = "forged"
        return document

    return document, arrays


@pytest.mark.parametrize(
    "index",
    [lambda n: n, lambda n: -1, lambda n: 2**31 - 1],
    ids=["n_columns", "minus-one", "int32-max"],
)
def test_compressed_model_with_a_csr_index_past_its_columns_is_refused(
    saved_compressed, models, nothing_runs, index
):
    """Such a weight made the compiled kernel write outside its array (SIGSEGV)."""
    # The file holds each weight in its smaller form: CSR here.
    assert any(sp.issparse(w) for w in models[1].network.__getstate__()["weights"])
    weight = _sparse_weight(json.loads(read_parts(saved_compressed)["estimator.json"]))

    def change(indices):
        indices[len(indices) // 2] = index(weight["shape"][1])
        return indices

    forge(saved_compressed, *_private_copy(weight, "indices", change))
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="CSR column indices")


def test_csr_whose_indptr_does_not_fit_its_shape_is_refused(
    saved_compressed, nothing_runs
):
    def more_rows(document):
        weight = _sparse_weight(document)
        weight["shape"] = [weight["shape"][0] + 5, weight["shape"][1]]
        return document

    forge(saved_compressed, more_rows)
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="indptr must have")


def test_csr_whose_indptr_decreases_is_refused(saved_compressed, nothing_runs):
    weight = _sparse_weight(json.loads(read_parts(saved_compressed)["estimator.json"]))

    def decreasing(indptr):
        middle = len(indptr) // 2
        indptr[middle] = indptr[-1] + 1  # then back down to the end
        return indptr

    forge(saved_compressed, *_private_copy(weight, "indptr", decreasing))
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="indptr must increase")


def test_compact_network_whose_layers_do_not_chain_is_refused(
    saved_compressed, nothing_runs
):
    def attack(document):
        network = document["estimator"]["fields"]["params"]["network"]["fields"]
        network["biases"] = network["biases"][::-1]
        return document

    forge(saved_compressed, attack)
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="CompactMLP")


# files of the first format ------------------------------------------------------------


def test_version_1_files_are_refused_with_how_to_convert_them(saved):
    parts = read_parts(saved)
    manifest = json.loads(parts["manifest.json"])
    manifest["format_version"] = 1
    parts["manifest.json"] = json.dumps(manifest).encode()
    write_parts(saved, parts)
    error = load_refused(saved, ModelFileError, match="format version 1")
    assert "joblib.dump" in str(error) and "skprune.save" in str(error)


# block-csr: files hold the CSR weight; its blocks are rebuilt and checked at load


def _first_layout(layout):
    def document(document):
        network = document["estimator"]["fields"]["params"]["network"]["fields"]
        network["layouts"][0] = layout
        return document

    return document


def test_file_asking_for_blocks_rebuilds_them_and_predicts_the_same(
    saved_compressed, models, text_data
):
    forge(saved_compressed, _first_layout("block-csr"))
    loaded = skprune.load(saved_compressed)
    assert loaded.network.layouts[0] == "block-csr"
    X = text_data[0][:40]
    np.testing.assert_allclose(
        loaded.decision_function(X), models[1].decision_function(X), rtol=1e-5,
        atol=1e-6,
    )  # fmt: skip


def test_blocks_from_a_csr_index_past_its_columns_are_refused(
    saved_compressed, nothing_runs
):
    document = json.loads(read_parts(saved_compressed)["estimator.json"])
    weight = _sparse_weight(document)
    network = document["estimator"]["fields"]["params"]["network"]["fields"]
    assert weight == network["weights"][0]  # the blocks are made of the first layer
    forge(saved_compressed, _first_layout("block-csr"))

    def change(indices):
        indices[len(indices) // 2] = weight["shape"][1]
        return indices

    forge(saved_compressed, *_private_copy(weight, "indices", change))
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="CSR column indices")


def test_file_asking_for_blocks_in_a_hidden_layer_is_refused(
    saved_compressed, nothing_runs
):
    def hidden(document):
        network = document["estimator"]["fields"]["params"]["network"]["fields"]
        network["layouts"][-1] = "block-csr"
        return document

    forge(saved_compressed, hidden)
    nothing_runs()
    load_refused(saved_compressed, ModelFileError, match="block-csr")
