"""Every pruning parameter is declared once (skprune._params); the signatures,
constraint tables and docstrings that scikit-learn needs spelled out agree with
that declaration."""

import inspect
import re

import pytest

from skprune import PrunedClassifier, PrunedClassifierCV, PrunedRegressor
from skprune._params import (
    PATH_SETS,
    PRUNING_PARAMETERS,
    default_path_retrain_epochs,
    default_retrain_epochs,
    pruning_params,
)
from skprune.callbacks import Pruning

#: Each class, the declared parameters it does not take, and its own extras.
TAKERS = [
    (PrunedClassifier, (), {"estimator", "verbose", "class_weight"}),
    (PrunedRegressor, (), {"estimator", "verbose"}),
    (
        PrunedClassifierCV,
        PATH_SETS,
        {
            "estimator",
            "verbose",
            "class_weight",
            "prune_ratios",
            "cv",
            "scoring",
            "select",
            "n_jobs",
        },
    ),
    (Pruning, (), {"train_epochs"}),
]
IDS = [cls.__name__ for cls, _, _ in TAKERS]


def declared(excluded):
    return [p for p in PRUNING_PARAMETERS if p.name not in excluded]


def parameter_entries(cls) -> dict:
    """numpydoc entries of the Parameters section: header line -> description."""
    doc = inspect.getdoc(cls)
    section = doc.split("Parameters\n----------\n", 1)[1]
    section = re.split(r"\n\n[A-Z][a-z ]+\n-+\n", section, maxsplit=1)[0]
    entries, header = {}, None
    for line in section.replace("\\\n", "").splitlines():
        if line and not line.startswith(" "):
            header = line
            entries[header] = []
        elif header is not None:
            entries[header].append(line.strip())
    return {h: " ".join(lines) for h, lines in entries.items()}


@pytest.mark.parametrize(("cls", "excluded", "extras"), TAKERS, ids=IDS)
def test_every_signature_takes_the_declared_parameters_with_their_defaults(
    cls, excluded, extras
):
    signature = inspect.signature(cls).parameters
    expected = {p.name: p.default for p in declared(excluded)}
    assert set(signature) == set(expected) | extras
    assert {n: signature[n].default for n in expected} == expected


@pytest.mark.parametrize(("cls", "excluded", "extras"), TAKERS, ids=IDS)
def test_every_constraint_table_holds_the_declared_constraints(cls, excluded, extras):
    constraints = cls._parameter_constraints
    assert set(constraints) == set(inspect.signature(cls).parameters)
    for parameter in declared(excluded):
        got = constraints[parameter.name]
        assert len(got) == len(parameter.constraints), parameter.name
        assert all(a is b for a, b in zip(got, parameter.constraints, strict=True)), (
            parameter.name
        )


@pytest.mark.parametrize(("cls", "excluded", "extras"), TAKERS, ids=IDS)
def test_every_docstring_entry_opens_with_the_declared_type_default_and_line(
    cls, excluded, extras
):
    entries = parameter_entries(cls)
    # An entry may cover several parameters "as in" another class.
    shared = {
        name.strip()
        for header, text in entries.items()
        if text.startswith("As in :class:") and " : " not in header
        for name in header.split(",")
    }
    for parameter in declared(excluded):
        if parameter.name in shared:
            continue
        assert parameter.header in entries, (cls.__name__, parameter.header)
        text = entries[parameter.header]
        assert text.startswith(parameter.doc), (cls.__name__, parameter.name, text)


def test_the_callback_takes_the_estimators_pruning_parameters_by_name():
    clf = PrunedClassifier(prune_ratio=0.7, scope="layer", min_keep=0.25)
    params = pruning_params(clf)
    assert params == {p.name: getattr(clf, p.name) for p in PRUNING_PARAMETERS}
    assert Pruning(**params).get_params()["min_keep"] == 0.25


def test_the_default_retraining_rules_are_two_thirds_and_a_third():
    assert [default_retrain_epochs(n) for n in (1, 2, 3, 6, 10)] == [1, 1, 2, 4, 6]
    assert [default_path_retrain_epochs(n) for n in (1, 2, 3, 6, 10)] == [
        1,
        1,
        1,
        2,
        3,
    ]


def test_the_callback_seeds_random_importance_from_a_generator_when_not_an_int():
    import numpy as np

    first = Pruning(random_state=np.random.RandomState(3)).initialize()
    again = Pruning(random_state=np.random.RandomState(3)).initialize()
    assert first._seed == again._seed
    assert Pruning(random_state=7).initialize()._seed == 7
