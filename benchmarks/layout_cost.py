"""The cost model behind ``choose_layouts``: what each layout costs per input value.

Run from the repository root::

    python benchmarks/layout_cost.py           # uniform data and 20 Newsgroups
    python benchmarks/layout_cost.py --quick   # uniform data only, small

For the first layer, a CSR batch (2,000 rows) times a weight of 256 outputs
whose surviving entries are placed at random, at densities from 0.5% to 50%:
the CSR product (each stored input value adds the surviving weights of its
row), the float row-sparse one (torch's ``embedding_bag``: the whole row), the
int8 ones, and the block-CSR one on a weight of the same density kept in whole
aligned runs of ``BLOCK`` outputs (what ``granularity="block"`` leaves), fitted
per kept block rather than per weight. Inputs: uniform random CSR (100 values
a row, 10,000 and 100,000 features: a weight in cache and one far larger) and
20 Newsgroups
TF-IDF (``benchmarks/_datasets.py``). For hidden layers, ReLU-like activations
(half zeros) times a 256 x 256 weight, CSR against dense.

Each time is the best of several taken in turns; it is divided by the number of
input values (stored values, non-zero activations) and a line ``fixed +
per_weight * weights_added`` is fitted per layout (least squares over the
densities). Prints those nanoseconds (the constants of
``skprune.compress._compact._COST_NS``) and the crossover densities they imply.
Timings drift on a shared machine: compare within one run. Writes what it
prints to ``benchmarks/results/layout_cost.md`` (``--quick``:
``layout_cost_quick.md``) under ``_provenance``'s header (commit, machine,
load); a tree with uncommitted changes is refused unless ``--allow-dirty``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _provenance  # noqa: E402 - first: puts this checkout's skprune on sys.path

from skprune._nn import _kernels  # noqa: E402
from skprune.compress._compact import _CACHE_BYTES, quantize_rows  # noqa: E402

DENSITIES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
N_OUT, N_ROWS, PER_ROW = 256, 2_000, 100
#: The block width the block-CSR rows are measured at (the default block_size).
BLOCK = 8


def _best(functions: dict, repeats: int) -> dict:
    """Best seconds of each function, called in turns."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function()  # compile, warm up
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def _weight(n_rows: int, density: float, rng) -> np.ndarray:
    mask = rng.random((n_rows, N_OUT)) < density
    return (rng.standard_normal((n_rows, N_OUT)) * mask).astype(np.float32)


