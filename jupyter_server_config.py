"""The Jupyter server configuration `make lab` runs with: clusternb on its embedded defaults.

Every clusternb setting can go here as ``c.ClusterNB.<name>``; the same names work as CLUSTERNB_* environment
variables and as keyword arguments to ``clusternb.connect()``. Run ``clusternb config`` to list them.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - injected by Jupyter's config loader

# Jupyter refuses to run as root unless told; `make lab` must work in a root container too.
c.ServerApp.allow_root = os.geteuid() == 0
# gzip every response over 1 KB (tornado's GZipContentEncoding); clusternb's own API compresses regardless.
c.ServerApp.tornado_settings = {"compress_response": True}

# clusternb settings (embedded defaults shown; uncomment to change).
# c.ClusterNB.interval = 2.0            # seconds between samples
# c.ClusterNB.history_window = 3600.0   # seconds of history kept for metrics()
# c.ClusterNB.disk_path = "/"           # filesystem reported as disk_*
# c.ClusterNB.redis_url = "redis://localhost:6379/0"   # cluster mode: shared state and cache
# c.ClusterNB.cache_ttls = {"workers": 10}             # seconds, per query namespace
