"""The HTTP API of the ticketing service (see shared/API.md)."""

from api.app import create_app

__all__ = ["create_app"]
