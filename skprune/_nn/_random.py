"""Each fit's own random number generators: fits that run at once share none.

Torch's global generator is one per process. Two fits in threads drawing from it
interleave their draws, and ``torch.random.fork_rng`` saves and restores the one
global state, so it cannot give each thread its own. A fit therefore draws from
generators of its own, seeded from the estimator's ``random_state``, which
:func:`fit_random_state` makes current for the running thread (a context
variable) while the fit runs. skprune's own draws (:class:`skprune.MLPModule`'s
initialisation and dropout, :class:`skprune.data.BatchLoader`'s shuffling) take
:func:`fit_generator`; outside a fit it returns None and they draw from torch's
global generator, as a plain torch module would.

A module that draws from torch's global generator itself (``torch.nn.Linear``'s
initialisation, ``torch.nn.Dropout``) cannot be given a generator: for it, the
global generators are seeded from the same seed while the fit runs, which makes
such fits reproducible one after another but not when they run at once in threads.

Pure torch, no scikit-learn.
"""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager

import torch

__all__ = ["fit_generator", "fit_random_state"]

#: The running fit's generators, one per device; None outside a fit.
_CURRENT: contextvars.ContextVar[_FitGenerators | None] = contextvars.ContextVar(
    "skprune_fit_generators", default=None
)


class _FitGenerators:
    """One fit's generators, created on first use per device, all from one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._by_device: dict[torch.device, torch.Generator] = {}

    def get(self, device: torch.device) -> torch.Generator:
        generator = self._by_device.get(device)
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(self.seed)
            self._by_device[device] = generator
        return generator


def fit_generator(device: str | torch.device = "cpu") -> torch.Generator | None:
    """The generator of the fit running in this thread, for tensors on ``device``.

    skprune seeds it from the estimator's ``random_state`` for each fit. A module
    of your own that draws from it (``torch.nn.init.*_(..., generator=g)``,
    ``torch.bernoulli(p, generator=g)``) gives the same results whether fits run
    one after another, in threads, in processes or on Dask.

    Parameters
    ----------
    device : str or torch.device, default="cpu"
        Where the drawn tensor lives: a CUDA tensor needs a CUDA generator.

    Returns
    -------
    generator : torch.Generator or None
        None outside a fit (drawing with ``generator=None`` then uses torch's
        global generator, as usual).

    Examples
    --------
    A module of your own that draws its initial weights from it:

    >>> import torch
    >>> from skorch import NeuralNetClassifier
    >>> from skprune import PrunedClassifier, fit_generator
    >>> from skprune.datasets import make_text_classification
    >>> class Linear(torch.nn.Module):
    ...     def __init__(self, n_features, n_classes):
    ...         super().__init__()
    ...         self.linear = torch.nn.Linear(n_features, n_classes)
    ...         torch.nn.init.normal_(self.linear.weight, generator=fit_generator())
    ...
    ...     def forward(self, X):
    ...         return self.linear(X)
    >>> X, y = make_text_classification(
    ...     60, 200, n_classes=2, n_topic_words=10, random_state=0
    ... )
    >>> net = NeuralNetClassifier(
    ...     Linear, criterion=torch.nn.CrossEntropyLoss, max_epochs=1,
    ...     train_split=None, verbose=0,
    ... )
    >>> def first_weights(random_state):
    ...     clf = PrunedClassifier(net, prune_output=True, random_state=random_state)
    ...     return clf.fit(X.toarray(), y).estimator_.module_.linear.weight

    Each fit seeds it from ``random_state``; outside a fit there is none:

    >>> torch.equal(first_weights(0), first_weights(0))
    True
    >>> torch.equal(first_weights(0), first_weights(1))
    False
    >>> fit_generator() is None
    True
    """
    current = _CURRENT.get()
    device = torch.device(device)
    if current is None or device.type == "meta":  # meta tensors hold no values
        return None
    return current.get(_normalized(device))


@contextmanager
def fit_random_state(seed: int, device: str | torch.device | None = None):
    """Run one fit with generators of its own, seeded with ``seed``.

    While the block runs, :func:`fit_generator` returns this fit's generators in
    this thread (and in nothing started from it with a fresh context). Torch's
    global generators (the CPU one, and the CUDA one of ``device``) are seeded
    with ``seed`` too, for modules that draw from them; the caller's states are
    given back when the last fit running at once ends.

    Parameters
    ----------
    seed : int
    device : str, torch.device or None, default=None
        The device the fit trains on; None for the CPU.
    """
    token = _CURRENT.set(_FitGenerators(seed))
    try:
        with _seeded_global_generators(seed, _normalized(device or "cpu")):
            yield
    finally:
        _CURRENT.reset(token)


def _normalized(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return device


#: For each global generator some fit has seeded: how many fits hold it, and the
#: state it had before the first of them.
_GLOBAL_HOLDS: dict[torch.device, list] = {}
_GLOBAL_LOCK = threading.Lock()


@contextmanager
def _seeded_global_generators(seed: int, device: torch.device):
    """Seed the global generators for the block; restore them after the last holder.

    A plain fork-and-restore per fit would, with fits overlapping in threads,
    restore one fit's seeded state as the caller's.
    """
    devices = [torch.device("cpu")]
    if device.type == "cuda" and torch.cuda.is_available():
        devices.append(device)
    with _GLOBAL_LOCK:
        for held in devices:
            generator = _global_generator(held)
            hold = _GLOBAL_HOLDS.setdefault(held, [0, None])
            if hold[0] == 0:
                hold[1] = generator.get_state()
            hold[0] += 1
            generator.manual_seed(seed)
    try:
        yield
    finally:
        with _GLOBAL_LOCK:
            for held in devices:
                hold = _GLOBAL_HOLDS[held]
                hold[0] -= 1
                if hold[0] == 0:
                    _global_generator(held).set_state(hold[1])
                    del _GLOBAL_HOLDS[held]


def _global_generator(device: torch.device) -> torch.Generator:
    if device.type == "cpu":
        return torch.random.default_generator
    torch.cuda.init()  # fills default_generators
    return torch.cuda.default_generators[device.index]
