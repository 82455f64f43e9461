"""The reader process of the near_cache workload's invalidation latency (``python -m bench._near_reader``).

    python -m bench._near_reader PORT POLICIES NAMESPACE USER_ID PAUSE_US

Builds an engine over the near-cached namespace, waits for its invalidation feed, then reads
one key in a loop. Each time a read returns a value other than the last one it prints
``seen <value> <time.monotonic_ns()>`` (CLOCK_MONOTONIC is one clock for every process of the
machine, so the bench process can subtract its own readings); once a read of that value was
then answered from process memory (the namespace's ``local_hits`` moved) it prints
``cached <value>``, so that the writer knows the next write must evict a local copy. It stops
after seeing the value ``stop``, or after MAX_S.

Between two reads it sleeps ``PAUSE_US`` microseconds: ``time.sleep`` releases the GIL, so the
engine's tracking thread (which handles the invalidation pushes) gets it at once instead of
waiting for the interpreter's switch interval (5 ms), and the loop leaves CPU time to the writer
and to redis-server (two cores here). ``PAUSE_US`` 0 spins without ever sleeping.
"""

from __future__ import annotations

import os
import sys
import time

import redis

import toolkit

MAX_S = 600.0
READY_S = 10.0


def main(argv: list[str]) -> int:
    port, policies, namespace, user_id, pause_us = int(argv[0]), argv[1], argv[2], int(argv[3]), int(argv[4])
    engine = toolkit.connect(toolkit.load(policies), client=redis.Redis(host="127.0.0.1", port=port))
    out = sys.stdout.fileno()

    def say(line: str) -> None:
        os.write(out, (line + "\n").encode())  # one write(2), no buffer between the reading and the pipe

    try:
        deadline = time.monotonic() + READY_S
        while engine.health().get("near_cache") != "ready":
            if time.monotonic() > deadline:
                say(f"error near cache {engine.health().get('near_cache')!r} after {READY_S:.0f} s")
                return 1
            time.sleep(0.005)
        get = engine.namespace(namespace).get
        stats = engine.stats
        clock = time.monotonic_ns
        pause = pause_us / 1e6
        sleep = time.sleep
        last: object = object()
        confirming, local_hits = False, 0
        stop_at = time.monotonic() + MAX_S
        while True:
            value = get(user_id=user_id)
            if value != last:
                seen = clock()
                last = value
                say(f"seen {value} {seen}")
                if value == "stop" or time.monotonic() > stop_at:
                    return 0
                confirming, local_hits = True, stats()[namespace]["local_hits"]
            elif confirming and stats()[namespace]["local_hits"] > local_hits:
                say(f"cached {value}")
                confirming = False
            if pause:
                sleep(pause)
    finally:
        engine.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
