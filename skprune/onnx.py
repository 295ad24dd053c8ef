"""ONNX export of pruned and compressed models, with the pruned structure removed.

Importing this module registers skl2onnx converters (``update_registered_converter``)
for :class:`~skprune.PrunedClassifier`, :class:`~skprune.PrunedRegressor`,
:class:`~skprune.CompressedClassifier` and :class:`~skprune.CompressedRegressor`,
so that ``skl2onnx.to_onnx`` and ``convert_sklearn`` convert them and any
:class:`~sklearn.pipeline.Pipeline` ending in one; :func:`to_onnx` does the
same in one call. Needs the ``onnx`` extra (``pip install skprune[onnx]``).

What the graph holds is what ``compress()`` keeps (one implementation:
:func:`skprune.compress.compact_mlp`): a ``Gather`` of the input columns the
first layer still reads, then one dense ``MatMul`` and ``Add`` per layer over
the surviving units, with the activation between hidden layers. So structured
pruning (``granularity="neuron"`` or ``"feature"``) makes the graph smaller
and faster. Weight pruning does not: ONNX has no sparse matrix product that
onnxruntime runs fast (it densifies sparse initializers when it loads them),
so the zeros of the surviving layers are stored and multiplied;
``onnxruntime.quantization.quantize_dynamic`` (int8) is the way to shrink such
a graph. ``benchmarks/onnx_export.py`` measures both.

Limits:

- The input is one dense float tensor ``X`` of shape ``(N, n_features)``
  (float32; double input computes in double). onnxruntime takes no sparse
  input: densify a scipy sparse matrix (``X.toarray()``) before ``run``, or
  export the vectorizer with the model so that the graph takes raw text.
- Only :class:`~skprune.MLPModule` nets trained with ``CrossEntropyLoss``
  (classifiers) export, as for ``compress()``; any other module is refused
  with a ``TypeError`` naming it.
- Classifier labels are int64 (integer, boolean or integral float classes)
  or strings.
- A ``TfidfVectorizer`` in front converts with skl2onnx's own converter, which
  splits text with a regular expression (its option ``tokenexp=""`` uses
  scikit-learn's ``token_pattern``) and lower-cases it in a locale (option
  ``locale``; the default ``en_US.UTF-8`` must be installed, ``C.UTF-8`` is on
  most Linux systems). Checked equal to 1e-5 here: the default vectorizer and
  ``ngram_range=(1, 2)``. Not equal: ``sublinear_tf=True`` (a repeated word's
  weight differs) and n-grams across words the token pattern drops (one
  character long); skl2onnx refuses ``strip_accents``. Words with non-ASCII
  letters (``"café"``) tokenize differently (checked with onnxruntime 1.32).
  Test on your own text, or export the model alone and vectorize in Python.

Classifier outputs are skl2onnx's: ``label`` and ``probabilities`` (the
softmax of the logits, as ``predict_proba``), the latter as a list of
dictionaries unless the option ``zipmap`` is False (``options={"zipmap":
False}``, or ``"columns"``). The option ``raw_scores=True`` makes
``probabilities`` hold the logits instead (``decision_function`` is the
logits, or for two classes the second column minus the first).
Regressors output ``variable`` of shape ``(N, n_outputs)``.

Examples
--------
>>> import numpy as np
>>> import onnxruntime as ort
>>> from skprune import PrunedClassifier, default_classifier_net
>>> from skprune.onnx import to_onnx
>>> rng = np.random.RandomState(0)
>>> X = rng.rand(60, 8).astype(np.float32)
>>> y = (X[:, 0] > 0.5).astype(int)
>>> net = default_classifier_net().set_params(
...     max_epochs=2, module__hidden_layer_sizes=(8,), verbose=0
... )
>>> clf = PrunedClassifier(net, prune_ratio=0.5, random_state=0).fit(X, y)
>>> graph = to_onnx(clf, X, options={"zipmap": False})
>>> session = ort.InferenceSession(graph.SerializeToString())
>>> label, proba = session.run(None, {"X": X[:3]})
>>> bool((label == clf.predict(X[:3])).all())
True
>>> bool(np.allclose(proba, clf.predict_proba(X[:3]), atol=1e-5))
True
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

try:
    import onnx
    from skl2onnx import to_onnx as _skl2onnx_to_onnx
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    from skl2onnx.common.utils import check_input_and_output_numbers
    from skl2onnx.common.utils_classifier import get_label_classes
    from skl2onnx.proto import onnx_proto
except ImportError as error:  # pragma: no cover - the extra is a test dependency
    raise ImportError(
        "skprune.onnx needs onnx and skl2onnx: pip install 'skprune[onnx]'."
    ) from error

from sklearn.utils.validation import check_is_fitted

from ._classifier import PrunedClassifier
from ._regressor import PrunedRegressor
from .compress._compact import CompactMLP
from .compress._estimators import CompressedClassifier, CompressedRegressor

__all__ = ["register", "to_onnx"]

_CLASSIFIER_OPTIONS = {
    "zipmap": [True, False, "columns"],
    "output_class_labels": [False, True],
    "raw_scores": [False, True],
    "nocl": [False, True],
}
_EXPORTED = (
    PrunedClassifier,
    PrunedRegressor,
    CompressedClassifier,
    CompressedRegressor,
)
_ONNX_ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "logistic": "Sigmoid"}


def _compact_network(model) -> CompactMLP:
    """The :class:`CompactMLP` of a compressed model, or of a fitted pruned one."""
    if isinstance(model, CompressedClassifier | CompressedRegressor):
        network = model.network
    else:
        check_is_fitted(model)
        try:
            network = model.compress().network
        except TypeError as error:
            raise TypeError(
                f"This {type(model).__name__} cannot be exported to ONNX: {error} "
                "Only skprune.MLPModule networks export (classifiers trained with "
                "torch.nn.CrossEntropyLoss)."
            ) from error
    # Anything else (int8 weights and their scales) would be exported wrong.
    if type(network) is not CompactMLP or any(
        w.dtype != np.float32 for w in network.weights
    ):
        raise TypeError(
            f"Only float32 CompactMLP networks export to ONNX; this "
            f"{type(model).__name__} holds a {type(network).__name__} with weights "
            f"of {sorted({str(w.dtype) for w in getattr(network, 'weights', ())})}. "
            "Export the float model (compress() with its default dtype) and "
            "quantize the graph with onnxruntime.quantization.quantize_dynamic."
        )
    return network


def _class_labels(classes) -> tuple[np.ndarray, int]:
    """``classes_`` as an ONNX initializer's values and element type."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "iub":
        return classes.astype(np.int64), onnx_proto.TensorProto.INT64
    if classes.dtype.kind == "f" and np.array_equal(classes, np.round(classes)):
        return classes.astype(np.int64), onnx_proto.TensorProto.INT64
    if all(isinstance(c, str) for c in classes):
        encoded = np.array([c.encode("utf-8") for c in classes])
        return encoded, onnx_proto.TensorProto.STRING
    raise ValueError(
        "ONNX class labels are int64 or strings; classes_ holds "
        f"{classes.dtype} values {classes[:5].tolist()}, which neither holds "
        "exactly. Encode the labels as integers or strings before fitting."
    )


