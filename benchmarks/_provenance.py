"""Where a benchmark's numbers come from: commit, tree state, machine, threads.

Every results file written under ``benchmarks/results/`` starts with
:func:`header`. A run from a tree with uncommitted changes to tracked files
is refused unless ``--allow-dirty`` is given, and then every results file
says so in its first lines, so that no number is attributed to a commit that
did not produce it.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--allow-dirty`` to a benchmark's argument parser."""
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run from a tree with uncommitted changes; results are marked DIRTY",
    )


_AT_START: dict = {}


def check_tree(allow_dirty: bool) -> None:
    """Exit with a message if the tree is dirty and that was not allowed.

    Also records the commit and dirty files at the start, which :func:`header`
    reports alongside those at the end (a tree edited during the run is dirty).
    """
    dirty = dirty_files()
    _AT_START.update(commit=commit(), dirty=dirty)
    if dirty and not allow_dirty:
        raise SystemExit(
            "Refusing to benchmark a tree with uncommitted changes to "
            f"{', '.join(dirty[:5])}{' ...' if len(dirty) > 5 else ''}: commit "
            "them, or pass --allow-dirty to mark the results DIRTY."
        )


def header(command: str) -> str:
    """Markdown lines naming the commit, tree state, machine, threads, command."""
    import torch

    dirty = sorted(set(dirty_files()) | set(_AT_START.get("dirty", [])))
    lines = []
    if _AT_START.get("commit", commit()) != commit():
        lines += [
            f"**The checkout moved during the run: from {_AT_START['commit']} to "
            f"{commit()}.**",
            "",
        ]
    if dirty:
        lines += [
            f"**DIRTY TREE: these numbers come from commit {commit()} plus "
            f"uncommitted changes to {', '.join(dirty)}.**",
            "",
        ]
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    lines += [
        f"Commit `{commit()}`{' (dirty)' if dirty else ''}. Command: `{command}`.",
        f"Machine: {platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} cores, load average {load} at the end; Python "
        f"{platform.python_version()}, torch {torch.__version__}, torch threads "
        f"{torch.get_num_threads()}, numba {_numba_version()}.",
        "",
    ]
    return "\n".join(lines)


def _numba_version() -> str:
    try:
        import numba
    except ImportError:
        return "absent"
    return numba.__version__
