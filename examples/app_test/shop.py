"""A small shop service: product pages cached in Redis, carts, view counters, all through the policy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import toolkit


class Shop:
    """The application code under test: every Redis call goes through a ``toolkit`` engine."""

    def __init__(self, engine: toolkit.Engine, database: dict[int, dict[str, Any]]):
        self.engine = engine
        self.database = database  # stands for the real database
        self.database_reads = 0
        self.products = engine.namespace("product")
        self.carts = engine.namespace("cart")
        self.views = engine.namespace("product_views")

    def product(self, product_id: int) -> dict[str, Any] | None:
        """The product page: from the cache, else from the database (and cached for the namespace's TTL)."""
        self.views.incr(product_id=product_id)
        return self.products.get_or_load(self._load(product_id), product_id=product_id)

    def rename(self, product_id: int, name: str) -> None:
        self.database[product_id] = {**self.database[product_id], "name": name}
        self.engine.invalidate("product_changed", product_id=product_id)

    def add_to_cart(self, user_id: int, product_id: int, quantity: int = 1) -> dict[str, str]:
        self.carts.hset(str(product_id), str(quantity), user_id=user_id)
        return self.carts.hgetall(user_id=user_id)

    def _load(self, product_id: int) -> Callable[[], dict[str, Any] | None]:
        def load() -> dict[str, Any] | None:
            self.database_reads += 1
            return self.database.get(product_id)
        return load


class AsyncShop:
    """The same product page on ``toolkit.aio`` (FastAPI, Starlette...)."""

    def __init__(self, engine: Any, database: dict[int, dict[str, Any]]):
        self.database = database
        self.products = engine.namespace("product")

    async def product(self, product_id: int) -> dict[str, Any] | None:
        async def load() -> dict[str, Any] | None:
            return self.database.get(product_id)
        return await self.products.get_or_load(load, product_id=product_id)