def _classifier_shapes(operator) -> None:
    """skl2onnx shape calculator: ``label`` (N,) and ``probabilities`` (N, C)."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    n_rows = operator.inputs[0].get_first_dimension()
    _, label_type = _class_labels(
        get_label_classes(operator.scope_inst, operator.raw_operator)
    )
    is_string = label_type == onnx_proto.TensorProto.STRING
    label = StringTensorType if is_string else Int64TensorType
    operator.outputs[0].set_type(label([n_rows]))
    n_classes = len(operator.raw_operator.classes_)
    operator.outputs[1].set_type(_float_type(operator)([n_rows, n_classes]))


def _regressor_shapes(operator) -> None:
    """skl2onnx shape calculator: ``variable`` of shape (N, n_outputs)."""
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=1)
    n_rows = operator.inputs[0].get_first_dimension()
    n_outputs = operator.raw_operator.n_outputs_  # no compress() for a shape
    operator.outputs[0].set_type(_float_type(operator)([n_rows, n_outputs]))


def _float_type(operator):
    """Double when the input is double, as skl2onnx's converters do; else float."""
    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return DoubleTensorType
    return FloatTensorType


def _logits(scope, operator, container, network: CompactMLP) -> str:
    """Add the network's layers to the graph; return the name of its logits."""
    double = _float_type(operator) is DoubleTensorType
    proto = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
    dtype = np.float64 if double else np.float32
    h = scope.get_unique_variable_name("cast_input")
    container.add_node(
        "Cast",
        operator.inputs[0].full_name,
        h,
        to=proto,
        name=scope.get_unique_operator_name("Cast"),
    )
    if not np.array_equal(network.input_index, np.arange(network.n_features)):
        # Feature pruning and dead inputs: read only the columns still used.
        index = scope.get_unique_variable_name("kept_columns")
        container.add_initializer(
            index,
            onnx_proto.TensorProto.INT64,
            [len(network.input_index)],
            network.input_index,
        )
        h = _node(scope, container, "Gather", [h, index], axis=1)
    last = len(network.weights) - 1
    for i, (weight, bias) in enumerate(
        zip(network.weights, network.biases, strict=True)
    ):
        # Dense: onnxruntime has no fast sparse product (see the module's doc).
        weight = weight.toarray() if sp.issparse(weight) else weight
        weight_name = scope.get_unique_variable_name(f"weight{i}")
        bias_name = scope.get_unique_variable_name(f"bias{i}")
        container.add_initializer(
            weight_name, proto, list(weight.shape), weight.astype(dtype).ravel()
        )
        container.add_initializer(bias_name, proto, [1, len(bias)], bias.astype(dtype))
        h = _node(scope, container, "MatMul", [h, weight_name])
        h = _node(scope, container, "Add", [h, bias_name])
        if i < last:
            h = _node(scope, container, _ONNX_ACTIVATIONS[network.activation], [h])
    return h


