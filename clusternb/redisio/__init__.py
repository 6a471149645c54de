"""Everything about talking to Redis, in one place: URLs, the client, errors, health, backoff and scripts.

    urls.py         check and mask a Redis URL (no redis-py import: settings use it)
    errors.py       RedisFault -> Unavailable (fall back) | Refused (this call's error); translate()
    link.py         RedisLink: one client per process (standalone or cluster, detected), health, backoff
    scripts.py      LinkScript: a Lua script called through the link (a held connection when standalone)
    held_script.py  the held-connection EVALSHA that keeps an agent's publish cheap

Nothing outside this package imports ``redis`` for anything but type names.
"""
