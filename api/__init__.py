"""The HTTP API of the ticketing service (see shared/API.md); ``api.app.create_app`` builds it."""
