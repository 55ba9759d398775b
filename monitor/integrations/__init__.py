"""Integrations with agent frameworks and observability tools (each an optional extra)."""
