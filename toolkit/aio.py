"""``toolkit.aio``: the runtime for asyncio applications (FastAPI, Starlette, aiohttp).

``engine = await toolkit.aio.connect(policies, target)`` (or ``async with``) gives an
``AsyncEngine``: the same handles, methods, exceptions, failure table and stats as
``toolkit.connect``, every call awaited. Both engines share one policy core; see
docs/runtime.md, "asyncio".
"""

from __future__ import annotations

from toolkit.runtime import AsyncEngine
from toolkit.runtime import connect_async as connect

__all__ = ["AsyncEngine", "connect"]
