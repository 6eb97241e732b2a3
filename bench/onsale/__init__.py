"""The on-sale benchmark: thousands of users booking at once, then cancellations, over HTTP.

    python -m bench.onsale                 # PostgreSQL, 2 workers x 16 threads, 3 runs
    python -m bench.onsale --runs 1 --users 3000 --tickets 1000 --events 150  # a quick look
    JWT_SECRET_KEY=... python -m bench.onsale --url http://127.0.0.1:8000 \\
        --database-url postgresql://...   # a server that is already running

Each run is made twice, on a fresh stack each time (``ticketing migrate``, ``ticketing serve
--workers N --projector external``, ``ticketing project``; or, with ``--url``, a server
already running): once with one hot event holding every ticket, once with the same users
and tickets spread over ``--events`` events (the order alternates from run to run). The
users are created through the application service (not timed). Then the morning is timed:
the organizer creates the events over HTTP, every user books once over ``--connections``
keep-alive connections (user ``i`` books event ``i mod events``) while status readers poll
alongside, ``--cancellations`` holders cancel (spread over the events), and finally every
connection polls the events' status for ``--read-seconds`` (read capacity on its own).
Rate limits live in Redis, shared by the workers as in production.

Every event is verified from the API and from the store (its confirmed and waitlisted
counts, waitlist positions 1..N, each cancellation promoting its event's queue head), and
the benchmark exits 1 when anything is off. During the booking and cancellation phases it
reads from /proc the CPU of each process group (API workers, projector, PostgreSQL, Redis,
this client) per request. Before and after the runs it measures a trivial Flask+JWT endpoint
under the same server settings (and under gunicorn's threaded worker when gunicorn is
installed: ``pip install -e ".[bench]"``), with its CPU per request, and states the
throughput as a fraction of each ceiling (the mean of before and after: this machine's
speed can move within minutes), and the spread on-sale's throughput as a fraction of the
hot one's in the same run.
"""
