"""Lua for writes that need more than one command: the value and its TTL in one atomic step.

A script is one command, so it is atomic, costs one round trip, routes by its single key on
a cluster and can sit in any pipeline, transactional or not. MULTI/EXEC would give the same
atomicity but cannot be nested inside a cluster pipeline. TTL-only-if-none uses PTTL rather
than ``PEXPIRE NX`` so that Redis 6 servers (Azure Cache for Redis) work too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

# Appended to every write script: KEYS[2..] are index sets (rules with ``index:``). Each records
# KEYS[1]; its TTL is only ever extended to the written key's own, never shortened, so an index
# outlives its longest-lived member (and becomes persistent with a persistent member).
_INDEX = """
if #KEYS > 1 then
  local kt = redis.call('PTTL', KEYS[1])
  for i = 2, #KEYS do
    local fresh = redis.call('EXISTS', KEYS[i]) == 0
    redis.call('SADD', KEYS[i], KEYS[1])
    if kt == -1 then redis.call('PERSIST', KEYS[i])
    elseif kt > 0 then
      local it = redis.call('PTTL', KEYS[i])
      if fresh or (it >= 0 and it < kt) then redis.call('PEXPIRE', KEYS[i], kt) end
    end
  end
end
"""


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# ARGV[1] = ttl ms (0: persistent namespace), ARGV[2] = 1 to replace the whole hash (cache fill),
# ARGV[3..] = field, value, field, value... HSET is the first write, so a full Redis refuses the
# script with OOM exactly as it refuses a plain HSET (Redis checks maxmemory at a script's first
# write only). A replace drops the old fields afterwards; only a key of another type is deleted first.
HASH_WRITE = Script("hash_write", """
if ARGV[2] == '1' then
  local t = redis.call('TYPE', KEYS[1])['ok']
  if t ~= 'hash' and t ~= 'none' then redis.call('DEL', KEYS[1]) end
end
local n = 0
for i = 3, #ARGV, 2000 do
  n = n + redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 1999, #ARGV)))
end
if ARGV[2] == '1' then
  if redis.call('HLEN', KEYS[1]) > (#ARGV - 2) / 2 then
    local keep = {}
    for i = 3, #ARGV, 2 do keep[ARGV[i]] = true end
    for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
      if not keep[f] then redis.call('HDEL', KEYS[1], f) end
    end
  end
else
  redis.call('HDEL', KEYS[1], '\\0toolkit:none\\0', '\\0toolkit:empty\\0')  -- real fields replace a cached "not found" or empty
end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
""" + _INDEX + "return n")

# ARGV[1] = LPUSH|RPUSH, ARGV[2] = ttl ms (0: none), ARGV[3] = max length (0: none), ARGV[4..] = values
LIST_PUSH = Script("list_push", """
local n = 0
for i = 4, #ARGV, 4000 do
  n = redis.call(ARGV[1], KEYS[1], unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
local cap = tonumber(ARGV[3])
if cap > 0 and n > cap then
  if ARGV[1] == 'LPUSH' then redis.call('LTRIM', KEYS[1], 0, cap - 1)
  else redis.call('LTRIM', KEYS[1], -cap, -1) end
  n = cap
end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
""" + _INDEX + "return n")

# ARGV[1] = increment, ARGV[2] = ttl ms (0: none). The TTL is set only when the key has none,
# so a counter's window starts at its first increment and is never extended. A Lua number is a
# double, exact only up to 2^53: beyond that the result is read back with GET, a bulk string.
COUNTER_INCR = Script("counter_incr", """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
""" + _INDEX + """
if v > 9007199254740991 or v < -9007199254740991 then return redis.call('GET', KEYS[1]) end
return v""")

# SET for indexed string namespaces: ARGV[1] = value, ARGV[2..] = SET options (PX ms, NX, XX).
STRING_SET = Script("string_set", """
local ok = redis.call('SET', KEYS[1], ARGV[1], unpack(ARGV, 2))
if not ok then return false end
""" + _INDEX + "return ok")

# expire()/persist() on an indexed namespace: ARGV[1] = ttl ms, or 0 to persist. The index follows.
KEY_TTL = Script("key_ttl", """
local done
if tonumber(ARGV[1]) > 0 then done = redis.call('PEXPIRE', KEYS[1], ARGV[1])
else done = redis.call('PERSIST', KEYS[1]) end
if done == 0 then return 0 end
""" + _INDEX + "return done")

# Indexed invalidation in one atomic step: a write racing it is either deleted with the entity or
# stays recorded in a fresh index, never orphaned. The members share KEYS[1]'s slot (hash tag).
INDEX_DROP = Script("index_drop", """
local members = redis.call('SMEMBERS', KEYS[1])
local n = 0
for i = 1, #members, 1000 do
  n = n + redis.call('UNLINK', unpack(members, i, math.min(i + 999, #members)))
end
redis.call('UNLINK', KEYS[1])
return n
""")

# Release a lock only if we still own it (the token we set).
LOCK_RELEASE = Script("lock_release", """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")

ALL = {s.sha: s for s in (HASH_WRITE, LIST_PUSH, COUNTER_INCR, STRING_SET, KEY_TTL, INDEX_DROP, LOCK_RELEASE)}
