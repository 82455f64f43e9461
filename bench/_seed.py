"""The seed document's hand-written code, as the baselines the engine is compared with.

Copied from the seed (``get_user_data``, ``fetch_from_database``, ``invalidate_user_cache``
and the HSET-then-EXPIRE of a hash) with its module-level client ``r`` and its
``decode_responses=True`` connection; only the ``print`` calls are left out, since they would
measure the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis

r: redis.Redis = None  # type: ignore[assignment]  # bound by use(): the seed's global connection


def use(port: int) -> redis.Redis:
    """Connect the seed's ``r`` as the seed does (responses decoded to str)."""
    global r
    r = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    return r


def get_user_data(user_id: int, ttl: int = 3600) -> Any:
    cache_key = f'user:{user_id}:data'

    # Try to get from cache
    cached_data = r.get(cache_key)
    if cached_data:
        return cached_data

    # Cache miss - fetch from database
    user_data = fetch_from_database(user_id)

    # Store in cache with expiration
    if user_data:
        r.setex(cache_key, ttl, user_data)

    return user_data


def fetch_from_database(user_id: int) -> str:
    # Placeholder for database query
    return f"User data for {user_id}"


def invalidate_user_cache(user_id: int) -> int:
    pattern = f'user:{user_id}:*'
    cursor = 0
    deleted_count = 0

    while True:
        cursor, keys = r.scan(cursor, match=pattern, count=100)
        if keys:
            deleted_count += r.delete(*keys)
        if cursor == 0:
            break

    return deleted_count


def hset_then_expire(key: str, mapping: Mapping[str, Any], ttl: int = 3600) -> None:
    """The seed's hash write: HSET, then EXPIRE in a second call (two round trips, not atomic)."""
    r.hset(key, mapping=mapping)
    r.expire(key, ttl)
