"""Ray, imported when first needed (the extra annlib[distributed]) and started on
first use when the caller has not started it."""
from __future__ import annotations

import os
import signal
import threading
import time

from .._forking import grpc_fork_handlers_off

# Ray Client's proxy forks a server process per connection, and on a cluster started with
# gRPC's fork handlers on, that child sometimes aborts before it starts (3 of 38 connections
# on a 2-core test machine; ray-project/ray#63202, #18876). The proxy reports it one of two
# ways; the next connection gets a new server.
_CLIENT_SERVER_FAILURES = ("Starting Ray client server failed", "ZombieProcess")
CLIENT_CONNECT_ATTEMPTS = 4


def ray():
    """The ray module, with a clear error when the extra is not installed."""
    grpc_fork_handlers_off()  # for this process if gRPC is not imported yet, and the Ray processes it starts
    try:
        import ray as ray_module
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("annlib.distributed runs on Ray: pip install 'annlib[distributed]'") from exc
    return ray_module


_connected_to: list[str] = []  # the address connect() connected this process to


def connect(address: str):
    """Ray, connected to the cluster at address: ray://HOST:PORT (its client server, from
    anywhere) or HOST:PORT (from one of its nodes). One process talks to one cluster: a
    second address is refused."""
    module = ray()
    if module.is_initialized():
        if _connected_to and _connected_to[0] != address:
            raise ValueError(f"this process is connected to the Ray cluster at {_connected_to[0]}; "
                             f"one process cannot also use {address}")
        if not _connected_to:
            raise ValueError(f"this process is connected to a Ray cluster already; it cannot also use {address}")
        return module
    ensure_started(address)
    _connected_to.append(address)
    return module


def ensure_started(address: str | None = None):
    """Ray, connected: the caller's cluster (ray.init(address=...) before this call, or
    RAY_ADDRESS), else the one at address, else a local one on this machine's cores, usage
    statistics off."""
    module = ray()
    if not module.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # ray.init installs its own SIGTERM handler in the driver; the host process (a
        # server draining on SIGTERM) keeps its own.
        main = threading.current_thread() is threading.main_thread()
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            if address is None:
                module.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:  # a cluster's own settings (the dashboard...) are not the client's to choose
                _init_at(module, address)
        finally:
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)
    return module


def _init_at(module, address: str) -> None:
    """ray.init(address), a Ray Client connection retried while the cluster's proxy fails
    to start its per-connection server (a failed attempt leaves Ray disconnected)."""
    for attempt in range(1, CLIENT_CONNECT_ATTEMPTS + 1):
        try:
            module.init(address=address, log_to_driver=False, configure_logging=False)
            return
        except ConnectionError as exc:
            if not any(failure in str(exc) for failure in _CLIENT_SERVER_FAILURES) \
                    or attempt == CLIENT_CONNECT_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)


def actor_died_errors() -> tuple:
    """The exceptions Ray raises for a call whose actor is gone."""
    exceptions = ray().exceptions
    return (exceptions.RayActorError, exceptions.ActorDiedError, exceptions.ActorUnavailableError)
