"""Save and load fitted skprune estimators without pickle: loading runs no code.

:func:`save` writes one file, a zip container (``ZIP_DEFLATED``) of three parts:

- ``manifest.json``: the format name and version (2), the estimator's registry
  name, the versions of skprune, torch, skorch, scikit-learn, numpy and
  safetensors that wrote it, and the SHA-256 checksum and size of the other parts;
- ``estimator.json``: everything but numbers in bulk, as JSON: the estimator's
  parameters and fitted attributes, the fitted skorch net's parameters, history,
  optimizer settings and its callbacks' state;
- ``arrays.safetensors``: every array and tensor, stored once per distinct
  content; boolean masks packed to bits. Pruned weights are zeros, which the
  container's compression all but removes.

Every object in the JSON is a record of a type in an explicit registry
(:mod:`skprune.persistence._registry`), named by a stable registry name such as
``"skprune.PrunedClassifier"`` or ``"torch.nn.CrossEntropyLoss"``, not by a
module path, and holding data-only fields (numbers, strings, arrays, other
records). :func:`load`:

- reads every part through a bounded reader, after checking the sizes the
  manifest declares against ``max_bytes``, and the JSON's nesting depth;
- lists every name the file uses before it builds anything: a name the registry
  does not hold (a user's own module, criterion, optimizer, callback or
  importance function) is refused with :class:`UntrustedTypeError` unless the
  caller lists it in ``trusted=``; checking a name is a dict lookup, which
  imports nothing;
- adds up what every array will take, from its declared shape and dtype, each
  checked against the stored bytes it points to, before allocating any;
- rebuilds each object through its registry entry, from its checked fields only:
  no ``__dict__`` is restored from the file, no function it names is called,
  and where skorch expects a class (module, criterion, optimizer, dataset, data
  loaders, learning-rate policies) only a registered class of that kind, or a
  trusted one, is passed;
- checks the arrays against the structure they claim: masks against the
  weights they mask, CSR indices within their shape, finite weights.

The fitted net is rebuilt without training: the skorch net is constructed from
its saved parameters and initialised (under a private random state, its
module's size checked on torch's meta device first), its module is shrunk to the
saved shapes when structured pruning shrank it, the saved weights are put in and
the pruning callback's state, the history and the fitted attributes restored.
The optimizer starts from its saved hyper-parameters with an empty state,
unless the file was saved with ``include_optimizer=True``.

Any malformed file raises :class:`ModelFileError` (a ``ValueError``) naming the
part at fault. Files of format version 1 (skprune before this registry) are
refused with a message that says how to convert them; they are not read. The
checksums detect truncated and corrupted files; they are not signatures: a
file's safety comes from the registry, not from them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from numbers import Integral

import torch

from ..exceptions import ModelFileError, UntrustedTypeError
from ._container import (
    ARRAYS_PART,
    DEFAULT_MAX_BYTES,
    FORMAT,
    FORMAT_VERSION,
    JSON_SHARE,
    REFUSED_FIELDS,
    STATE_PART,
    dumps,
    parse_json,
    read_arrays,
    read_container,
    write_container,
)
from ._registry import ESTIMATORS, REGISTRY
from ._values import Decoder, Encoder, name_of, survey

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ESTIMATORS",
    "FORMAT_VERSION",
    "ModelFileError",
    "UntrustedTypeError",
    "load",
    "save",
]


def save(
    estimator,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    include_optimizer: bool = False,
) -> None:
    """Save a skprune estimator to a file that :func:`load` reads without pickle.

    Parameters
    ----------
    estimator : PrunedClassifier, PrunedClassifierCV, PrunedRegressor, \
            CompressedClassifier or CompressedRegressor
        Fitted or not; these classes, not subclasses.
    path : str or path-like
        The file to write (the ``.skprune`` suffix is a convention).
    overwrite : bool, default=False
        Replace an existing file; otherwise an existing ``path`` raises
        ``FileExistsError``.
    include_optimizer : bool, default=False
        Also save the optimizer's state (Adam's moments: twice the size of the
        weights), to continue training exactly where it stopped. Without it the
        optimizer's learning rates are kept and its state starts empty.

    Raises
    ------
    TypeError
        For an estimator of another class, a parameter value that cannot be
        written by name (a lambda, a module or criterion instance), or an
        attribute the registry does not know.
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import zipfile
    >>> from skprune import save
    >>> from skprune.persistence import ESTIMATORS
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=1, module__hidden_layer_sizes=(8,)
    ... )
    >>> clf = PrunedClassifier(net, prune_ratio=0.8, random_state=0).fit(X, y)
    >>> ESTIMATORS
    ('skprune.PrunedClassifier', 'skprune.PrunedRegressor', \
'skprune.PrunedClassifierCV', 'skprune.CompressedClassifier', \
'skprune.CompressedRegressor')
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "clf.skprune")
    ...     save(clf, path)
    ...     print(zipfile.ZipFile(path).namelist())
    ...     save(clf, path, overwrite=True)  # without it, FileExistsError
    ['manifest.json', 'estimator.json', 'arrays.safetensors']

    The net alone is not one of them:

    >>> with tempfile.TemporaryDirectory() as folder:
    ...     save(net, os.path.join(folder, "net.skprune"))
    Traceback (most recent call last):
    ...
    TypeError: skprune.save handles ['PrunedClassifier', 'PrunedRegressor', \
'PrunedClassifierCV', 'CompressedClassifier', 'CompressedRegressor'], got \
NeuralNetClassifier; use pickle or joblib for other objects.
    """
    path = os.fspath(path)
    entry = REGISTRY.by_class.get(type(estimator))
    if entry is None or entry.role != "estimator":
        raise TypeError(
            f"skprune.save handles {[n.removeprefix('skprune.') for n in ESTIMATORS]}, "
            f"got {type(estimator).__name__}; use pickle or joblib for other objects."
        )
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} exists; pass overwrite=True to replace it.")
    encoder = Encoder(
        {cls: (e.name, e.fields) for cls, e in REGISTRY.by_class.items()},
        REGISTRY.ref_names,
        {"include_optimizer": bool(include_optimizer)},
    )
    document = {"estimator": encoder.encode(estimator, "estimator")}
    parts = {STATE_PART: dumps(document), ARRAYS_PART: encoder.arrays_part()}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "estimator": entry.name,
        "versions": _versions(),
        "include_optimizer": bool(include_optimizer),
    }
    write_container(path, manifest, parts)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import skprune

    versions = {"skprune": skprune.__version__}
    for package in ("torch", "skorch", "scikit-learn", "numpy", "safetensors"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover
            versions[package] = None
    return versions


def load(
    path: str | os.PathLike,
    *,
    trusted: Iterable[str | type] | None = None,
    device: str | torch.device | None = "cpu",
    max_bytes: int = DEFAULT_MAX_BYTES,
):
    """Load an estimator saved by :func:`save`, without pickle and running no code.

    Parameters
    ----------
    path : str or path-like
    trusted : list of str, classes or functions, default=None
        Classes and functions outside the registry that the file may use, by
        name (``"mypkg.MyModule"``, the name the error lists) or as objects: a
        user's own module, criterion, optimizer, callback or importance
        function. Only these are imported. **A trusted class is called with
        keyword arguments chosen by the file** (a module with its
        ``module__*`` parameters, a callback with its parameters), so trust
        only what is safe to call with any arguments.
    device : str or torch.device or None, default="cpu"
        Device the fitted net (and the ``estimator`` parameter's net) is put on;
        None keeps the device it was saved from.
    max_bytes : int, default=4 GiB
        The most memory the file may make ``load`` take: the sizes its parts
        declare, and the arrays rebuilt from them (from their declared shapes),
        must each add up to at most this, and the JSON part to at most
        ``max_bytes // 64``; a fresh module's weights too. Checked before
        anything is inflated or allocated. Raise it for a model larger than
        that whose file you trust.

    Returns
    -------
    estimator
        The saved estimator, predicting exactly as it did.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        When the file is not a skprune model, is truncated or corrupted (a
        checksum does not match), is malformed in any way (the message names
        the part), exceeds ``max_bytes``, or was written by another format
        version.
    UntrustedTypeError
        When the file names classes or functions neither registered nor
        trusted; nothing is imported or built then.
    ImportError
        When a trusted name that the file uses cannot be imported.

    See Also
    --------
    save : Write the file.
    skprune.exceptions.UntrustedTypeError : What a file naming code of its
        own raises, with an example of ``trusted=``.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from skprune import load, save
    >>> from skprune.persistence import DEFAULT_MAX_BYTES, FORMAT_VERSION
    >>> from skprune import PrunedClassifier, default_classifier_net
    >>> from skprune.datasets import make_text_classification
    >>> X, y = make_text_classification(
    ...     100, 500, n_classes=2, n_topic_words=20, random_state=0
    ... )
    >>> net = default_classifier_net().set_params(
    ...     max_epochs=1, module__hidden_layer_sizes=(8,)
    ... )
    >>> clf = PrunedClassifier(net, prune_ratio=0.8, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "clf.skprune")
    ...     save(clf, path)
    ...     loaded = load(path)
    >>> type(loaded).__name__, loaded.sparsity_ == clf.sparsity_
    ('PrunedClassifier', True)
    >>> np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    True

    Files of this format version load; the memory they may take is bounded:

    >>> FORMAT_VERSION, DEFAULT_MAX_BYTES == 4 * 2**30
    (2, True)
    """
    path = os.fspath(path)
    device, trusted_names = _load_options(max_bytes, device, trusted)
    if not os.path.isfile(path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"No such file: {path!r}.")
        raise ModelFileError(f"{path!r} is not a file.")
    manifest, parts = read_container(path, max_bytes)
    try:
        return _decode(manifest, parts, trusted_names, device, max_bytes)
    except ModelFileError as exc:
        raise ModelFileError(f"{path!r}: {exc}") from exc
    except REFUSED_FIELDS as exc:
        if isinstance(exc, UntrustedTypeError):
            raise
        raise ModelFileError(f"{path!r} is malformed: {exc}") from exc


def _load_options(max_bytes, device, trusted) -> tuple:
    """:func:`load`'s ``device`` as a torch device, and its ``trusted`` as a
    dict of names to the objects given (None for a name); ``max_bytes`` checked."""
    if (
        not isinstance(max_bytes, Integral)
        or isinstance(max_bytes, bool)
        or max_bytes < 1
    ):
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}.")
    if device is not None:
        device = torch.device(device)
    trusted_names = {}
    for item in trusted or ():
        if isinstance(item, str):
            trusted_names.setdefault(item, None)
        else:
            trusted_names[name_of(item, "trusted")] = item
    return device, trusted_names


def _decode(manifest: dict, parts: dict, trusted_names: dict, device, max_bytes):
    """The estimator of a container's parts: every name and array size surveyed
    before anything is built, then the manifest's estimator rebuilt."""
    document = parse_json(parts[STATE_PART], STATE_PART)
    arrays = read_arrays(parts[ARRAYS_PART], max_bytes // JSON_SHARE)
    decoder = Decoder(arrays, REGISTRY, trusted_names, device, max_bytes)
    where = f"{STATE_PART}: estimator"
    names, n_bytes = survey(document, arrays, decoder, where)
    if names:
        raise UntrustedTypeError(names)
    if n_bytes > max_bytes:
        raise ModelFileError(
            f"its arrays would take {n_bytes} bytes once loaded, more than "
            f"max_bytes={max_bytes}; pass a larger max_bytes if you trust it."
        )
    record = document.get("estimator") if isinstance(document, dict) else None
    if not (
        isinstance(record, dict)
        and set(document) == {"estimator"}
        and record.get("__type__") in ESTIMATORS
        and record["__type__"] == manifest.get("estimator")
    ):
        raise ModelFileError(
            f"{STATE_PART} does not hold the {manifest.get('estimator')!r:.80} "
            "its manifest names."
        )
    return decoder.decode(record, where)
