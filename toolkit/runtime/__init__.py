"""The runtime engine: ``toolkit.connect`` -> Engine -> typed namespace handles.

Public surface: ``connect``, ``Engine``, ``Pipeline``, the handle classes and
``PolicyMismatch``; everything in ``_modules`` is private.
"""

from toolkit.runtime._engine import Engine, PolicyMismatch, connect
from toolkit.runtime._handles import CounterHandle, HashHandle, ListHandle, StringHandle
from toolkit.runtime._pipeline import Pipeline

__all__ = ["CounterHandle", "Engine", "HashHandle", "ListHandle", "Pipeline", "PolicyMismatch", "StringHandle", "connect"]
