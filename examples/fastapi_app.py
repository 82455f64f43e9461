"""A small FastAPI service on ``toolkit.aio``: the engine opened in the lifespan, closed on shutdown.

    TOOLKIT_LOCAL_PORT=6379 uvicorn examples.fastapi_app:app     # needs the 'examples' extra

- GET  /users/{user_id}            the user hash, cache-aside (a pretend database behind it)
- PUT  /users/{user_id}            updates the database, then runs the invalidation rule 'user_updated'
- GET  /users/{user_id}/profile    the JSON profile through the @engine.cached decorator
- GET  /products/{product_id}      a product, plus a page view counted in the same pipeline
- GET  /health                     engine.health(): what a readiness probe reads

The policy (TTLs, codecs, locks, failure behaviour) comes from policies/; the handlers only say
what to read and write.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request

import toolkit
import toolkit.aio

POLICIES = Path(__file__).resolve().parent.parent / "policies"

# The pretend database: what a real service would read with its own async driver.
DATABASE: dict[int, dict[str, Any]] = {1001: {"name": "Alice", "email": "alice@example.com", "age": "30"}}
PRODUCTS: dict[int, str] = {12345: "Blue mug"}
DATABASE_READS: list[str] = []


async def fetch_user(user_id: int) -> dict[str, Any] | None:
    DATABASE_READS.append(f"user:{user_id}")
    return DATABASE.get(user_id)


async def render_profile(user_id: int) -> dict[str, Any]:
    DATABASE_READS.append(f"profile:{user_id}")
    user = DATABASE.get(user_id)
    if user is None:
        raise HTTPException(404, "no such user")
    return {"user_id": user_id, "display": f"{user['name']} <{user['email']}>"}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    target = os.environ.get("TOOLKIT_TARGET", "local")
    async with toolkit.aio.connect(os.environ.get("TOOLKIT_POLICIES", str(POLICIES)), target) as engine:
        app.state.engine = engine
        app.state.profile = engine.cached("user_profile")(render_profile)
        yield


app = FastAPI(title="storefront (redis-policy-toolkit example)", lifespan=lifespan)


def engine_of(request: Request) -> toolkit.aio.AsyncEngine:
    return request.app.state.engine


@app.get("/users/{user_id}")
async def get_user(user_id: int, request: Request) -> dict[str, Any]:
    user = await engine_of(request).namespace("user").get_or_load(lambda: fetch_user(user_id), user_id=user_id)
    if user is None:
        raise HTTPException(404, "no such user")
    return user


@app.put("/users/{user_id}")
async def update_user(user_id: int, changes: dict[str, str], request: Request) -> dict[str, Any]:
    if user_id not in DATABASE:
        raise HTTPException(404, "no such user")
    DATABASE[user_id].update(changes)  # the database first, then the cache: the next read loads the new row
    engine = engine_of(request)
    await engine.namespace("user").delete(user_id=user_id)
    deleted = await engine.invalidate("user_updated", user_id=user_id)
    return {"updated": user_id, "cache_keys_invalidated": deleted}


@app.get("/users/{user_id}/profile")
async def get_profile(user_id: int, request: Request) -> dict[str, Any]:
    return await request.app.state.profile(user_id)


@app.get("/products/{product_id}")
async def get_product(product_id: int, request: Request) -> dict[str, Any]:
    engine = engine_of(request)
    async with engine.pipeline() as p:  # one round trip: the cached name and the page view
        p.namespace("product").get(product_id=product_id)
        p.namespace("page_views").incr(page=f"product-{product_id}")
    name, views = p.results
    if name is None:
        name = PRODUCTS.get(product_id)
        if name is None:
            raise HTTPException(404, "no such product")
        await engine.namespace("product").set(name, product_id=product_id)
    return {"product_id": product_id, "name": name, "views": views}


@app.get("/health")
async def health(request: Request) -> dict[str, Any]:
    return engine_of(request).health()
