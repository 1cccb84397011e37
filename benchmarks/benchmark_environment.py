"""What every timing benchmark records about where it ran: package versions and the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def versions(packages=("fxgx", "jax", "jaxlib", "tensorflow")) -> dict:
    """Python's version and each installed package's (missing packages are left out)."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def machine() -> dict:
    """The platform, processor, core count and load average now."""
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())}
