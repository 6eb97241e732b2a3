"""Rate limits: per user when authenticated, per IP otherwise, stricter on auth routes."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from tests.api.conftest import PASSWORD, Api, error_code, open_app
from tests.api.servers import running_server

REDIS_URL = "redis://127.0.0.1:6379"


@pytest.fixture
def limited(sqlite_url: str):
    app = open_app(sqlite_url, RATE_LIMIT_DEFAULT="3 per minute", RATE_LIMIT_AUTH="2 per minute")
    yield Api(app)
    app.extensions["ticketing"].close()


def _register(api: Api, name: str):
    return api.post(
        "/api/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": PASSWORD},
    )


def test_responses_carry_the_rate_limit_headers(limited: Api):
    response = _register(limited, "alice")
    assert response.headers["X-RateLimit-Limit"] == "2"
    assert response.headers["X-RateLimit-Remaining"] == "1"
    assert int(response.headers["X-RateLimit-Reset"]) > 0
    refused = limited.get("/api/users/me")
    assert refused.status_code == 401
    assert refused.headers["X-RateLimit-Limit"] == "3"


def test_register_and_login_are_limited_per_ip(limited: Api):
    assert _register(limited, "alice").status_code == 201
    assert _register(limited, "bob").status_code == 201
    refused = _register(limited, "carol")
    assert refused.status_code == 429
    assert error_code(refused) == "rate_limited"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    login = limited.login("alice@example.com")
    assert login.status_code == 200  # login has its own budget


def test_offer_routes_are_under_the_default_limit_like_the_others(limited: Api):
    limited.components.service.accounts.register_user("alice", "alice@example.com", PASSWORD)
    token = limited.login("alice@example.com").json["token"]
    as_alice = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", "/api/users/me/offers"),
        ("POST", f"/api/offers/of_{'0' * 32}_1/accept"),
        ("POST", f"/api/offers/of_{'0' * 32}_1/decline"),
    ):
        answers = [limited.request(method, path, headers=as_alice) for _ in range(4)]
        assert all(a.status_code != 429 for a in answers[:3]), path
        assert answers[0].headers["X-RateLimit-Limit"] == "3", path
        assert answers[3].status_code == 429, path
        assert error_code(answers[3]) == "rate_limited"


def test_authenticated_clients_are_limited_per_user_not_per_ip(limited: Api):
    service = limited.components.service
    for name in ("alice", "bob"):
        service.accounts.register_user(name, f"{name}@example.com", PASSWORD)
    alice = limited.login("alice@example.com").json["token"]
    bob = limited.login("bob@example.com").json["token"]
    as_alice = {"Authorization": f"Bearer {alice}"}
    for _ in range(3):
        assert limited.request("GET", "/api/users/me", headers=as_alice).status_code == 200
    refused = limited.request("GET", "/api/users/me", headers=as_alice)
    assert refused.status_code == 429
    assert error_code(refused) == "rate_limited"
    as_bob = {"Authorization": f"Bearer {bob}"}
    assert limited.request("GET", "/api/users/me", headers=as_bob).status_code == 200


def test_health_is_never_rate_limited(limited: Api):
    for _ in range(10):
        assert limited.request("GET", "/health").status_code == 200


def test_unmatched_paths_are_not_counted(limited: Api):
    for _ in range(5):
        response = limited.request("GET", "/api/no-such-route")
        assert response.status_code == 404
        assert "X-RateLimit-Limit" not in response.headers


def test_each_route_has_its_own_budget_under_the_default_limit(limited: Api):
    for _ in range(3):
        assert limited.request("GET", "/api/users/me").status_code == 401
    assert limited.request("GET", "/api/users/me").status_code == 429
    other = limited.request("GET", "/api/users/me/bookings")
    assert other.status_code == 401
    assert other.headers["X-RateLimit-Remaining"] == "2"


def test_a_list_of_limits_shows_and_refuses_by_its_shortest_window(sqlite_url: str):
    app = open_app(sqlite_url, RATE_LIMIT_DEFAULT="3 per hour; 2 per minute")
    try:
        api = Api(app)
        answers = [api.request("GET", "/api/users/me") for _ in range(3)]
        assert [a.headers["X-RateLimit-Limit"] for a in answers[:2]] == ["2", "2"]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers[:2]] == ["1", "0"]
        assert [a.status_code for a in answers] == [401, 401, 429]
        assert 0 < int(answers[2].headers["Retry-After"]) <= 60
        assert "Retry-After" not in answers[1].headers
    finally:
        app.extensions["ticketing"].close()


def _redis_problem() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        return f"Redis at {REDIS_URL} is unreachable: {error}"
    return None


@pytest.mark.slow
def test_two_server_processes_share_one_budget_through_redis(tmp_path):
    problem = _redis_problem()
    if problem:
        pytest.skip(problem)
    shared = {
        "RATELIMIT_STORAGE_URI": REDIS_URL,
        "RATELIMIT_KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        "RATE_LIMIT_AUTH": "3 per minute",
    }
    with (
        running_server(f"sqlite:///{tmp_path}/a.db", tmp_path / "a.log", **shared) as first,
        running_server(f"sqlite:///{tmp_path}/b.db", tmp_path / "b.log", **shared) as second,
    ):
        wrong = {"email": "nobody@example.com", "password": "wrong password"}
        codes = [
            requests.post(f"{base}/api/auth/login", json=wrong, timeout=10).status_code
            for base in (first, second, first, second)
        ]
    assert codes == [401, 401, 401, 429]


def test_an_unreachable_limit_store_falls_back_to_memory_instead_of_failing(sqlite_url: str):
    app = open_app(
        sqlite_url,
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:1",
        RATE_LIMIT_DEFAULT="2 per minute",
    )
    try:
        api = Api(app)
        codes = [api.request("GET", "/api/users/me").status_code for _ in range(3)]
        assert codes == [401, 401, 429]
    finally:
        app.extensions["ticketing"].close()


def test_redis_limits_cost_one_round_trip_per_request_with_exact_window_stats(monkeypatch):
    problem = _redis_problem()
    if problem:
        pytest.skip(problem)
    import threading

    from limits import parse
    from limits.storage import RedisStorage, storage_from_string
    from limits.strategies import FixedWindowRateLimiter

    from api.ratelimit import OneTripRedisStorage, storage_uri

    prefix = f"test-{uuid.uuid4().hex}"
    storage = storage_from_string(storage_uri(REDIS_URL), key_prefix=prefix)
    assert isinstance(storage, OneTripRedisStorage)
    limiter, limit = FixedWindowRateLimiter(storage), parse("3 per minute")
    storage.incr("warm-up", 60)  # this thread's connection made (its handshake is not a hit's)
    # Every command of every client (the pooled one, each thread's) leaves through this.
    connection_class = storage.get_connection().connection_pool.connection_class
    calls: list[bytes] = []
    real = connection_class.send_packed_command

    def counted(self, command, *args, **kwargs):
        calls.append(command)
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(connection_class, "send_packed_command", counted)
    allowed, remaining, resets = [], [], set()
    for _ in range(4):  # what flask-limiter does per request: hit, then read the window
        allowed.append(limiter.hit(limit, "alice"))
        stats = limiter.get_window_stats(limit, "alice")
        remaining.append(stats.remaining)
        resets.add(int(stats.reset_time))
    assert allowed == [True, True, True, False]
    assert remaining == [2, 1, 0, 0] and len(resets) == 1
    assert len(calls) == 4  # one script call per request: the window came with the hit

    # Another thread has no hit of its own to go by: it reads Redis.
    seen: list[int] = []
    thread = threading.Thread(
        target=lambda: seen.append(limiter.get_window_stats(limit, "alice").remaining)
    )
    thread.start()
    thread.join()
    assert seen == [0] and len(calls) > 4
    monkeypatch.undo()

    # The counter in Redis is the one limits' own storage keeps and reads.
    plain = FixedWindowRateLimiter(RedisStorage(REDIS_URL, key_prefix=prefix))
    assert plain.get_window_stats(limit, "alice").remaining == 0
    assert not plain.hit(limit, "alice")


def test_redis_and_memory_uris_go_through_the_storages_of_api_ratelimit():
    from api.ratelimit import storage_uri

    assert storage_uri("redis://127.0.0.1:6379/0") == "ticketing+redis://127.0.0.1:6379/0"
    assert storage_uri("rediss://cache:6380") == "ticketing+rediss://cache:6380"
    assert storage_uri("memory://") == "ticketing+memory://"
    assert storage_uri("memcached://cache:11211") == "memcached://cache:11211"


def test_a_hit_after_redis_lost_its_scripts_loads_the_script_again():
    problem = _redis_problem()
    if problem:
        pytest.skip(problem)
    import redis
    from limits.storage import storage_from_string

    from api.ratelimit import storage_uri

    storage = storage_from_string(storage_uri(REDIS_URL), key_prefix=f"test-{uuid.uuid4().hex}")
    assert [storage.incr("alice", 60), storage.incr("alice", 60)] == [1, 2]
    redis.Redis.from_url(REDIS_URL).script_flush()  # as after a restart of Redis
    assert storage.incr("alice", 60) == 3
    assert 0 < storage.get_expiry("alice") - time.time() <= 60
