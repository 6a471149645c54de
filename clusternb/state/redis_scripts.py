"""The Redis side of the shared state: the key tag and the Lua scripts that run there.

Kept apart from :mod:`clusternb.state.redis` (the Python side: reading, validating, pruning) because these
texts are another program, run by Redis, and the alert store shares two of them (the tag, which puts every
state and alert key in one Redis Cluster slot, and the liveness reads). The
key layout below.

Key layout (``P`` = ``{clusternb:v<SCHEMA_VERSION>}:state:``; the version keeps two schema versions of clusternb
on one Redis from ever reading each other's keys, and the braces are a Redis Cluster hash tag: every state and
alert key lives in one slot, so each script and transaction below touches one shard)::

    P latest          HASH    node -> snapshot JSON (orjson of NodeSnapshot.to_dict(), carries "schema")
    P seen            ZSET    node -> sample time of its latest snapshot (the registry; drives pruning)
    P intervals       HASH    node -> its sampling interval (with ``seen``: the liveness view, no JSON to decode)
    P departed        HASH    node -> time it left cleanly (``leave``); the node's next ``put`` deletes it
    P samples:{node}  ZSET    compact snapshot records (``raw_codec``) scored by sample time: the node's history
    P hist:{node}     ZSET    the same as snapshot JSON, as clusternb wrote it before: read, never written
    P gen             STRING  the generation counter, INCRed by every put and leave
    P roll:1m:{node}  HASH    block start (epoch seconds) -> rollup record of that hour's minute rows
    P roll:1h:{node}  HASH    block start (epoch seconds) -> rollup record of that day's hour rows
    P rolled          ZSET    node -> start of its newest rollup block (who has rollups; outlives ``seen``)

Rollups (:mod:`clusternb.state.rollup`): a hash per node and tier whose fields are block starts, since a block is
rewritten whole as its minutes close (HSET replaces it in place; a sorted set would need the old member to
remove it). ``PUT_BLOCK`` writes one, drops blocks older than the tier's retention (and the oldest past a hard
count, whatever the clocks did), and sets the key's expiry to the retention, so a node gone for a week loses its
minutes and one gone for 90 days its hours. The ``rolled`` registry is trimmed the same way.

Why a sorted set per node for history, not a stream: history is queried by *sample* time, which each agent's
clock sets. Stream IDs must grow monotonically, so they would carry either the server's time (then a range
query by sample time is wrong by the agent's clock skew) or the sample time (then a clock stepping back makes
XADD fail). A ZSET indexes exactly by sample time in any order, ``ZRANGEBYSCORE`` answers
``since <= time <= until`` inclusively, and the window trim (``ZREMRANGEBYSCORE``) and the hard cap
(``ZREMRANGEBYRANK``) run in the same script as the write. Memory is no worse: for 610-byte records a ZSET
took 727 bytes per sample against 775 for a stream (Redis 7.0, ``MEMORY USAGE``); the JSON dominates both,
which is why history records are now compact (:mod:`clusternb.state.raw_codec`: ~300 bytes a sample). They
live under a new key, not the old one: a reader of the previous version would reject a compact record and
delete it, so it must not find one; this version reads both keys until the old ones expire.

A put is one Lua script (``EVALSHA`` on a held connection, see ``held_script.py``; loaded again after a Redis
restart): it writes the latest record, the registry and the history, trims, sets expiries, prunes and bumps
the generation, atomically like a MULTI. One command instead of fourteen is what keeps an agent's publish
cheap: redis-py spends tens of microseconds of Python per command packed and parsed, which across a MULTI
cost more CPU than the sample. The script first deletes any of its keys that hold another type than it
expects (or a generation that is not a number): a stray key under our name would otherwise make every put
fail forever.

Bounds: each put trims its node's history to ``window`` seconds before the new sample and to ``max_samples``
entries, and sets every key's expiry to ``window``: a history nobody writes disappears, and so does a whole
cluster that went quiet. The same script prunes nodes whose last sample is older than the window (by the
writer's clock and by the server's, so one agent with a clock far ahead cannot wipe the others) from
``latest``, ``seen``, ``intervals`` and ``departed``, and nodes whose registry time is further in the future
than ``max_clock_skew`` (a ghost that would otherwise stay "online" for ever).

The generation counter is seeded (``SET NX``) with the current time in microseconds before its first INCR, so
after a Redis restart without persistence it still grows past every value readers cached before.
"""

