"""The shop's tests against a real Redis and the shop's own policy files (see pytest.ini).

``toolkit_engine`` is an engine over policies/ connected to the plugin's redis-server, on a database
flushed before each test; with ``toolkit_strict = true`` every test using it also fails when the keys
it left behind break the policy.
"""

from __future__ import annotations

import pytest
from shop import AsyncShop, Shop

from toolkit.testing import assert_compliant

CATALOG = {7: {"name": "Teapot", "price": 25}, 8: {"name": "Cup", "price": 6}}


@pytest.fixture
def shop(toolkit_engine):
    return Shop(toolkit_engine, dict(CATALOG))


def test_product_page_is_cached_with_the_policy_ttl(shop, toolkit_redis_client):
    assert shop.product(7) == {"name": "Teapot", "price": 25}
    assert shop.product(7) == {"name": "Teapot", "price": 25}
    assert shop.database_reads == 1
    assert 14 * 60_000 < toolkit_redis_client.pttl("shop:product:7") <= 15 * 60_000
    assert toolkit_redis_client.get("shop:views:7") == b"2"
    assert_compliant(shop.engine)  # toolkit_strict checks this after the test too; explicit here for show


def test_renaming_a_product_invalidates_its_page(shop):
    shop.product(8)
    shop.rename(8, "Mug")
    assert shop.product(8)["name"] == "Mug"
    assert shop.database_reads == 2


def test_unknown_product_is_not_cached_forever(shop, toolkit_redis_client):
    assert shop.product(99) is None
    assert toolkit_redis_client.exists("shop:product:99") == 0  # no negative_ttl: None is not cached


def test_each_test_starts_with_an_empty_database(toolkit_redis_client):
    assert toolkit_redis_client.dbsize() == 0


def test_cart(shop):
    shop.add_to_cart(user_id=1, product_id=7)
    assert shop.add_to_cart(user_id=1, product_id=8, quantity=2) == {"7": "1", "8": "2"}


@pytest.mark.toolkit_strict(False)  # this test leaves a bad key on purpose
def test_a_write_around_the_policy_is_caught(shop):
    # Shortcuts someone might take: raw redis-py writes, around the engine.
    shop.engine.client.hset("shop:cart:5", "7", "1")  # no TTL: the cart would stay forever
    shop.engine.client.set("shop:featured", "7")  # a key no namespace declares
    with pytest.raises(AssertionError) as caught:
        assert_compliant(shop.engine)
    message = str(caught.value)
    assert "namespace cart: missing_ttl" in message and "'shop:cart:5'" in message
    assert "unknown keys" in message and "'shop:featured'" in message


@pytest.mark.asyncio
async def test_async_product_page(toolkit_async_engine, toolkit_redis_client):
    shop = AsyncShop(toolkit_async_engine, dict(CATALOG))
    assert (await shop.product(7))["name"] == "Teapot"
    assert toolkit_redis_client.ttl("shop:product:7") > 0
