"""Ray, imported when first needed (the extra annlib[distributed]) and started on
first use when the caller has not started it."""
from __future__ import annotations

import os


def ray():
    """The ray module, with a clear error when the extra is not installed."""
    try:
        import ray as ray_module
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("annlib.distributed runs on Ray: pip install 'annlib[distributed]'") from exc
    return ray_module


def ensure_started():
    """Ray, connected: the caller's cluster (ray.init(address=...) before this call, or
    RAY_ADDRESS), else a local one on this machine's cores, usage statistics off."""
    module = ray()
    if not module.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        module.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    return module


def actor_died_errors() -> tuple:
    """The exceptions Ray raises for a call whose actor is gone."""
    exceptions = ray().exceptions
    return (exceptions.RayActorError, exceptions.ActorDiedError, exceptions.ActorUnavailableError)
