"""examples/fastapi_app.py driven through httpx's ASGI transport, against a real redis-server."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import pytest

from tests.conftest import ROOT


@pytest.fixture
def app_module(redis_server, redis_client, monkeypatch):
    monkeypatch.setenv("TOOLKIT_LOCAL_PORT", str(redis_server.port))
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("examples.fastapi_app", None)
    return importlib.import_module("examples.fastapi_app")


def test_the_fastapi_example_caches_invalidates_and_counts(app_module, redis_client):
    import httpx

    app = app_module.app

    async def scenario() -> dict[str, Any]:
        async with app.router.lifespan_context(app):  # the engine opens here and closes on the way out
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://storefront") as http:
                seen: dict[str, Any] = {}
                seen["user"] = [(await http.get("/users/1001")).json() for _ in range(3)]
                seen["missing"] = (await http.get("/users/7")).status_code
                seen["profile"] = [(await http.get("/users/1001/profile")).json() for _ in range(2)]
                seen["update"] = (await http.put("/users/1001", json={"name": "Alicia"})).json()
                seen["after"] = (await http.get("/users/1001")).json()
                seen["profile_after"] = (await http.get("/users/1001/profile")).json()
                seen["products"] = [(await http.get("/products/12345")).json() for _ in range(2)]
                seen["health"] = (await http.get("/health")).json()
                return seen

    seen = asyncio.run(scenario())
    assert seen["user"] == [{"name": "Alice", "email": "alice@example.com", "age": "30"}] * 3
    assert seen["missing"] == 404
    assert seen["profile"][0] == seen["profile"][1] == {"user_id": 1001, "display": "Alice <alice@example.com>"}
    assert seen["update"] == {"updated": 1001, "cache_keys_invalidated": 1}  # the profile the decorator cached
    assert seen["after"]["name"] == "Alicia" and seen["profile_after"]["display"].startswith("Alicia")
    assert [p["views"] for p in seen["products"]] == [1, 2] and seen["products"][1]["name"] == "Blue mug"
    assert seen["health"]["status"] == "ok" and seen["health"]["target"] == "local"
    # The database was read once per cache miss, never on a hit.
    assert app_module.DATABASE_READS == ["user:1001", "user:7", "profile:1001", "user:1001", "profile:1001"]
    assert 0 < redis_client.pttl("user:1001") <= 12.5 * 3600 * 1000 and redis_client.pttl("product:12345") > 0
    app_module.DATABASE[1001]["name"] = "Alice"
