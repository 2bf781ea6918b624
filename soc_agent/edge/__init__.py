"""The edge sensor: local sshd brute-force detection and blocking, signed upstream reports, federated intel.

Nothing is imported here on purpose: the sensor process (``python -m
soc_agent.edge.sensor``) runs on the standard library alone so that it stays
small and fast; only the CLI step that compiles the guard policy and the
server side (``soc_agent.runners.edge_api``) load the heavier core.

Modules: ``parse`` (sshd lines → counted attempts), ``window`` (per-source
sliding windows), ``guardlite`` (the guard policy compiled for local use),
``firewall`` (libnftables, the responder's table layout), ``tail`` (file and
journald followers), ``signing``, ``reporter``, ``intel``, ``sensor``, ``tables``.
"""
