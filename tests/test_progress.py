"""verbose=1: one progress line per dense epoch and per pruning round, read from
the net's history and the Pruning history."""

import pickle
import re
import time

import pytest
import torch
from conftest import small_net
from sklearn.base import clone
from skorch import NeuralNetClassifier
from skorch.dataset import ValidSplit

from skprune import PrunedClassifier
from skprune._core.rounds import RoundLog, close_round, open_round
from skprune.callbacks import Pruning
from skprune.progress import PruningProgress, format_round

LINE = re.compile(
    r"round (\d+)/(\d+)  ratio (\S+)  sparsity (\S+)  "
    r"loss (\S+) -> (\S+) -> (\S+)  score (\S+) -> (\S+) -> (\S+)  (\S+) s"
)
DENSE = re.compile(r"epoch (\d+)/(\d+)  dense training  loss (\S+)  (\S+) s")


def round_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("round ")]


def fit(X, y, **params):
    defaults = {"estimator": small_net(max_epochs=2), "retrain_epochs": 1}
    return PrunedClassifier(random_state=0, **{**defaults, **params}).fit(X, y)


def test_one_line_per_round_with_the_history_values(text_data, capsys):
    X, y = text_data
    start = time.perf_counter()
    clf = fit(X, y, schedule="iterative", n_rounds=3, prune_ratio=0.9, verbose=1)
    seconds = time.perf_counter() - start
    lines = round_lines(capsys.readouterr().out)
    assert len(lines) == 3
    for line, row in zip(lines, clf.pruning_history_, strict=True):
        match = LINE.fullmatch(line)
        assert match, line
        values = match.groups()
        assert values[:2] == (str(row["round"]), "3")
        assert float(values[2]) == pytest.approx(row["target_ratio"], abs=5e-4)
        assert float(values[3]) == pytest.approx(row["sparsity"], abs=5e-4)
        assert float(values[4]) == pytest.approx(row["loss_before"], rel=1e-3)
        assert float(values[6]) == pytest.approx(row["loss_retrained"], rel=1e-3)
        assert float(values[7]) == pytest.approx(row["score_before"], abs=5e-4)
        assert float(values[9]) == pytest.approx(row["score_retrained"], abs=5e-4)
    # Each round's seconds (printed to 0.1 s) are a part of the fit's.
    round_seconds = [float(LINE.fullmatch(line).group(11)) for line in lines]
    assert sum(round_seconds) <= seconds + 0.05 * len(lines)


def test_verbose_zero_prints_nothing(text_data, capsys):
    X, y = text_data
    fit(X, y, prune_ratio=0.5)
    assert capsys.readouterr().out == ""


def test_the_nets_own_verbose_still_prints_skorchs_epoch_table(text_data, capsys):
    X, y = text_data
    fit(X, y, estimator=small_net(max_epochs=2, verbose=1), verbose=0)
    out = capsys.readouterr().out
    assert "train_loss" in out
    assert "round 1/1" not in out


def test_progress_with_a_users_own_net(text_data, capsys):
    X, y = text_data
    net = NeuralNetClassifier(
        torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, 3),
            torch.nn.Softmax(dim=-1),
        ),
        optimizer=torch.optim.SGD,
        lr=0.5,
        max_epochs=2,
        train_split=None,
        callbacks=[],
        verbose=0,
    )
    clf = fit(X.toarray(), y, estimator=net, prune_ratio=0.7, verbose=1)
    (line,) = round_lines(capsys.readouterr().out)
    assert LINE.fullmatch(line).group(3) == "0.700"
    assert clf.pruning_history_[0]["target_ratio"] == 0.7


def test_format_round_shows_missing_values_and_a_held_out_score():
    row = {
        "round": 2,
        "target_ratio": 0.95,
        "sparsity": 0.949,
        "loss_before": 0.5,
        "loss_after": None,
        "loss_retrained": 0.25,
        "score_before": 0.9,
        "score_after": None,
        "score_retrained": 0.91,
        "heldout_score": 0.875,
    }
    assert format_round(row, 3, 1.25) == (
        "round 2/3  ratio 0.950  sparsity 0.949  loss 0.5 -> n/a -> 0.25  "
        "score 0.900 -> n/a -> 0.910  held-out 0.875  1.2 s"
    )