def _block_weight(n_rows: int, density: float, rng) -> np.ndarray:
    kept = rng.random((n_rows, N_OUT // BLOCK)) < density
    mask = np.repeat(kept, BLOCK, axis=1)
    return (rng.standard_normal((n_rows, N_OUT)) * mask).astype(np.float32)


def first_layer(X, repeats: int, rng) -> list[dict]:
    """Per stored value of ``X``: ns of each first-layer product, per density."""
    n_columns = X.shape[1]
    column_map = _kernels.CheckedColumnMap(np.arange(n_columns), n_columns)
    X = _kernels.CheckedCSR(X)
    rows = []
    for density in DENSITIES:
        dense = _weight(n_columns, density, rng)
        values, scales = quantize_rows(dense)
        csr = _kernels.CheckedCSR(sp.csr_matrix(dense))
        csr8 = _kernels.CheckedCSR(sp.csr_matrix(values), dtype=np.int8)
        tensor = torch.from_numpy(dense)
        blocks = _kernels.CheckedBlockCSR.from_csr(
            sp.csr_matrix(_block_weight(n_columns, density, rng)), BLOCK
        )
        seconds = _best(
            {
                "csr": partial(_kernels.csr_times_csr, X, column_map, csr),
                "row-sparse": partial(
                    _kernels.csr_times_rows_embedding, X, column_map, tensor
                ),
                "csr-int8": partial(
                    _kernels.csr_times_csr, X, column_map, csr8, scales
                ),
                "row-sparse-int8": partial(
                    _kernels.csr_times_rows, X, column_map, values, scales
                ),
                "block-csr": partial(_kernels.csr_times_blocks, X, column_map, blocks),
            },
            repeats,
        )
        per_value = {k: v / X.nnz * 1e9 for k, v in seconds.items()}
        kept = csr.nnz / n_columns
        blocks_kept = len(blocks.values) / n_columns
        rows.append({"density": density, "kept": kept, "blocks": blocks_kept,
                     **per_value})  # fmt: skip
    return rows


def hidden_layer(repeats: int, rng) -> list[dict]:
    """Per non-zero activation: ns of the dense and CSR hidden products."""
    h = rng.standard_normal((N_ROWS, N_OUT)).astype(np.float32)
    h = np.maximum(h, 0.0)
    n_values = np.count_nonzero(h)
    rows = []
    for density in DENSITIES:
        dense = _weight(N_OUT, density, rng)
        csr = _kernels.CheckedCSR(sp.csr_matrix(dense))
        seconds = _best(
            {
                "dense-csr": partial(_kernels.dense_times_csr, h, csr),
                "dense": partial(_kernels.dense_times_rows, h, dense),
            },
            repeats,
        )
        per_value = {k: v / n_values * 1e9 for k, v in seconds.items()}
        rows.append({"density": density, "kept": csr.nnz / N_OUT, **per_value})
    return rows


def fit_line(rows: list[dict], layout: str, added) -> tuple[float, float]:
    """Least-squares ``fixed + per_weight * added`` through a layout's costs."""
    x = np.array([added(row) for row in rows], dtype=float)
    y = np.array([row[layout] for row in rows])
    if np.ptp(x) == 0:  # a whole-row layout adds the same at every density
        return float(np.median(y)), 0.0
    per_weight, fixed = np.polyfit(x, y, 1)
    return max(0.0, float(fixed)), max(0.0, float(per_weight))


def crossover(rows: list[dict], sparse: str, dense: str) -> str:
    """The first measured density at which ``dense`` is no slower than ``sparse``."""
    for row in rows:
        if row[dense] <= row[sparse]:
            return f"{row['density']:.1%}"
    return f"above {rows[-1]['density']:.0%}"


def report(name: str, rows: list[dict], pairs) -> None:
    print(f"\n## {name}")
    layouts = [key for key in rows[0] if key not in ("density", "kept", "blocks")]
    print("density | " + " | ".join(f"{k} ns" for k in layouts))
    for row in rows:
        print(
            f"{row['density']:7.1%} | " + " | ".join(f"{row[k]:.2f}" for k in layouts)
        )
    for sparse, dense in pairs:
        print(f"crossover {sparse} -> {dense}: {crossover(rows, sparse, dense)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, uniform only")
    parser.add_argument("--repeats", type=int, default=5)
    _provenance.add_arguments(parser)
    args = parser.parse_args(argv)
    _provenance.check_tree(args.allow_dirty)
    command = _provenance.command_line("layout_cost.py", argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(_Tee(sys.stdout, out)):
        _measure(args)
    name = "layout_cost_quick.md" if args.quick else "layout_cost.md"
    path = _provenance.RESULTS / name
    title = "# Layout cost model (the constants of choose_layouts)\n\n"
    path.write_text(title + _provenance.header(command) + out.getvalue())
    print(f"wrote {path}")
    return 0


class _Tee(io.TextIOBase):
    """Writes to several streams at once (the terminal and the results file)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)


def _measure(args) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    inputs = {}
    widths = (10_000,) if args.quick else (10_000, 100_000)
    for width in widths:
        inputs[f"uniform {width:,} features"] = sp.random(
            N_ROWS, width, density=PER_ROW / width, format="csr",
            dtype=np.float32, random_state=0,
        )  # fmt: skip
    if not args.quick:
        from _datasets import load_20newsgroups

        X_train, _, X_test, _ = load_20newsgroups()
        inputs["20 Newsgroups TF-IDF"] = X_test[:N_ROWS].astype(np.float32)
    first_pairs = [
        ("csr", "row-sparse"),
        ("csr-int8", "row-sparse-int8"),
        ("block-csr", "row-sparse"),
        ("csr", "block-csr"),
    ]
    lines = {}  # layout -> fitted (fixed, per weight), one per input
    for name, X in inputs.items():
        rows = first_layer(X, args.repeats, rng)
        report(f"first layer, {name} ({X.nnz / X.shape[0]:.0f} values a row)",
               rows, first_pairs)  # fmt: skip
        where = "memory" if X.shape[1] * N_OUT * 4 > _CACHE_BYTES else "cache"
        for layout in ("csr", "csr-int8"):
            lines.setdefault(layout, []).append(
                fit_line(rows, layout, lambda row: row["kept"])
            )
        lines.setdefault("block-csr (per block)", []).append(
            fit_line(rows, "block-csr", lambda row: row["blocks"])
        )
        for layout in ("row-sparse", "row-sparse-int8"):
            per_weight = float(np.median([row[layout] for row in rows])) / N_OUT
            lines.setdefault(f"{layout} from {where}", []).append((0.0, per_weight))
    rows = hidden_layer(args.repeats, rng)
    report("hidden layer, 256 x 256, half the activations zero", rows,
           [("dense-csr", "dense")])  # fmt: skip
    lines["dense-csr"] = [fit_line(rows, "dense-csr", lambda row: row["kept"])]
    per_weight = float(np.median([row["dense"] for row in rows])) / N_OUT
    lines["dense from cache"] = [(0.0, per_weight)]
    print("\n## _COST_NS: ns per input value (fixed, per weight), medians over inputs")
    for layout, fitted in sorted(lines.items()):
        fixed = float(np.median([line[0] for line in fitted]))
        per_weight = float(np.median([line[1] for line in fitted]))
        print(f"{layout}: ({fixed:.1f}, {per_weight:.3f})")


if __name__ == "__main__":
    raise SystemExit(main())
