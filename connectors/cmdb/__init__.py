"""Asset inventory over HTTP: a simple JSON API or the ServiceNow CMDB table API."""

from connectors.cmdb.enricher import CmdbEnricher

__all__ = ["CmdbEnricher"]
