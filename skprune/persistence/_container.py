"""The file itself: a zip of a manifest, a JSON document and a safetensors part.

Everything here is bounded before it is allocated: each member is read through
``ZipFile.open(...).read(n + 1)`` for the size its manifest declares (a zip
entry's own ``file_size`` is only what the entry claims), the declared sizes are
checked against the caps first, JSON is checked for nesting depth, and the
safetensors header is parsed here, its offsets checked against the part's
length, so that every array is a view of bytes already read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import zipfile

import numpy as np

from ..exceptions import ModelFileError

FORMAT = "skprune-model"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
STATE_PART = "estimator.json"
ARRAYS_PART = "arrays.safetensors"
PARTS = (STATE_PART, ARRAYS_PART)

#: Default of ``load(max_bytes=...)``: what a file's parts may inflate to, arrays
#: rebuilt from them included. Fits any model that fits in memory comfortably.
DEFAULT_MAX_BYTES = 4 * 2**30
#: The JSON document may take this fraction of ``max_bytes`` (64 MiB by default):
#: parsed JSON takes several times its size in Python objects.
JSON_SHARE = 64
MANIFEST_MAX_BYTES = 64 * 2**10
#: Deeper JSON is refused; skprune's own documents nest about 12 deep.
MAX_DEPTH = 64

#: safetensors dtype codes of the numpy dtypes arrays are stored in.
SAFETENSORS_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "I32": "int32",
    "I64": "int64",
    "U16": "uint16",
    "U32": "uint32",
    "U64": "uint64",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
}


#: What rebuilding an object from a file's fields may raise when the fields are
#: wrong (a constructor's own validation, torch's): each becomes ModelFileError.
REFUSED_FIELDS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    RuntimeError,
    OverflowError,
)


# writing ----------------------------------------------------------------------


def write_container(path: str, manifest: dict, parts: dict[str, bytes]) -> None:
    """Write the zip atomically: a temporary file in the same directory, renamed."""
    manifest = {
        **manifest,
        "parts": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in parts.items()
        },
    }
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skprune-", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it, not 0600
        with (
            os.fdopen(fd, "wb") as file,
            zipfile.ZipFile(
                file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6
            ) as archive,
        ):
            archive.writestr(MANIFEST, dumps(manifest))
            for name, data in parts.items():
                archive.writestr(name, data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps(document) -> bytes:
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()


# reading ----------------------------------------------------------------------


def read_container(path: str, max_bytes: int) -> tuple[dict, dict[str, bytes]]:
    """The manifest and every part, each bounded and checked against its checksum."""
    not_model = f"{path!r} is not a skprune model file"
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(archive, path)
            if MANIFEST not in members:
                raise ModelFileError(f"{not_model} (it has no {MANIFEST}).")
            raw = _read_member(archive, members[MANIFEST], MANIFEST_MAX_BYTES, path)
            if raw is None:
                raise ModelFileError(
                    f"{path!r}: {MANIFEST} is larger than {MANIFEST_MAX_BYTES} bytes."
                )
            manifest = parse_json(raw, f"{path!r}: {MANIFEST}")
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                raise ModelFileError(f"{not_model} (its manifest is not skprune's).")
            _check_version(manifest, path)
            declared = _declared_parts(manifest, members, max_bytes, path)
            parts = {}
            for name, (size, digest) in declared.items():
                data = _read_member(archive, members[name], size, path)
                if data is None or len(data) != size:
                    raise ModelFileError(
                        f"{path!r} is corrupted: part {name!r} does not inflate to "
                        f"the {size} bytes its manifest declares."
                    )
                if hashlib.sha256(data).hexdigest() != digest:
                    raise ModelFileError(
                        f"{path!r} is corrupted or was modified: the checksum of "
                        f"part {name!r} does not match its manifest."
                    )
                parts[name] = data
    except ModelFileError:
        raise
    except Exception as exc:  # a broken zip fails in many ways; all mean the same
        raise ModelFileError(
            f"{not_model}, or it is truncated or corrupted: {exc!r}."
        ) from exc
    return manifest, parts


def _members(archive: zipfile.ZipFile, path: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(infos) > 1 + len(PARTS) or len(set(names)) != len(names):
        raise ModelFileError(
            f"{path!r} is corrupted: it holds the members {sorted(names)[:10]}, "
            f"a skprune model holds {[MANIFEST, *PARTS]}, each once."
        )
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(
                f"{path!r}: member {info.filename!r} uses compression method "
                f"{info.compress_type}; skprune writes deflate only."
            )
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path!r}: member {info.filename!r} is encrypted.")
    return {info.filename: info for info in infos}


def _read_member(archive, info: zipfile.ZipInfo, size: int, path: str):
    """The member's bytes if they inflate to at most ``size``, else None."""
    if info.file_size > size:
        return None
    with archive.open(info) as member:
        data = member.read(size + 1)
    return None if len(data) > size else data


