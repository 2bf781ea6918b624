"""ServiceNow Table API: incident create, work note and close."""

from connectors.servicenow.responder import ServiceNowResponder

__all__ = ["ServiceNowResponder"]
