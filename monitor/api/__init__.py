"""The sidecar HTTP service (aiohttp): see :func:`monitor.api.app.create_app`."""

from monitor.api.app import create_app

__all__ = ["create_app"]
