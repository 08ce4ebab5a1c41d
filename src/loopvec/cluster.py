"""The Dask cluster the Dask backends compute on, found the way Dask users expect.

1. A `distributed.Client` that is already active (made by the user, or `with Client(...)`): used.
2. Else `LOOPVEC_DASK_SCHEDULER=tcp://host:port`: a client connected to that running cluster
   (started, for example, with `dask scheduler` and `dask worker tcp://host:port`).
3. Else one `LocalCluster` started on first use (a worker process per core, one thread each),
   reused by every later call, closed when Python exits.

The client made in 2 or 3 becomes the default client, as any new `Client` does in Dask.

Before a client is handed out, the numba kernels are compiled (or loaded from the cache) on every
worker, so that no timing ever includes a worker's compilation.
"""

from __future__ import annotations

import atexit
import os
from typing import Any

from distributed import Client, LocalCluster, default_client
from distributed.diagnostics.plugin import WorkerPlugin

#: The environment variable naming a running scheduler to connect to.
SCHEDULER_ENV = "LOOPVEC_DASK_SCHEDULER"

_local: dict[str, Any] = {}  # the LocalCluster and its client, once started
_warmed: set[str] = set()  # schedulers whose workers have compiled the kernels


class _Warm(WorkerPlugin):
    """On every worker, now and as it joins: compile (or load) the chunk kernels."""

    def setup(self, worker: Any) -> None:
        from loopvec.backends._dask import warm_chunk_kernels  # noqa: PLC0415 (imports cluster)

        warm_chunk_kernels()


def get_client() -> Any:
    """The `distributed.Client` to compute on (see the module docstring), kernels warmed."""
    try:
        client = default_client()
    except ValueError:  # no active client
        address = os.environ.get(SCHEDULER_ENV)
        if address:
            client = Client(address)
            _local.setdefault("connected", {})[address] = client
        else:
            cores = os.cpu_count() or 1
            # dashboard on a free port: 8787 may be another cluster's
            cluster = LocalCluster(
                n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)
            _local.update(cluster=cluster, client=client)
            atexit.register(close_local_cluster)
    if client.scheduler.address not in _warmed:
        client.register_plugin(_Warm(), name="loopvec-warm")  # runs on every worker, and joiners
        _warmed.add(client.scheduler.address)
    return client


def close_local_cluster() -> None:
    """Close the LocalCluster this module started (and clients it connected), if any."""
    for client in _local.pop("connected", {}).values():
        client.close()
    client, cluster = _local.pop("client", None), _local.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()
    _warmed.clear()
