"""Fuzzing skprune.load: a mutated model file loads or raises one of two errors.

hypothesis mutates valid saved files (a weight-pruned, a neuron-pruned and a
cross-validated classifier, a compressed classifier and a compressed
regressor, fitted once per module on 60 x 30 data for 2 epochs):

- raw bytes: flipped, inserted, overwritten, truncated (the checksums then
  catch most of it);
- with the manifest's checksums recomputed, so that the parser is reached: JSON
  values, keys and names replaced, renamed or removed, tagged records forged;
  declared shapes and dtypes; the manifest's declared sizes and version; the
  safetensors header; zip entries added, removed, renamed or stored.

For every example, ``skprune.load(path, max_bytes=MAX_BYTES)`` returns one of
skprune's estimators or raises ``ModelFileError`` / ``UntrustedTypeError``,
never another exception; ``sys.modules`` gains nothing; no file or directory is
created in the working directory or beside the file; and the memory it takes
(traced by ``tracemalloc``) stays under ``PEAK_BYTES``.

The default run draws 560 examples in all (about a minute here). A longer
profile: ``SKPRUNE_FUZZ_EXAMPLES=5000 python -m pytest tests/test_persistence_fuzz.py``
draws that many for each of the four tests. Runs are derandomized and use no
example database, so CI is reproducible.
"""

import copy
import json
import os
import sys
import tempfile
import tracemalloc
import warnings
import zipfile

import pytest
from conftest import small_net
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from skorch.callbacks import EpochScoring
from test_persistence_attacks import arrays_header, arrays_part, read_parts, write_parts

import skprune
from skprune import (
    PrunedClassifier,
    PrunedClassifierCV,
    PrunedRegressor,
    default_regressor_net,
)
from skprune.datasets import make_text_classification
from skprune.persistence import ESTIMATORS, ModelFileError, UntrustedTypeError

#: The cap passed to load: every part, the arrays and the fresh module within it.
MAX_BYTES = 4 * 2**20
#: What one load may take on top of what was allocated before it.
PEAK_BYTES = 3 * MAX_BYTES

_LONG = int(os.environ.get("SKPRUNE_FUZZ_EXAMPLES", "0"))


def fuzz_settings(default: int):
    return settings(
        max_examples=_LONG or default,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


# seeds ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeds():
    """The parts of each seed file, by name."""
    X, y = make_text_classification(
        60, 30, n_classes=3, n_topic_words=3, random_state=0
    )
    net = small_net(max_epochs=2, module__hidden_layer_sizes=(8,))
    weight = PrunedClassifier(
        net.set_params(callbacks=[("acc", EpochScoring("accuracy", on_train=True))]),
        prune_ratio=0.9,
        random_state=0,
    ).fit(X, y)
    neuron = PrunedClassifier(
        small_net(max_epochs=2, module__hidden_layer_sizes=(8,)),
        prune_ratio=0.5,
        granularity="neuron",
        verbose=1,
        random_state=0,
    ).fit(X, y)
    search = PrunedClassifierCV(
        small_net(max_epochs=2, module__hidden_layer_sizes=(8,)),
        prune_ratios=[0.5],
        cv=2,
        random_state=0,
    ).fit(X, y)
    regressor = PrunedRegressor(
        default_regressor_net().set_params(
            max_epochs=2, module__hidden_layer_sizes=(8,)
        ),
        prune_ratio=0.8,
        random_state=0,
    ).fit(X.toarray(), y.astype(float))
    models = {
        "weight": weight,
        "neuron": neuron,
        "cv": search,
        "compressed": weight.compress(),
        "compressed_regressor": regressor.compress(),
    }
    return Seeds({name: _parts_of(model) for name, model in models.items()})


class Seeds(dict):
    """The seed files' parts by name, shown briefly in hypothesis's reports."""

    def __repr__(self) -> str:
        return f"Seeds({sorted(self)})"


def _parts_of(model) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "seed.skprune")
        skprune.save(model, path)
        skprune.load(path, max_bytes=MAX_BYTES)  # the seeds fit the cap
        return read_parts(path)


