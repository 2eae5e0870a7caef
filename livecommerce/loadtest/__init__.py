"""``livecommerce loadtest``: a viewer swarm measuring fan-out latency and exactly-once delivery.

Modules: ``hist`` (mergeable log-bucketed latency histogram), ``wsclient`` (a lean raw-asyncio
WebSocket viewer), ``swarm`` (a worker process holding thousands of viewers), ``spawn`` (servers
started for a run), ``runner`` (the coordinator: ramp, pushes, churn, results) and ``report``
(summary table, JSON, plot).
"""