def test_format_round_of_a_row_not_evaluated_shows_no_loss_nor_score():
    row = {
        "round": 1,
        "target_ratio": 0.5,
        "sparsity": 0.5,
        "evaluated_on": None,
        "loss_before": None,
        "loss_after": None,
        "loss_retrained": None,
        "score_before": None,
        "score_after": None,
        "score_retrained": None,
        "heldout_score": 0.75,
    }
    assert format_round(row, 2, 0.5) == (
        "round 1/2  ratio 0.500  sparsity 0.500  held-out 0.750  0.5 s"
    )


def test_progress_callback_on_a_plain_skorch_net_with_prefix_and_sink(text_data):
    X, y = text_data
    X = X[:, :200].toarray()
    lines = []
    pruning = Pruning(0.5, train_epochs=2, retrain_epochs=1)
    net = NeuralNetClassifier(
        torch.nn.Sequential(
            torch.nn.Linear(200, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        ),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=pruning.total_epochs,
        train_split=None,
        callbacks=[
            ("pruning", pruning),
            ("progress", PruningProgress(prefix="run A  ", sink=lines.append)),
        ],
        verbose=0,
    )
    net.fit(X, y)
    dense, (line,) = lines[:2], lines[2:]
    assert [line.split("  ")[:3] for line in dense] == [
        ["run A", "epoch 1/2", "dense training"],
        ["run A", "epoch 2/2", "dense training"],
    ]
    assert line.startswith("run A  round 1/1  ratio 0.500  sparsity 0.500  ")


def test_the_estimator_hands_the_printer_its_pruning_callbacks_round_log(
    text_data, capsys
):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.5, verbose=1)
    callbacks = dict(clf.estimator_.callbacks_)
    progress, pruning = callbacks["pruning_progress"], callbacks["pruning"]
    assert progress.log_ is pruning.round_log
    assert progress.log_.rows is pruning.history_
    assert len(round_lines(capsys.readouterr().out)) == 1
    # A pickled estimator keeps the link: one log, not two copies.
    callbacks = dict(pickle.loads(pickle.dumps(clf)).estimator_.callbacks_)
    assert callbacks["pruning_progress"].log_ is callbacks["pruning"].round_log


def test_a_printer_handed_a_log_prints_its_rows_without_a_pruning_callback():
    # A net with no Pruning callback at all: only the handed log is read.
    log = RoundLog(n_rounds=2)
    lines = []
    progress = PruningProgress(sink=lines.append).follow(log).initialize()
    net = NeuralNetClassifier(torch.nn.Linear(2, 2), callbacks=[])
    progress.on_train_begin(net)
    open_round(
        log.rows,
        number=1,
        epoch=1.0,
        target_ratio=0.25,
        sparsity=0.25,
        evaluated_on="training",
        before=(1.0, 0.5),
        after=(2.0, 0.25),
    )
    progress.on_epoch_end(net)
    assert lines == []  # still retraining
    close_round(log.rows, lambda: (0.5, 0.75))
    progress.on_epoch_end(net)
    progress.on_train_end(net)
    (line,) = lines
    assert line.startswith("round 1/2  ratio 0.250  sparsity 0.250  loss 1 -> 2 -> 0.5")


def test_verbose_prints_each_dense_epoch_with_its_loss_before_the_rounds(
    text_data, capsys
):
    # prune_ratio=0.0: the unpruned control, dense for 3 epochs, retrained 1.
    X, y = text_data
    start = time.perf_counter()
    clf = fit(X, y, estimator=small_net(max_epochs=3), prune_ratio=0.0, verbose=1)
    seconds = time.perf_counter() - start
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and LINE.fullmatch(lines[-1]), lines
    history = clf.estimator_.history
    for k, line in enumerate(lines[:3]):
        match = DENSE.fullmatch(line)
        assert match, line
        assert match.groups()[:2] == (str(k + 1), "3")
        assert match.group(3) == format(history[k]["train_loss"], ".4g")
    # The lines' seconds (to 0.1 s) add up to no more than the fit's.
    parts = [float(DENSE.fullmatch(line).group(4)) for line in lines[:3]]
    parts.append(float(LINE.fullmatch(lines[-1]).group(11)))
    assert sum(parts) <= seconds + 0.05 * len(parts)