from __future__ import annotations

from clusternb.model import SCHEMA_VERSION

#: The Redis Cluster hash tag of every shared-state key (state and alerts): one slot, so one script may
#: touch any of them.
TAG = f"{{clusternb:v{SCHEMA_VERSION}}}"
PREFIX = f"{TAG}:state:"

# One put. KEYS: latest, seen, intervals, departed, history, gen, the history's legacy key (read, never
# written: only deleted when it holds another type, like the others).
# ARGV: node, record, sample time, oldest time kept (time - window), last rank dropped by the cap (negative),
# expiry in seconds, generation seed, window in seconds, the node's interval, the largest clock skew accepted,
# the record's compact form (for the history).
# First, a key of the wrong type under our name (or a generation that is not a number) is deleted: it would
# make every later put fail. Nodes whose last sample is older than the window are pruned, judged by the
# writer's sample clock and by the server's clock (TIME - window), whichever is earlier; so are nodes whose
# registry time is further in the future than the skew allows, and departures older than the cutoff. Returns
# the number of nodes pruned. A script stops at its first failing command (a MULTI would run the rest), so
# the latest record and the generation come first: readers never see a new record behind an old generation.
PUT = """
local want = {'hash', 'zset', 'hash', 'hash', 'zset', 'string'}
for i = 1, 6 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want[i] then redis.call('DEL', KEYS[i]) end
end
local g = redis.call('GET', KEYS[6])
if g and not tonumber(g) then redis.call('DEL', KEYS[6]) end
local legacy = redis.call('TYPE', KEYS[7])['ok']
if legacy ~= 'none' and legacy ~= 'zset' then redis.call('DEL', KEYS[7]) end
local node, record, t = ARGV[1], ARGV[2], ARGV[3]
redis.call('SET', KEYS[6], ARGV[7], 'NX')
redis.call('HSET', KEYS[1], node, record)
redis.call('ZADD', KEYS[2], t, node)
redis.call('HSET', KEYS[3], node, ARGV[9])
redis.call('HDEL', KEYS[4], node)
redis.call('INCR', KEYS[6])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
local now = redis.call('TIME')
local server = tonumber(now[1]) + tonumber(now[2]) / 1000000
local cutoff = server - tonumber(ARGV[8])
if tonumber(ARGV[4]) < cutoff then cutoff = tonumber(ARGV[4]) end
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. cutoff, 'LIMIT', 0, 500)
local ahead = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (server + tonumber(ARGV[10])), '+inf', 'LIMIT', 0, 500)
for i = 1, #ahead do if ahead[i] ~= node then gone[#gone + 1] = ahead[i] end end
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
  redis.call('HDEL', KEYS[3], unpack(gone))
  redis.call('HDEL', KEYS[4], unpack(gone))
end
local left = redis.call('HGETALL', KEYS[4])
for i = 1, #left, 2 do
  local when = tonumber(left[i + 1])
  if when == nil or when < cutoff or when > server + tonumber(ARGV[10]) then redis.call('HDEL', KEYS[4], left[i]) end
end
redis.call('ZADD', KEYS[5], t, ARGV[11])
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[5], 0, ARGV[5])
redis.call('EXPIRE', KEYS[5], ARGV[6])
return #gone
"""

# A clean departure. KEYS: departed, gen. ARGV: node, time, expiry in seconds, generation seed.
LEAVE = """
if redis.call('TYPE', KEYS[1])['ok'] ~= 'hash' then redis.call('DEL', KEYS[1]) end
local g = redis.call('GET', KEYS[2])
if g and not tonumber(g) then redis.call('DEL', KEYS[2]) end
redis.call('SET', KEYS[2], ARGV[4], 'NX')
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('INCR', KEYS[2])
"""