def _node(scope, container, op_type: str, inputs: list[str], **attrs) -> str:
    """Add one node; return the name of its single output."""
    output = scope.get_unique_variable_name(op_type.lower())
    container.add_node(
        op_type, inputs, output, name=scope.get_unique_operator_name(op_type), **attrs
    )
    return output


def _convert_classifier(scope, operator, container) -> None:
    """skl2onnx converter: ``label`` as ``predict``, ``probabilities`` as
    ``predict_proba`` (or the logits with ``raw_scores=True``)."""
    model = operator.raw_operator
    options = container.get_options(model, dict(raw_scores=False))
    logits = _logits(scope, operator, container, _compact_network(model))
    label_name, probabilities_name = (v.full_name for v in operator.outputs)
    if options["raw_scores"]:
        container.add_node(
            "Identity",
            logits,
            probabilities_name,
            name=scope.get_unique_operator_name("Identity"),
        )
    else:
        container.add_node(
            "Softmax",
            logits,
            probabilities_name,
            axis=1,
            name=scope.get_unique_operator_name("Softmax"),
        )
    # The largest logit is the largest probability: predict's argmax.
    best = _node(scope, container, "ArgMax", [logits], axis=1, keepdims=0)
    # With the option nocl, the class indices.
    classes, label_type = _class_labels(get_label_classes(scope, model))
    classes_name = scope.get_unique_variable_name("classes")
    container.add_initializer(classes_name, label_type, [len(classes)], classes)
    container.add_node(
        "Gather",
        [classes_name, best],
        label_name,
        axis=0,
        name=scope.get_unique_operator_name("Gather"),
    )


def _convert_regressor(scope, operator, container) -> None:
    """skl2onnx converter: ``variable`` as ``predict``, of shape (N, n_outputs)."""
    network = _compact_network(operator.raw_operator)
    outputs = _logits(scope, operator, container, network)
    container.add_node(
        "Identity",
        outputs,
        operator.outputs[0].full_name,
        name=scope.get_unique_operator_name("Identity"),
    )


def register() -> None:
    """Register skprune's converters with skl2onnx (done when this module imports).

    Registers :class:`~skprune.PrunedClassifier`,
    :class:`~skprune.CompressedClassifier` (options ``zipmap``,
    ``output_class_labels``, ``raw_scores``, ``nocl``),
    :class:`~skprune.PrunedRegressor` and :class:`~skprune.CompressedRegressor`.
    Calling it again changes nothing.

    Examples
    --------
    >>> from skl2onnx.common._registration import get_converter
    >>> from skprune.onnx import register
    >>> register()
    >>> get_converter("SkpruneCompressedClassifier") is not None
    True
    """
    for model in (PrunedClassifier, CompressedClassifier):
        update_registered_converter(
            model,
            f"Skprune{model.__name__}",
            _classifier_shapes,
            _convert_classifier,
            options=_CLASSIFIER_OPTIONS,
        )
    for model in (PrunedRegressor, CompressedRegressor):
        update_registered_converter(
            model, f"Skprune{model.__name__}", _regressor_shapes, _convert_regressor
        )


