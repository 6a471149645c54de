"""clusternb's Jupyter server extension: gzipped REST, a change-only WebSocket, a dashboard page, Prometheus.

Routes, all under the server's base URL::

    clusternb/                      dashboard page (live through the WebSocket)
    clusternb/api/cluster/status    one-row summary       clusternb/api/workers         one row per node
    clusternb/api/metrics/system    time series           clusternb/api/alerts          alerts
    clusternb/api/cache/status      query cache health    clusternb/api/openapi.json    the API description
    clusternb/api/ws                WebSocket             clusternb/metrics             Prometheus text
"""
