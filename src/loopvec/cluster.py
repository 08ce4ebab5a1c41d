"""The Dask cluster the Dask backends compute on, found the way Dask users expect.

1. A `distributed.Client` that is already active (made by the user, or `with Client(...)`): used.
2. Else `LOOPVEC_DASK_SCHEDULER=tcp://host:port`: a client connected to that running cluster
   (started, for example, with `dask scheduler` and `dask worker tcp://host:port`).
3. Else one `LocalCluster` started on first use (a worker process per core, one thread each),
   reused by every later call, closed when Python exits. Its workers ignore Ctrl-C: it is meant
   for loopvec, which stops between steps and still needs the data they hold.

The client made in 2 or 3 becomes the default client, as any new `Client` does in Dask.

Waits for a scheduler to answer or for a worker to join say on stderr what they wait for, and
give up after `LOOPVEC_DASK_TIMEOUT` seconds (60 by default) with an error that says what to do.

This module only finds the cluster: the Dask backends compile their chunk kernels on its workers
before they compute there (`backends._dask.get_client`).
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import suppress
from typing import Any

from distributed import Client, LocalCluster, default_client
from distributed.diagnostics.plugin import WorkerPlugin

#: The environment variable naming a running scheduler to connect to.
SCHEDULER_ENV = "LOOPVEC_DASK_SCHEDULER"
#: The environment variable giving the seconds a wait for a scheduler or a worker may take.
TIMEOUT_ENV = "LOOPVEC_DASK_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
#: A wait shorter than this is not worth a line on stderr (a live scheduler answers in ms).
_QUIET_WAIT_S = 1.0

_local: dict[str, Any] = {}  # the LocalCluster and its client, once started


class ClusterUnavailable(ConnectionError):
    """No scheduler answered, or no worker joined it, within LOOPVEC_DASK_TIMEOUT."""


def timeout_s() -> float:
    """The seconds a wait for the cluster may take: LOOPVEC_DASK_TIMEOUT, else 60."""
    text = os.environ.get(TIMEOUT_ENV)
    if text is None or not text.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{TIMEOUT_ENV} must be a number of seconds > 0; got {text!r}")
    return value


def _say(message: str) -> None:
    print(f"loopvec: {message}", file=sys.stderr, flush=True)


class _IgnoreCtrlC(WorkerPlugin):
    """On loopvec's own workers, also one its nanny restarts: Ctrl-C is the caller's to handle.
    A terminal sends it to its whole process group, the workers included. (Until a worker has
    started, a Ctrl-C still stops it, and with it the cluster's start: the caller's intent.)"""

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def _connect(address: str) -> Any:
    """A client of the scheduler at `address`; ClusterUnavailable after timeout_s()."""
    limit_s = timeout_s()
    first_s = min(_QUIET_WAIT_S, limit_s)
    try:
        return Client(address, timeout=first_s)
    except OSError:  # distributed's connection timeout is an OSError
        pass
    if limit_s > first_s:
        _say(
            f"waiting up to {limit_s:g} s for the Dask scheduler at {address} ({SCHEDULER_ENV}; "
            f"{TIMEOUT_ENV} sets the wait)"
        )
        try:
            return Client(address, timeout=limit_s - first_s)
        except OSError:
            pass
    raise ClusterUnavailable(
        f"no Dask scheduler answered at {address} ({SCHEDULER_ENV}) within {limit_s:g} s: start "
        f"one there (`dask scheduler`), correct the address, or unset {SCHEDULER_ENV} to let "
        f"loopvec start a local cluster ({TIMEOUT_ENV} sets the wait)"
    )


def get_client() -> Any:
    """The `distributed.Client` to compute on (see the module docstring)."""
    try:
        client = default_client()
    except ValueError:  # no active client
        address = os.environ.get(SCHEDULER_ENV)
        if address:
            client = _connect(address)
            _local.setdefault("connected", {})[address] = client
        else:
            cores = os.cpu_count() or 1
            # dashboard on a free port: 8787 may be another cluster's
            cluster = LocalCluster(
                n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=":0"
            )
            client = Client(cluster)
            client.register_plugin(_IgnoreCtrlC(), name="loopvec-ignore-ctrl-c")
            _local.update(cluster=cluster, client=client)
            atexit.register(close_local_cluster)
    return client


def workers_of(client: Any) -> list[str]:
    """The addresses of the cluster's workers, sorted, once there is one (a worker that died is
    being restarted by its nanny, or a new cluster's workers are still joining); a line on
    stderr if that takes a while, ClusterUnavailable after timeout_s(). Asked of the scheduler
    each time (`nthreads`): the client's cached `scheduler_info` could still list none after
    `wait_for_workers` returned (CI: a ZeroDivisionError when scattering)."""
    limit_s = timeout_s()
    start = time.monotonic()
    said = False
    while not (workers := sorted(client.nthreads())):
        waited_s = time.monotonic() - start
        if waited_s > limit_s:
            address = client.scheduler.address
            raise ClusterUnavailable(
                f"no Dask worker joined the scheduler at {address} within {limit_s:g} s: start "
                f"one (`dask worker {address}`), or check why its workers died (their logs); "
                f"{TIMEOUT_ENV} sets the wait"
            )
        if waited_s > _QUIET_WAIT_S and not said:
            _say(
                f"waiting up to {limit_s:g} s for a Dask worker to join the scheduler at "
                f"{client.scheduler.address} ({TIMEOUT_ENV} sets the wait)"
            )
            said = True
        time.sleep(0.1)
    return workers


def _heartbeat_failure_expected() -> None:
    """On a worker whose scheduler is about to close: a heartbeat in flight then fails and
    distributed logs its traceback as an error (dask/distributed#7105), which reports nothing
    wrong. The worker itself closes a moment later."""
    logging.getLogger("distributed.worker").addFilter(
        lambda record: not record.getMessage().startswith("Failed to communicate with scheduler")
    )


def close_local_cluster() -> None:
    """Close the LocalCluster this module started (and clients it connected), if any."""
    for client in _local.pop("connected", {}).values():
        client.close()
    client, cluster = _local.pop("client", None), _local.pop("cluster", None)
    if client is not None:
        with suppress(Exception):  # a worker that does not answer logs the traceback: no harm
            client.run(_heartbeat_failure_expected, on_error="ignore")
        client.close()
    if cluster is not None:
        cluster.close()
