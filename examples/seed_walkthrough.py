"""Every scenario of the seed document ("use redis-py with Azure Managed Redis"), through the toolkit.

Run against the ``local`` target (``TOOLKIT_LOCAL_PORT`` picks the port; ``scripts/main``
starts a throwaway redis-server and runs this). Each step prints what the seed did by hand
and what the engine did instead, then what is in Redis: every key with its TTL.

    python examples/seed_walkthrough.py [--target local] [--policies policies]
"""

from __future__ import annotations

import argparse
import sys

import toolkit


def show(engine: toolkit.Engine, title: str, result: object, *keys: str) -> None:
    print(f"\n== {title}")
    print(f"   result: {result!r}")
    for key in keys:
        ttl = engine.client.pttl(key)
        state = "missing" if ttl == -2 else "NO TTL" if ttl == -1 else f"ttl {ttl / 1000:.1f}s"
        print(f"   {key:<28} {state}")


def refused(title: str, call) -> None:
    try:
        call()
    except toolkit.PolicyViolation as exc:
        print(f"\n== {title}\n   refused before anything was sent: {exc}")
    else:
        raise SystemExit(f"{title}: expected a PolicyViolation")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="local")
    parser.add_argument("--policies", default="policies")
    args = parser.parse_args()
    engine = toolkit.connect(args.policies, args.target)
    print(f"connected to target {args.target!r} ({type(engine.client).__name__}); policy digest {engine.policy.digest[:12]}")

    names = engine.namespace("user_name")
    show(engine, "SET/GET user:1001:name (seed: r.set + r.get)",
         (names.set("Alice Smith", user_id=1001), names.get(user_id=1001)), "user:1001:name")

    users = engine.namespace("user")
    users.hset(mapping={"name": "Alice Smith", "email": "alice@example.com", "age": "28"}, user_id=1001)
    show(engine, "HSET/HGET/HGETALL user:1001 (seed: r.hset mapping=...)",
         (users.hget("name", user_id=1001), users.hgetall(user_id=1001)), "user:1001")

    with engine.pipeline(transaction=True) as p:
        p.namespace("user_name").set("Alice Smith", user_id=1001)
        p.namespace("user_email").set("alice@example.com", user_id=1001)
        p.namespace("user_age").set("28", user_id=1001)
    with engine.pipeline() as q:
        for ns in ("user_name", "user_email", "user_age"):
            q.namespace(ns).get(user_id=1001)
    show(engine, "MSET/MGET of multi-field user keys (seed: r.mset, r.mget; here with TTLs, atomically)",
         q.results, "user:1001:name", "user:1001:email", "user:1001:age")

    users.hset(mapping={"name": "Bob Jones"}, user_id=1002)
    with engine.pipeline() as p:
        p.namespace("user").hgetall(user_id=1001)
        p.namespace("user").hgetall(user_id=1002)
    show(engine, "Pipeline over several hashes (seed: pipe.hgetall x2)", p.results, "user:1001", "user:1002")

    with engine.pipeline() as p:
        for ns, uid in (("user_name", 1001), ("user_email", 1001), ("user_name", 9999)):
            p.namespace(ns).exists(user_id=uid)
    show(engine, "EXISTS (seed: r.exists over 3 keys)", sum(p.results))

    with engine.pipeline() as p:
        p.namespace("user_email").delete(user_id=1001)
        p.namespace("user_age").delete(user_id=1001)
    show(engine, "DELETE (seed: r.delete)", sum(p.results), "user:1001:email", "user:1001:age")

    sessions = engine.namespace("session")
    show(engine, "Session of 60 s (seed: r.setex('session:abc123', 60, ...))",
         sessions.set("user_data", session_id="abc123"), "session:abc123")

    temp = engine.namespace("temp")
    show(engine, "Temporary value of 5 s (seed: r.psetex('temp:data', 5000, ...))",
         temp.set("temporary_value", name="data"), "temp:data")

    prefs = engine.namespace("user_preferences")
    prefs.set("dark_mode", user_id=1002)
    show(engine, "Preferences of 1 h, then EXPIRE 2 h (seed: r.set + r.expire/pexpire/expireat)",
         prefs.expire(7200, user_id=1002), "user:1002:preferences")
    refused("PERSIST on a namespace that must expire (seed: r.persist)", lambda: prefs.persist(user_id=1002))
    show(engine, "TTL checks (seed: r.ttl / r.pttl)",
         {"ttl": prefs.ttl(user_id=1002), "missing": prefs.ttl(user_id=9999)}, "user:1002:preferences")

    product = engine.namespace("product")
    details = product.get_or_load(lambda: "Product: Laptop, Price: $999", product_id=12345)
    show(engine, "Cached product details of 10 min (seed: cache_database_query('product:12345', ..., ttl=600))",
         details, "product:12345")
    queries = engine.namespace("query_result")
    show(engine, "Cached query results of 5 min (seed: cache_database_query default ttl=300)",
         queries.get_or_load(lambda: [{"sku": "LAPTOP-1", "sold": 42}], query_id="top-products"), "query:top-products")

    for ns in ("user_profile", "user_summary", "dashboard_user"):
        engine.namespace(ns).set({"rendered": ns}, user_id=1001)
    show(engine, "Invalidation on user update (seed: update_user_profile -> r.delete of 3 keys)",
         engine.invalidate("user_updated", user_id=1001), "user:1001:profile", "user:1001:summary", "dashboard:user:1001")

    data = engine.namespace("user_data")
    first = data.get_or_load(lambda: "User data for 1001", user_id=1001)
    again = data.get_or_load(lambda: "never called: this is a hit", user_id=1001)
    show(engine, "Cache-aside user data of 1 h (seed: get_user_data)", (first, again), "user:1001:data")

    views = engine.namespace("page_views")
    show(engine, "Page-view counter (seed: INCR/INCRBY/DECR; the 24 h window starts at the first view)",
         [views.incr(page="home"), views.incrby(5, page="home"), views.decr(page="home")], "counter:page_views:home")

    recent = engine.namespace("user_recent")
    for i in range(25):
        recent.lpush({"sku": f"SKU-{i}"}, user_id=1001)
    show(engine, "Recent-items list (seed: LPUSH/LRANGE; trimmed to 20 on every push)",
         (recent.llen(user_id=1001), recent.lrange(0, 2, user_id=1001)), "user:1001:recent")

    show(engine, "Pattern invalidation of all of a user's keys (seed: invalidate_user_cache with SCAN)",
         engine.invalidate("user_all", user_id=1001), "user:1001:name", "user:1001:data", "user:1001:recent")
    refused("The same with user_id='*' (the seed's f-string would match every user)",
            lambda: engine.invalidate("user_all", user_id="*"))

    without_ttl = [k for k in engine.client.scan_iter(count=1000) if engine.client.pttl(k) == -1
                   and not k.startswith(b"__toolkit__:")]
    print(f"\nkeys without TTL written by the walkthrough: {len(without_ttl)}")
    print("per-namespace stats:", {n: {k: v for k, v in s.items() if v} for n, s in engine.stats().items() if any(s.values())})
    engine.close()
    return 1 if without_ttl else 0


if __name__ == "__main__":
    sys.exit(main())
