"""How many threads a fit may use: what joblib, Dask or the caller gives it.

Cross-validation and grid search run several fits at once, in processes (joblib's
``loky``, Dask workers) or in threads. Each fit must then use its share of the
cores, not all of them: torch's intra-op thread pool, sized for the whole machine
in every process, would otherwise oversubscribe it many times over. The share is
the smallest of

- torch's own setting (``torch.set_num_threads``, or ``OMP_NUM_THREADS`` when torch
  started);
- ``OMP_NUM_THREADS`` now: joblib's process workers (its default, or
  ``parallel_config(inner_max_num_threads=...)``) and Dask's nanny
  (``distributed.nanny.pre-spawn-environ``) set it for the processes they start;
- an OpenMP limit set in this thread (``threadpoolctl.threadpool_limits``);
- inside a Dask worker, the cores of this process divided among the worker's
  task threads.

No scikit-learn here.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import torch

__all__ = ["allowed_threads", "set_this_threads_count", "thread_budget"]


def allowed_threads() -> int:
    """The number of intra-op threads a fit running here may use (at least 1)."""
    limits = [torch.get_num_threads()]
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        limits.append(int(env))
    limits.extend(_openmp_limits())
    worker_threads = _dask_worker_threads()
    if worker_threads:
        limits.append(max(1, _process_cores() // worker_threads))
    return max(1, min(limits))


@contextmanager
def thread_budget():
    """Run the block with torch's intra-op threads limited to :func:`allowed_threads`.

    The caller's setting is restored afterwards, also when the block raises.
    """
    with _COUNT_LOCK:  # a thread's first count is read while no fit changes it
        before = torch.get_num_threads()
    allowed = allowed_threads()
    if allowed < before:
        set_this_threads_count(allowed)
    try:
        yield allowed
    finally:
        if torch.get_num_threads() != before:
            set_this_threads_count(before)


#: Held while torch's count for threads yet to start may be another fit's.
_COUNT_LOCK = threading.Lock()


def set_this_threads_count(n: int) -> None:
    """``torch.set_num_threads(n)`` for the calling thread only.

    torch also makes ``n`` the count that every thread adopts when it first uses
    torch, so a fit limited to one thread would limit a fit that starts in a new
    thread meanwhile; a short-lived thread puts that count back.
    """
    with _COUNT_LOCK:
        later = _in_new_thread(torch.get_num_threads)
        torch.set_num_threads(n)
        _in_new_thread(torch.set_num_threads, later)


def _in_new_thread(function, *args):
    result = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    thread.join()
    return result[0]


def _openmp_limits() -> list[int]:
    """The OpenMP limits set in this thread, as ``threadpool_limits`` sets them.

    Each OpenMP runtime also has a count of its own for threads that never set one:
    ``OMP_NUM_THREADS`` when it was loaded, which may be long gone (numba's loads at
    the first compiled loop, maybe inside a fit under a temporary limit). That is
    no limit on this fit, so only counts below the one a new thread gets count.
    """
    fresh = _in_new_thread(_openmp_counts)
    here = _openmp_counts()
    return [n for library, n in here.items() if n < fresh.get(library, n)]


def _openmp_counts() -> dict[str, int]:
    """Each loaded OpenMP runtime's thread count in the calling thread."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return {}
    return {
        info["filepath"]: int(info["num_threads"])
        for info in threadpool_info()
        if info.get("user_api") == "openmp" and info.get("num_threads")
    }


def _dask_worker_threads() -> int | None:
    """Task threads of the Dask worker running this code, None outside one."""
    distributed = _loaded("distributed")
    if distributed is None:
        return None
    try:
        worker = distributed.get_worker()
    except ValueError:  # not inside a worker
        return None
    return int(getattr(worker.state, "nthreads", 0) or worker.nthreads) or None


def _process_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _loaded(name: str):
    """A module if something already imported it: Dask is never imported here."""
    import sys

    return sys.modules.get(name)