def _check_version(manifest: dict, path: str) -> None:
    version = manifest.get("format_version")
    if version == 1:
        raise ModelFileError(
            f"{path!r} was written in format version 1 (skprune "
            f"{manifest.get('versions', {}).get('skprune')!r}), which this skprune "
            "no longer reads: its loader restored objects in ways a file could "
            "abuse. To convert it, load it with the skprune that wrote it, in an "
            "environment where you trust the file (model = skprune.load(path)), "
            "pickle it there (joblib.dump(model, 'model.joblib')), then with this "
            "skprune: skprune.save(joblib.load('model.joblib'), path, "
            "overwrite=True)."
        )
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path!r}: its format_version {version!r} is not valid.")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path!r} was written in format version {version!r} by a newer "
            f"skprune (versions {manifest.get('versions')}); this skprune "
            f"reads format version {FORMAT_VERSION}. Upgrade skprune."
        )


def _declared_parts(manifest, members, max_bytes: int, path: str) -> dict:
    """Each part's declared size and checksum, all checked against the caps."""
    parts = manifest.get("parts")
    if not isinstance(parts, dict) or set(parts) != set(PARTS):
        listed = sorted(parts) if isinstance(parts, dict) else parts
        raise ModelFileError(
            f"{path!r} is corrupted: its manifest lists the parts {listed!r}, a "
            f"skprune model has {list(PARTS)}."
        )
    if set(members) != {MANIFEST, *PARTS}:
        raise ModelFileError(
            f"{path!r} is corrupted: it holds the members {sorted(members)}, its "
            f"manifest lists {[MANIFEST, *PARTS]}."
        )
    declared = {}
    for name, record in parts.items():
        size = record.get("bytes") if isinstance(record, dict) else None
        digest = record.get("sha256") if isinstance(record, dict) else None
        if not (is_count(size) and isinstance(digest, str)):
            raise ModelFileError(
                f"{path!r}: the manifest's record of part {name!r} is malformed."
            )
        declared[name] = (size, digest)
    json_cap = max_bytes // JSON_SHARE
    if declared[STATE_PART][0] > json_cap:
        raise ModelFileError(
            f"{path!r}: part {STATE_PART!r} declares {declared[STATE_PART][0]} bytes, "
            f"more than the {json_cap} that max_bytes={max_bytes} allows it; pass a "
            "larger max_bytes if you trust the file's size."
        )
    total = sum(size for size, _ in declared.values())
    if total > max_bytes:
        raise ModelFileError(
            f"{path!r}: its parts declare {total} bytes, more than "
            f"max_bytes={max_bytes}; pass a larger max_bytes if you trust the "
            "file's size."
        )
    return declared


def is_count(value) -> bool:
    """A non-negative int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_json(data: bytes, where: str):
    """JSON without NaN literals, nesting at most ``MAX_DEPTH`` deep."""

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    try:
        document = json.loads(data, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelFileError(f"{where} is not valid JSON: {exc!r:.200}") from exc
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelFileError(f"{where} nests deeper than {MAX_DEPTH} levels.")
        if isinstance(node, dict):
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return document


def read_arrays(data: bytes, json_cap: int) -> dict[str, np.ndarray]:
    """The safetensors part as read-only flat views, its header checked entry by
    entry against the part's length before any view is made."""
    where = f"part {ARRAYS_PART!r}"
    if len(data) < 8:
        raise ModelFileError(f"{where} is shorter than its 8-byte header length.")
    header_length = int.from_bytes(data[:8], "little")
    if header_length > min(len(data) - 8, json_cap):
        raise ModelFileError(f"{where} declares a header of {header_length} bytes.")
    header = parse_json(data[8 : 8 + header_length], f"{where}'s header")
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}'s header is not a JSON object.")
    buffer = memoryview(data)[8 + header_length :]
    arrays = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        arrays[key] = _entry_view(key, entry, buffer, where)
    return arrays


def _entry_view(key: str, entry, buffer: memoryview, where: str) -> np.ndarray:
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise ModelFileError(f"{where}: entry {key!r:.80} is malformed.")
    dtype = (
        SAFETENSORS_DTYPES.get(entry["dtype"])
        if isinstance(entry["dtype"], str)
        else None
    )
    shape, offsets = entry["shape"], entry["data_offsets"]
    if (
        dtype is None
        or not isinstance(shape, list)
        or not all(is_count(n) for n in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(is_count(n) for n in offsets)
    ):
        raise ModelFileError(f"{where}: entry {key!r:.80} is malformed.")
    begin, end = offsets
    itemsize = np.dtype(dtype).itemsize
    if not begin <= end <= len(buffer) or end - begin != math.prod(shape) * itemsize:
        raise ModelFileError(
            f"{where}: entry {key!r:.80} declares offsets {offsets} for shape "
            f"{shape} of {dtype}, which do not fit the part's {len(buffer)} bytes."
        )
    return np.frombuffer(buffer[begin:end], dtype=np.dtype(dtype).newbyteorder("<"))
