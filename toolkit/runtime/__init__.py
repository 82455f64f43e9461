"""The runtime engines: ``toolkit.connect`` -> Engine, ``toolkit.aio.connect`` -> AsyncEngine -> typed handles.

Public surface: ``connect``, ``connect_async``, ``Engine``, ``AsyncEngine``, ``Pipeline``, the
handle classes, ``PolicyMismatch``, and ``build_client``/``close_client`` (the redis-py client a target
gets, for the CLI's commands that reach the data plane); everything in ``_modules`` is private.
"""

from toolkit.runtime._async_engine import AsyncEngine
from toolkit.runtime._async_engine import connect as connect_async
from toolkit.runtime._client import build_client, close_client
from toolkit.runtime._engine import Engine, PolicyMismatch, connect
from toolkit.runtime._handles import CounterHandle, HashHandle, ListHandle, StringHandle
from toolkit.runtime._pipeline import Pipeline

__all__ = ["AsyncEngine", "CounterHandle", "Engine", "HashHandle", "ListHandle", "Pipeline", "PolicyMismatch", "StringHandle",
           "build_client", "close_client", "connect", "connect_async"]
