"""Runners: how people and other systems use the agent day to day.

* ``approvals``: the analyst approval queue (one implementation for the API, the CLI and the web page).
* ``case_actions``: case work by people (close with a disposition, reopen, comment, assign); ``case_api``
  serves it over HTTP.
* ``webhooks``: signed ticketing events in (Jira, ServiceNow, TheHive), notes and status out.
* ``auth``: API tokens to identity and role.
* ``metrics``: Prometheus text exposition.
* ``server``: the FastAPI application serving all of the above (``soc-agent serve``).
"""