def test_a_dense_epoch_line_shows_the_validation_loss_when_the_net_has_one(
    text_data,
):
    X, y = text_data
    X = X[:, :200].toarray()
    lines = []
    pruning = Pruning(0.5, train_epochs=1, retrain_epochs=1)
    net = NeuralNetClassifier(
        torch.nn.Sequential(
            torch.nn.Linear(200, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        ),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=pruning.total_epochs,
        train_split=ValidSplit(3, stratified=True),
        verbose=0,
        callbacks=[
            ("pruning", pruning),
            ("progress", PruningProgress(sink=lines.append)),
        ],
    )
    net.fit(X, y)
    dense = lines[0].split("  ")
    assert dense[:2] == ["epoch 1/1", "dense training"]
    assert dense[2] == "loss " + format(net.history[0]["train_loss"], ".4g")
    assert dense[3] == "valid loss " + format(net.history[0]["valid_loss"], ".4g")
    assert lines[1].startswith("round 1/1") and len(lines) == 2


def test_the_printers_parameters_are_its_constructors_after_a_fit(text_data):
    X, y = text_data
    clf = fit(X, y, prune_ratio=0.5, verbose=1)
    progress = dict(clf.estimator_.callbacks_)["pruning_progress"]
    assert set(progress.get_params()) == {"prefix", "sink", "pruning"}
    assert set(clone(progress).get_params()) == {"prefix", "sink", "pruning"}


# A plain skorch net: the printer follows the Pruning callback it names ---------


def two_pruning_net(progress, n_features=200):
    """A plain net pruned by two callbacks, one per layer, at different ratios."""
    first = Pruning(0.5, train_epochs=1, retrain_epochs=1, layers=["0.weight"])
    second = Pruning(0.25, train_epochs=1, retrain_epochs=1, layers=["2.weight"])
    second.set_params(prune_output=True)
    return NeuralNetClassifier(
        torch.nn.Sequential(
            torch.nn.Linear(n_features, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        ),
        criterion=torch.nn.CrossEntropyLoss,
        max_epochs=first.total_epochs,
        train_split=None,
        callbacks=[("first", first), ("second", second), ("progress", progress)],
        verbose=0,
    )


def test_a_printer_follows_the_pruning_callback_it_names_among_several(text_data):
    X, y = text_data
    lines = []
    net = two_pruning_net(PruningProgress(pruning="second", sink=lines.append))
    net.fit(X[:, :200].toarray(), y)
    callbacks = dict(net.callbacks_)
    assert callbacks["progress"].log_ is callbacks["second"].round_log
    (line,) = round_lines("\n".join(lines))
    assert line.startswith("round 1/1  ratio 0.250  ")
    # A clone has no log_: it finds the named callback of its own net again.
    lines.clear()
    clone(net).fit(X[:, :200].toarray(), y)
    assert round_lines("\n".join(lines))[0].startswith("round 1/1  ratio 0.250  ")


@pytest.mark.parametrize(
    ("pruning", "match"),
    [
        (None, r"the net has 2 \(\['first', 'second'\]\).*pruning=<its name>"),
        ("third", r"pruning='third'.*no Pruning callback of that name"),
        ("progress", r"pruning='progress'.*are \['first', 'second'\]"),
    ],
)
def test_a_printer_refuses_an_ambiguous_or_missing_pruning_before_training(
    text_data, pruning, match
):
    X, y = text_data
    net = two_pruning_net(PruningProgress(pruning=pruning, sink=print))
    with pytest.raises(ValueError, match=match):
        net.fit(X[:, :200].toarray(), y)
    assert len(net.history) == 0  # not an epoch trained


def test_a_printer_on_a_net_without_pruning_says_so(text_data):
    X, y = text_data
    net = NeuralNetClassifier(
        torch.nn.Linear(200, 3),
        criterion=torch.nn.CrossEntropyLoss,
        train_split=None,
        callbacks=[("progress", PruningProgress())],
        verbose=0,
    )
    with pytest.raises(ValueError, match=r"has 0 \(\[\]\): add one to its callbacks"):
        net.fit(X[:, :200].toarray(), y)


@pytest.mark.parametrize(
    "params", [{"pruning": 3}, {"prefix": None}, {"sink": "print"}]
)
def test_the_printers_parameters_are_validated_at_initialize(params):
    with pytest.raises(ValueError, match=f"'{next(iter(params))}' parameter"):
        PruningProgress(**params).initialize()
