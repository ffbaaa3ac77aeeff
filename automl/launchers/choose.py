"""The launcher an experiment's config asks for: this machine, or a Ray cluster (through its bridge process)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .local import LocalLauncher


def launcher_for(config: Any, environment: Mapping[str, str] | None) -> Any:
    """The launcher of an experiment whose `config.launcher` is settled (`resolve_launcher`), its trials run with
    `environment` (None: this process's)."""
    spec = config.launcher
    if spec.name != "ray":
        return LocalLauncher(environment)
    from .ray_address import RayOptions
    from .ray_client import RayClusterLauncher

    upload = str(config.working_dir) if spec.code == "upload" else None
    options = RayOptions(
        spec.address, dict(spec.resources), dict(spec.labels), spec.node_dir, spec.reconnect_timeout, upload
    )
    return RayClusterLauncher(options, config.resources.gpus, environment, config.gpu)
