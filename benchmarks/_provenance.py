"""Where a benchmark's numbers come from: commit, tree state, machine, load.

Every benchmark calls :func:`check_tree` before it measures anything and writes
:func:`header` (markdown) or :func:`record` (a dict, for JSON results) into each
results file: commit, clean or dirty tree, CPU model, cores, torch threads, and
the load average before and after the run (a loaded machine makes timings
wrong). A run from a tree with uncommitted changes to tracked files is refused
unless ``--allow-dirty`` is given, and then every results file says so in its
first lines, so that no number is attributed to a commit that did not produce
it. ``benchmarks/readme_figures.py`` quotes :func:`summary` of the record beside
every figure it writes into the README.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Measure the checkout these scripts are in, whose commit the results name, not
# whichever skprune happens to be installed.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout


def commit() -> str:
    """The checked-out commit (short hash), or ``"unknown"`` outside git."""
    return _git("rev-parse", "--short=12", "HEAD").strip() or "unknown"


def dirty_files() -> list[str]:
    """Tracked files with uncommitted changes (results files excepted)."""
    lines = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    paths = [line[3:] for line in lines if len(line) > 3]
    return [p for p in paths if not p.startswith("benchmarks/results/")]


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that reproduces a run: ``python benchmarks/<script> ...``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", f"benchmarks/{script}", *args])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-dirty`` to a benchmark's argument parser."""
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run from a tree with uncommitted changes; results are marked DIRTY",
    )


_AT_START: dict = {}


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), or what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def check_tree(allow_dirty: bool) -> None:
    """Exit with a message if the tree is dirty and that was not allowed.

    Also records the commit, the dirty files and the load average at the start,
    which :func:`header` and :func:`record` report alongside those at the end (a
    tree edited during the run is dirty).
    """
    dirty = dirty_files()
    _AT_START.update(commit=commit(), dirty=dirty, load=load_average())
    if dirty and not allow_dirty:
        raise SystemExit(
            "Refusing to benchmark a tree with uncommitted changes to "
            f"{', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}: commit "
            "them, or pass --allow-dirty to mark the results DIRTY."
        )


def record(command: str) -> dict:
    """Provenance of a run that ends now, as a JSON-ready dict.

    Keys: ``command``, ``commit``, ``commit_at_start``, ``dirty`` (bool),
    ``dirty_files``, ``cpu``, ``machine``, ``cores``, ``torch_threads``,
    ``load_before`` and ``load_after`` (1/5/15 minute averages), ``python``,
    ``torch``, ``numba``, ``date`` (UTC, ISO 8601).
    """
    import datetime

    import torch

    dirty = sorted(set(dirty_files()) | set(_AT_START.get("dirty", [])))
    return {
        "command": command,
        "commit": commit(),
        "commit_at_start": _AT_START.get("commit", commit()),
        "dirty": bool(dirty),
        "dirty_files": dirty,
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_before": _AT_START.get("load"),
        "load_after": load_average(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numba": _numba_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def _load_text(load: list[float] | None) -> str:
    return "unknown" if not load else ", ".join(f"{x:.1f}" for x in load)


def summary(rec: dict) -> str:
    """One line naming a record's commit, tree, machine, threads and load."""
    tree = "DIRTY tree" if rec.get("dirty") else "clean tree"
    moved = (
        f" (checkout moved from {rec['commit_at_start']})"
        if rec.get("commit_at_start", rec["commit"]) != rec["commit"]
        else ""
    )
    return (
        f"commit `{rec['commit']}`{moved}, {tree}; {rec['cpu']}, {rec['cores']} "
        f"cores, torch {rec['torch']} on {rec['torch_threads']} thread(s); load "
        f"average {_load_text(rec.get('load_before'))} before, "
        f"{_load_text(rec.get('load_after'))} after; {rec['date'][:10]}"
    )


def header(command: str) -> str:
    """Markdown lines naming the commit, tree state, machine, threads, load."""
    rec = record(command)
    lines = []
    if rec["commit_at_start"] != rec["commit"]:
        lines += [
            f"**The checkout moved during the run: from {rec['commit_at_start']} "
            f"to {rec['commit']}.**",
            "",
        ]
    if rec["dirty"]:
        lines += [
            f"**DIRTY TREE: these numbers come from commit {rec['commit']} plus "
            f"uncommitted changes to {', '.join(rec['dirty_files'])}.**",
            "",
        ]
    lines += [
        f"Commit `{rec['commit']}`{' (dirty)' if rec['dirty'] else ''}. "
        f"Command: `{command}`.",
        f"Machine: {rec['cpu']} ({rec['machine']}), {rec['cores']} cores, load "
        f"average {_load_text(rec['load_before'])} before the run and "
        f"{_load_text(rec['load_after'])} at the end; Python {rec['python']}, "
        f"torch {rec['torch']}, torch threads {rec['torch_threads']}, numba "
        f"{rec['numba']}.",
        "",
    ]
    return "\n".join(lines)


def _numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "absent"
    return numba.__version__
