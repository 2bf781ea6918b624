"""Runners: how people and other systems use the agent day to day.

* ``approvals``: the analyst approval queue (one implementation for the API, the CLI and the web page).
* ``case_actions``: case work by people (close with a disposition, reopen, comment, assign); ``case_api``
  serves it over HTTP.
* ``webhooks``: signed ticketing events in (Jira, ServiceNow, TheHive), notes and status out.
* ``auth``: API tokens to identity and role.
* ``metrics``: Prometheus text exposition.
* ``api``: the JSON API's routers and the bearer-token identity dependency they share with ``edge_api``.
* ``ui``: the web page (queue, item and case pages).
* ``hec``: the Splunk HEC-compatible intake; ``broker_intake``: the fleet's intake through the broker.
* ``errors``: ``Rejected``, the one HTTP refusal (status, Retry-After) every intake raises.
* ``limits``: ``read_limited``, the one bounded body reader.
* ``server``: the FastAPI application that wires all of the above (``soc-agent serve``).
"""
