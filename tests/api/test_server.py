"""How ``ticketing serve`` sets up each worker process (the server itself runs in the
end-to-end and fault tests)."""

from __future__ import annotations

import gc

from api.server import GC_YOUNG_THRESHOLD, WithoutProcessEnvironment, tune_the_collector


def _collectable(obj: object) -> bool:
    return any(o is obj for generation in range(3) for o in gc.get_objects(generation))


def test_the_collector_leaves_the_start_up_heap_alone_and_runs_rarer():
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        start_up = [[n] for n in range(1000)]  # long-lived objects made before tuning
        assert _collectable(start_up[0])
        tune_the_collector()
        assert gc.get_freeze_count() >= len(start_up)
        assert not _collectable(start_up[0])
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
        later = [len(start_up)]
        assert _collectable(later)  # what is made afterwards is still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_request_loses_the_process_environment_but_keeps_what_the_client_sent():
    seen: dict[str, str] = {}

    def app(environ: dict, _start_response) -> list[bytes]:
        seen.update(environ)
        return []

    environment = {"JWT_SECRET_KEY": "s3cret", "HTTP_PROXY": "http://proxy:3128"}
    environment |= {"SERVER_NAME": "api.example.com", "PATH": "/usr/bin"}
    served = WithoutProcessEnvironment(app, environment)
    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_ACCEPT": "*/*"}
    served({**environment, **request, "HTTP_PROXY": "sent by the client"}, None)
    assert seen == {**request, "HTTP_PROXY": "sent by the client", "SERVER_NAME": "api.example.com"}
    seen.clear()
    served({**environment, **request}, None)
    assert seen == {**request, "SERVER_NAME": "api.example.com"}