def _initial_types(model, X) -> list:
    """skl2onnx's ``initial_types`` for a skprune model, or for raw text ``X``."""
    if X is None:
        if not hasattr(model, "n_features_in_"):
            raise ValueError(
                "Give X (a few rows of the input) or initial_types: the input's "
                f"type cannot be read from a {type(model).__name__}."
            )
        return [("X", FloatTensorType([None, int(model.n_features_in_)]))]
    if isinstance(X, str):
        raise TypeError("X must be a sample of rows, got a single string.")
    if not sp.issparse(X):
        X = np.asarray(X)
        if X.dtype.kind in "OUS":  # raw text for a vectorizer in front
            return [("X", StringTensorType([None, 1]))]
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d, got shape {X.shape}.")
    # Sparse or dense, the graph takes dense float32 rows (onnxruntime's input).
    return [("X", FloatTensorType([None, X.shape[1]]))]


def to_onnx(
    model,
    X=None,
    *,
    initial_types=None,
    target_opset: int | dict | None = None,
    options: dict | None = None,
) -> onnx.ModelProto:
    """Convert a fitted skprune model, or a pipeline ending in one, to ONNX.

    ``skl2onnx.to_onnx`` after :func:`register`, with the input's type taken
    from ``X`` as the graph needs it: numeric rows, dense or scipy sparse,
    become one float32 input ``X`` of shape ``(None, n_features)`` (whatever
    their dtype; onnxruntime then takes ``X.astype(np.float32)``, densified);
    strings (for a pipeline starting with a vectorizer) one string input of
    shape ``(None, 1)``.

    Parameters
    ----------
    model : estimator
        A fitted :class:`~skprune.PrunedClassifier`,
        :class:`~skprune.PrunedRegressor`, their ``compress()`` result, or a
        fitted :class:`~sklearn.pipeline.Pipeline` ending in one.
    X : array-like, sparse matrix or sequence of str, default=None
        A few input rows, only read for their type and width. None: the
        model's ``n_features_in_`` (a skprune model, not a pipeline).
    initial_types : list of (str, skl2onnx type), default=None
        skl2onnx's input declaration; overrides ``X``.
    target_opset : int or dict, default=None
        skl2onnx's; None for the newest opset it supports.
    options : dict, default=None
        skl2onnx's converter options, e.g. ``{"zipmap": False}`` for a
        classifier's probabilities as a tensor; keys may be the model's class
        or ``id(model)``; a dict of options alone applies to the final
        classifier.

    Returns
    -------
    onnx_model : onnx.ModelProto

    Raises
    ------
    TypeError
        If the model's net cannot be exported (not an
        :class:`~skprune.MLPModule`, or a classifier not trained with
        ``CrossEntropyLoss``).
    ValueError
        If neither ``X`` nor ``initial_types`` says the input's type for a
        pipeline, or the classes are neither integers nor strings.

    Examples
    --------
    A compressed classifier that reads columns 0 and 2 of three:

    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from skprune import CompressedClassifier
    >>> from skprune.compress import CompactMLP
    >>> from skprune.onnx import to_onnx
    >>> weight = np.array([[1.0, -1.0], [0.0, 1.0]])
    >>> network = CompactMLP(3, [0, 2], [weight], [np.zeros(2)])
    >>> model = CompressedClassifier(network, classes=np.array(["no", "yes"]))
    >>> graph = to_onnx(model, options={"zipmap": False})
    >>> session = ort.InferenceSession(graph.SerializeToString())
    >>> X = np.array([[1.0, 5.0, 0.0], [0.0, 5.0, 2.0]], dtype=np.float32)
    >>> label, proba = session.run(None, {"X": X})
    >>> label.tolist(), model.predict(X).tolist()
    (['no', 'yes'], ['no', 'yes'])
    >>> proba.astype(float).round(3).tolist()
    [[0.881, 0.119], [0.119, 0.881]]
    """
    register()
    final = model[-1] if hasattr(model, "steps") else model
    if isinstance(final, _EXPORTED):
        # Refuse here what the converters would refuse deep inside skl2onnx.
        _compact_network(final)
        if hasattr(final, "classes_"):
            _class_labels(final.classes_)
    if initial_types is None:
        initial_types = _initial_types(model, X)
    if options is not None and not any(
        isinstance(key, type | numbers.Integral) for key in options
    ):
        options = {id(final): options}
    return _skl2onnx_to_onnx(
        model, initial_types=initial_types, target_opset=target_opset, options=options
    )


register()