@pytest.fixture(scope="module")
def place(tmp_path_factory, seeds):
    """Where each example's file is written; the working directory is an empty
    one beside it. Every seed is loaded once first, so that what loading imports
    is imported before any example."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "files").mkdir()
    (root / "cwd").mkdir()
    path = root / "files" / "m.skprune"
    for parts in seeds.values():
        write_parts(path, parts, fix_checksums=False)
        skprune.load(path, max_bytes=MAX_BYTES)
    cwd = os.getcwd()
    os.chdir(root / "cwd")
    tracemalloc.start()
    yield path
    tracemalloc.stop()
    os.chdir(cwd)


def _listing(*directories) -> set[str]:
    return {
        os.path.join(root, name)
        for directory in directories
        for root, dirs, files in os.walk(directory)
        for name in dirs + files
    }


def check_load(path) -> None:
    """The property: an estimator or one of the two errors, nothing else done."""
    modules = set(sys.modules)
    files = _listing(path.parent, os.getcwd())
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result = skprune.load(path, max_bytes=MAX_BYTES)
        event("loaded")
    except (ModelFileError, UntrustedTypeError) as error:
        event(type(error).__name__)  # see --hypothesis-show-statistics
        result = None
    peak = tracemalloc.get_traced_memory()[1] - before
    if result is not None:
        assert f"skprune.{type(result).__name__}" in ESTIMATORS
    assert set(sys.modules) - modules == set()
    assert _listing(path.parent, os.getcwd()) == files
    assert peak < PEAK_BYTES, peak


# raw bytes --------------------------------------------------------------------------


@st.composite
def raw_mutation(draw, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "overwrite", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(chunk)] = chunk
        else:
            del data[at:]
    return bytes(data)


@fuzz_settings(140)
@given(data=st.data())
def test_raw_byte_mutations_load_or_raise_a_model_file_error(seeds, place, data):
    name = data.draw(st.sampled_from(sorted(seeds)))
    write_parts(place, seeds[name], fix_checksums=False)
    place.write_bytes(data.draw(raw_mutation(place.read_bytes())))
    check_load(place)


# the JSON document ---------------------------------------------------------------

NAMES = [
    *ESTIMATORS,
    "skprune.Pruning",
    "skprune.PathPruning",
    "skprune.PruningStep",
    "skprune.CompactMLP",
    "skprune.MLPModule",
    "skprune.LazyAdam",
    "skorch.NeuralNetClassifier",
    "skorch.callbacks.PrintLog",
    "skorch.callbacks.LRScheduler",
    "skorch.callbacks.Checkpoint",
    "torch.nn.CrossEntropyLoss",
    "torch.optim.SGD",
    "builtins.print",
    "os.system",
    "subprocess.Popen",
    "scipy.signal.windows.hann",
    "skprune.persistence._container.write_container",
]
KEYS = [
    "__type__",
    "__ref__",
    "__object__",
    "__array__",
    "__tensor__",
    "__strings__",
    "__sparse__",
    "__dict__",
    "__tuple__",
    "__float__",
    "__scalar__",
    "__dtype__",
    "__device__",
    "fields",
    "params",
    "fitted",
    "shape",
    "dtype",
    "module",
    "callbacks",
    "masks_",
]
DTYPES = ["bool", "uint8", "int64", "float32", "float64", "bfloat16", "<U9", "object"]

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(NAMES + DTYPES + ["nan", "inf", "cpu", "cuda:0"]),
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=4
        )
    ),
    max_leaves=12,
)


def tagged(keys: list[str]):
    """Forged tagged records: names, arrays of the file, shapes and dtypes."""
    shapes = st.lists(st.integers(0, 2**40) | st.integers(0, 40), max_size=4)
    return st.one_of(
        st.builds(lambda n: {"__ref__": n}, st.sampled_from(NAMES)),
        st.builds(
            lambda n, f: {"__type__": n, "fields": f},
            st.sampled_from(NAMES),
            st.dictionaries(
                st.sampled_from(KEYS) | st.text(max_size=6), json_values, max_size=3
            ),
        ),
        st.builds(
            lambda n, p: {"__object__": n, "params": p},
            st.sampled_from(NAMES),
            st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        ),
        st.builds(
            lambda tag, key, d, s: {tag: key, "dtype": d, "shape": s},
            st.sampled_from(["__array__", "__tensor__"]),
            st.sampled_from(keys or ["none"]),
            st.sampled_from(DTYPES),
            shapes,
        ),
        st.builds(lambda s: {"__strings__": ["a", "bb"], "shape": s}, shapes),
    )


def _locations(node, path=()):
    """Paths (tuples of keys and indices) to every value in a JSON document."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_locations(value, (*path, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_locations(value, (*path, index)))
    return found


def _parent(document, path):
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


