"""Which machine and software a run measured: numbers mean little without it."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import redis


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe(client: redis.Redis) -> dict[str, Any]:
    info = client.info("server")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "redis_py": redis.__version__,
        "hiredis": _version("hiredis"),
        "redis_server": info.get("redis_version"),
        "cashews": _version("cashews"),
        "dogpile_cache": _version("dogpile.cache"),
        "load_average_start": list(os.getloadavg()),
    }
