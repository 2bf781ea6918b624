"""Jira (Cloud REST v3): ticket create, comment and close."""

from connectors.jira.responder import JiraResponder

__all__ = ["JiraResponder"]