# Delete rejected records of a hash, each only if it still holds the bytes that were rejected (a good write
# since then must survive). KEYS: the hash. ARGV: the rejected records. Fields are found by value: HVALS gave
# no names. (The alert store prunes its hash of active alerts with it too.)
PRUNE_HASH_VALUES = """
local bad = {}
for i = 1, #ARGV do bad[ARGV[i]] = true end
local all = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #all, 2 do
  if bad[all[i + 1]] then redis.call('HDEL', KEYS[1], all[i]); n = n + 1 end
end
return n
"""


# One rollup block. KEYS: the tier's hash of the node, the registry of rolled nodes. ARGV: block start (the
# field), record, retention in seconds, expiry in seconds, most blocks kept, node, the registry's retention in
# seconds (the longest tier's), most nodes kept, registry expiry in seconds, the largest clock skew accepted.
# A key of another type under our name is deleted first. Fields that are not numbers, later than the server's
# clock plus the skew (a writer whose clock runs a year ahead: no reader asks for them, and they would hold
# the hard count), older than the retention before the newest other block (or before the server's clock, if
# earlier: that writer must not wipe the node's week either), or the oldest past the count are deleted (in
# chunks: unpack has a limit); the registry is trimmed by the same rule, so one such writer cannot unlist
# every other node, and lists no node for a block it dropped. Returns the number of blocks dropped.
PUT_BLOCK = """
local want = {'hash', 'zset'}
for i = 1, 2 do
  local t = redis.call('TYPE', KEYS[i])['ok']
  if t ~= 'none' and t ~= want[i] then redis.call('DEL', KEYS[i]) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cap = tonumber(ARGV[5])
local now = redis.call('TIME')
local late = tonumber(now[1]) + tonumber(ARGV[10])
local newest = -math.huge
local drop, kept, all = {}, {}, redis.call('HKEYS', KEYS[1])
for _, f in ipairs(all) do
  local s = tonumber(f)
  if s == nil then drop[#drop + 1] = f elseif s > newest and s <= late then newest = s end
end
local cutoff = math.min(newest, tonumber(now[1])) - tonumber(ARGV[3])
for _, f in ipairs(all) do
  local s = tonumber(f)
  if s ~= nil then
    if s < cutoff or s > late then drop[#drop + 1] = f else kept[#kept + 1] = {s, f} end
  end
end
if #kept > cap then
  table.sort(kept, function(a, b) return a[1] < b[1] end)
  for i = 1, #kept - cap do drop[#drop + 1] = kept[i][2] end
end
for i = 1, #drop, 500 do
  redis.call('HDEL', KEYS[1], unpack(drop, i, math.min(i + 499, #drop)))
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
if tonumber(ARGV[1]) <= late then redis.call('ZADD', KEYS[2], ARGV[1], ARGV[6]) end
local listed = math.min(tonumber(ARGV[1]), tonumber(now[1])) - tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. listed)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[8]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[9])
return #drop
"""

# Delete a rejected field of a hash if it still holds the rejected bytes. KEYS: the hash. ARGV: field, record.
PRUNE_FIELD = """
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' and redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


def liveness_reads_lua(first_key: int) -> str:
    """Lua for the three reads of :meth:`RedisStateStore.liveness` (registry with scores, intervals, departures)
    as one table, their keys at ``KEYS[first_key]`` onwards in :attr:`RedisStateStore.liveness_keys` order: the
    reply :meth:`RedisStateStore.parse_liveness` decodes, for any script that reads the liveness view. A key of
    the wrong type reads as empty (and is counted by the parser's caller when it matters)."""
    k = first_key

    def read(cmd: str, key: int, *args: str) -> str:
        extra = "".join(f", '{a}'" for a in args)
        want = "zset" if cmd == "ZRANGE" else "hash"
        typed = f"redis.call('TYPE', KEYS[{key}])['ok'] == '{want}'"
        return f"({typed} and redis.call('{cmd}', KEYS[{key}]{extra}) or {{}})"

    return f"{{{read('ZRANGE', k, '0', '-1', 'WITHSCORES')}, {read('HGETALL', k + 1)}, {read('HGETALL', k + 2)}}}"


LIVENESS = f"return {liveness_reads_lua(1)}"