@st.composite
def json_mutation(draw, document: dict, array_keys: list[str]) -> dict:
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        locations = [p for p in _locations(document) if p]
        if not locations:
            break
        path = draw(st.sampled_from(locations))
        parent, key = _parent(document, path), path[-1]
        kind = draw(
            st.sampled_from(["value", "tagged", "delete", "rename", "shape", "copy"])
        )
        if kind == "value":
            parent[key] = draw(json_values)
        elif kind == "tagged":
            parent[key] = draw(tagged(array_keys))
        elif kind == "delete":
            del parent[key]
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = parent.pop(key)
        elif (
            kind == "shape" and isinstance(parent[key], dict) and "shape" in parent[key]
        ):
            shape = parent[key]["shape"]
            if isinstance(shape, list) and shape:
                at = draw(st.integers(0, len(shape) - 1))
                shape[at] = draw(st.integers(0, 2**62) | st.integers(0, 64))
            else:
                parent[key]["dtype"] = draw(st.sampled_from(DTYPES))
        else:  # a subtree copied somewhere else
            source = draw(st.sampled_from(locations))
            parent[key] = copy.deepcopy(_parent(document, source)[source[-1]])
    return document


@fuzz_settings(260)
@given(data=st.data())
def test_json_mutations_load_or_raise_a_model_file_error(seeds, place, data):
    name = data.draw(st.sampled_from(sorted(seeds)))
    parts = dict(seeds[name])
    document = json.loads(parts["estimator.json"])
    keys = sorted(arrays_header(parts["arrays.safetensors"])[0])
    mutated = data.draw(json_mutation(document, keys))
    parts["estimator.json"] = json.dumps(mutated).encode()
    write_parts(place, parts)
    check_load(place)


# the manifest, the arrays part, the zip ----------------------------------------------


@fuzz_settings(80)
@given(data=st.data())
def test_manifest_and_array_header_mutations_load_or_raise(seeds, place, data):
    name = data.draw(st.sampled_from(sorted(seeds)))
    parts = dict(seeds[name])
    fix = True
    if data.draw(st.booleans()):
        manifest = json.loads(parts["manifest.json"])
        field = data.draw(
            st.sampled_from(["bytes", "format_version", "estimator", "parts"])
        )
        if field == "bytes":
            part = data.draw(st.sampled_from(sorted(manifest["parts"])))
            manifest["parts"][part]["bytes"] = data.draw(
                st.integers(0, 2**40) | st.integers(-5, 10**6) | json_values
            )
            fix = False
        elif field == "parts":
            manifest["parts"] = data.draw(json_values)
            fix = False
        else:
            manifest[field] = data.draw(json_values | st.integers(0, 5))
        parts["manifest.json"] = json.dumps(manifest).encode()
    else:
        header, buffer = arrays_header(parts["arrays.safetensors"])
        key = data.draw(st.sampled_from(sorted(header)))
        entry = header[key]
        field = data.draw(
            st.sampled_from(["dtype", "shape", "data_offsets", "entry", "length"])
        )
        if field == "dtype":
            entry["dtype"] = data.draw(
                st.sampled_from(["F32", "F64", "I64", "U8", "BOOL", "X9"])
            )
        elif field == "shape":
            entry["shape"] = data.draw(
                st.lists(st.integers(0, 2**40) | st.integers(0, 9), max_size=3)
            )
        elif field == "data_offsets":
            entry["data_offsets"] = data.draw(
                st.lists(
                    st.integers(-3, 2**40) | st.integers(0, len(buffer) + 3), max_size=3
                )
            )
        elif field == "entry":
            header[key] = data.draw(json_values)
        raw = arrays_part(header, buffer)
        if field == "length":
            raw = data.draw(st.integers(0, 2**64 - 1)).to_bytes(8, "little") + raw[8:]
        parts["arrays.safetensors"] = raw
    write_parts(place, parts, fix_checksums=fix)
    check_load(place)


@fuzz_settings(80)
@given(data=st.data())
def test_zip_entry_mutations_load_or_raise(seeds, place, data):
    name = data.draw(st.sampled_from(sorted(seeds)))
    parts = dict(seeds[name])
    kind = data.draw(
        st.sampled_from(["add", "remove", "rename", "stored", "duplicate"])
    )
    member = data.draw(st.sampled_from(sorted(parts)))
    if kind == "add":
        names = st.text(
            st.characters(codec="utf-8", exclude_characters="\x00"),
            min_size=1,
            max_size=20,
        )
        parts[data.draw(names)] = data.draw(st.binary(max_size=64))
    elif kind == "remove":
        del parts[member]
    elif kind == "rename":
        parts[
            data.draw(
                st.sampled_from(["estimator.json", "arrays.safetensors", "x", "../up"])
            )
        ] = parts.pop(member)
    write_parts(place, parts, fix_checksums=data.draw(st.booleans()))
    if kind in ("stored", "duplicate"):
        with (
            warnings.catch_warnings(),
            zipfile.ZipFile(place, "a", compression=zipfile.ZIP_STORED) as archive,
        ):
            warnings.simplefilter("ignore", UserWarning)  # zipfile: duplicate name
            archive.writestr(
                member, parts[member] if kind == "duplicate" else b"\0" * 10
            )
    check_load(place)
