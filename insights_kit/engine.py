"""Where the per-(account, region) units run: in this process, or on a Dask cluster.

Dask distributed was chosen over Ray: it is pure Python and pip-installs in seconds on
every platform Python runs on (Ray ships large platform wheels), its local cluster starts
in about two seconds, an existing cluster is one address (``dask scheduler`` and
``dask worker tcp://host:8786`` on each machine), and its tasks are plain functions whose
arguments and results travel pickled, which is all a unit needs.

Each unit is one task. With a Parquet lake (on disk or in a bucket) a task receives only
the lake's location and its unit's name and reads its own slice; otherwise it receives its
unit's events. Only the unit's incidents, Insights events, counters and history come back.
Results are gathered in task order, so the output is byte-identical to the local executor.

This module knows nothing of detection: :mod:`insights_kit.detect` hands it a function
and the tasks.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Iterator, Sequence

EXECUTORS = ("local", "dask")
#: Environment variable naming an existing scheduler (``tcp://host:8786``) for ``--executor dask``.
SCHEDULER_ENV = "INSIGHTS_KIT_SCHEDULER"


class EngineError(RuntimeError):
    """The cluster could not be reached or started."""


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, *, workers: int = 2) -> Iterator[Any]:
    """A client of the cluster at ``scheduler``, or of a local cluster started here.

    The local cluster has ``workers`` processes of one thread each, each with Polars limited
    to one thread, so two workers on two cores do not oversubscribe them.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a core dependency; kept for a clear line
        raise EngineError("--executor dask needs the 'distributed' package (pip install 'dask[distributed]')")
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise EngineError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
        try:
            yield client
        finally:
            client.close()
        return
    env = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("AWS_", "INSIGHTS_KIT_", "OSS_", "ALIBABA_"))})
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        env=env, silence_logs=40,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def run_tasks(
    function: Callable[[Any], Any],
    tasks: Sequence[Any],
    *,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int = 2,
) -> list[Any]:
    """``[function(t) for t in tasks]``, here or on the cluster; results in task order."""
    if executor == "local" or not tasks:
        return [function(t) for t in tasks]
    if executor != "dask":
        raise EngineError(f"unknown executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    with dask_client(scheduler, workers=workers) as client:
        # Scattered first: a task holding a unit's events travels once, not inside the graph.
        futures = client.map(function, client.scatter(list(tasks)), pure=False)
        return client.gather(futures)
