"""The health probe: its own shape, 200 when all is well, 503 naming what is not."""

from __future__ import annotations

from datetime import datetime

from tests.api.conftest import PASSWORD, Api, open_app


def test_health_is_ok_on_a_working_service(api: Api):
    for path in ("/health", "/api/health"):
        response = api.get(path)
        assert response.status_code == 200
        body = response.json
        assert body["status"] == "ok"
        assert body["checks"] == {"eventStore": "ok", "readModels": "ok", "notifications": "ok"}
        datetime.fromisoformat(body["timestamp"])


def test_health_is_degraded_when_the_read_models_lag(sqlite_url: str):
    app = open_app(sqlite_url, TICKETING_PROJECTOR="external", READMODEL_LAG_THRESHOLD="2")
    try:
        api = Api(app)
        api.components.service.accounts.register_user("alice", "alice@example.com", PASSWORD)
        response = api.request("GET", "/health")
        assert response.status_code == 503
        assert response.json["status"] == "degraded"
        assert response.json["checks"] == {
            "eventStore": "ok",
            "readModels": "lagging: 3 events",
            # Nor does an outbox follower run here (``ticketing notify`` would).
            "notifications": "lagging: 3 events",
        }
    finally:
        app.extensions["ticketing"].close()


def test_health_names_an_unreachable_event_store(sqlite_api: Api, monkeypatch):
    def unreachable():
        raise ConnectionError("database is down")

    monkeypatch.setattr(sqlite_api.components.service.recorder, "max_notification_id", unreachable)
    response = sqlite_api.request("GET", "/health")
    assert response.status_code == 503
    assert response.json["status"] == "degraded"
    assert response.json["checks"]["eventStore"].startswith("error")
    assert "database is down" not in response.get_data(as_text=True)


def test_health_names_unreachable_read_models(sqlite_api: Api, monkeypatch):
    def unreachable():
        raise ConnectionError("read models are gone")

    monkeypatch.setattr(sqlite_api.components.read_model, "check", unreachable)
    response = sqlite_api.request("GET", "/health")
    assert response.status_code == 503
    assert response.json["checks"] == {
        "eventStore": "ok",
        "readModels": "error: ConnectionError",
        "notifications": "ok",
    }
