"""The ``ticketing`` command: serve, migrate, project, expire-offers, notify, dispatch, lag,
rebuild, verify, history, users."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from api.config import (
    PROJECTOR_EMBEDDED,
    PROJECTOR_EXTERNAL,
    ConfigError,
    load_service_settings,
    load_settings,
    load_store_settings,
)
from domain.errors import DomainError

if TYPE_CHECKING:
    from domain.service import TicketingService

EXIT_CONFIG = 2
EXIT_INCONSISTENT = 1
EXIT_REFUSED = 1
EXIT_UNHEALTHY = 1
LAG_FOLLOWERS = ("projection", "notifications", "offer-deadlines")
# A batch is well under a second; longer means the store is gone, and then nothing commits.
PROJECT_STOP_TIMEOUT_SECONDS = 10.0  # within docker-compose's stop_grace_period (15 s)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Options override the settings of the same name; each command loads what it needs.
    overrides = {"DATABASE_URL": args.database_url} if args.database_url else {}
    try:
        return args.run(args, overrides) or 0
    except ConfigError as error:
        print(f"ticketing: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except DomainError as error:
        print(f"ticketing: {error.message}", file=sys.stderr)
        return EXIT_REFUSED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketing", description="Event-sourced ticket booking service."
    )
    parser.add_argument(
        "--database-url", help="overrides DATABASE_URL (default sqlite:///var/ticketing.db)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; more than one needs PostgreSQL, `ticketing migrate` run "
        "beforehand and a separate `ticketing project` process",
    )
    serve.add_argument("--threads", type=int, default=16, help="threads per worker")
    serve.add_argument(
        "--projector",
        choices=["embedded", "external"],
        help="where the projection runner runs (default: embedded with one worker)",
    )
    serve.set_defaults(run=_serve)

    commands.add_parser("migrate", help="create the store's tables").set_defaults(run=_migrate)
    project = commands.add_parser("project", help="run the projection runner")
    project.add_argument("--batch-size", type=int, default=500, help="events per transaction")
    project.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between polls when idle"
    )
    project.set_defaults(run=_project)

    expire = commands.add_parser(
        "expire-offers", help="run the offer deadline follower: expire offers when they are due"
    )
    expire.add_argument(
        "--poll-interval", type=float, default=1.0, help="seconds between polls when idle"
    )
    expire.add_argument(
        "--status",
        action="store_true",
        help="print the follower's lag and its most overdue offer, then exit; exit 1 over "
        "--max-overdue-seconds or when unmeasurable (a health check for the follower)",
    )
    expire.add_argument(
        "--max-overdue-seconds",
        type=float,
        metavar="S",
        help="with --status: unhealthy when an open offer is more than S seconds past due",
    )
    expire.set_defaults(run=_expire_offers)

    notify = commands.add_parser(
        "notify", help="run the outbox follower: make webhook and mail messages from the store"
    )
    notify.add_argument("--batch-size", type=int, default=200, help="log entries per transaction")
    notify.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between polls when idle"
    )
    notify.set_defaults(run=_notify)

    dispatch = commands.add_parser(
        "dispatch", help="run the dispatcher: deliver the webhooks and mails the outbox made"
    )
    dispatch.add_argument(
        "--workers", type=int, default=8, help="deliveries in flight at once (one per endpoint)"
    )
    dispatch.add_argument(
        "--poll-interval", type=float, default=0.25, help="seconds between looks for due work"
    )
    dispatch.add_argument(
        "--lease-seconds",
        type=float,
        default=120.0,
        help="how long a claim holds its deliveries: what a killed dispatcher held is taken "
        "again after this",
    )
    dispatch.add_argument(
        "--status",
        action="store_true",
        help="print the outbox's lag and the pending deliveries, then exit; exit 1 over "
        "--max-overdue-seconds or when unmeasurable (a health check for the dispatcher)",
    )
    dispatch.add_argument(
        "--max-overdue-seconds",
        type=float,
        metavar="S",
        help="with --status: unhealthy when a due delivery has waited more than S seconds "
        "past its due time (a receiver that is down does not count: its retries are not due)",
    )
    dispatch.set_defaults(run=_dispatch)

    lag = commands.add_parser(
        "lag",
        help="how far the read models (or another follower) trail the store; exit 1 when over "
        "a limit or unmeasurable (a health check for the projector and the notifier)",
    )
    lag.add_argument(
        "--follower",
        choices=LAG_FOLLOWERS,
        default="projection",
        help="whose position to measure (default: the projection's)",
    )
    lag.add_argument("--max-events", type=int, metavar="N", help="unhealthy above N events")
    lag.add_argument("--max-seconds", type=float, metavar="S", help="unhealthy above S seconds")
    lag.set_defaults(run=_lag)
    commands.add_parser("rebuild", help="rebuild the read models").set_defaults(run=_rebuild)

    verify = commands.add_parser("verify", help="check read models against a replay")
    verify.add_argument("event_id", nargs="?", metavar="EVENT_ID", help="default: every event")
    verify.set_defaults(run=_verify)

    history = commands.add_parser("history", help="an event's timeline, for auditors")
    history.add_argument("event_id", metavar="EVENT_ID")
    history.set_defaults(run=_history)

    users = commands.add_parser("users", help="grant or revoke auditor/admin")
    users.add_argument("action", choices=["grant", "revoke"])
    users.add_argument("email", metavar="EMAIL")
    users.add_argument("role", metavar="ROLE", choices=["auditor", "admin"])
    users.set_defaults(run=_users)
    return parser


Overrides = Mapping[str, str]


def _database_url(overrides: Overrides) -> str:
    return load_store_settings(overrides).database_url


def _open_service(overrides: Overrides) -> TicketingService:
    from adapters import open_service

    return open_service(
        _database_url(overrides), pool_size=2, settings=load_service_settings(overrides)
    )


# ------------------------------------------------------------------ commands
def _serve(args: argparse.Namespace, overrides: Overrides) -> int:
    from api.composition import migrate
    from api.server import serve

    if args.workers < 1 or args.threads < 1:
        raise ConfigError("--workers and --threads must be at least 1.")
    projector = args.projector or (PROJECTOR_EMBEDDED if args.workers == 1 else PROJECTOR_EXTERNAL)
    # Refuse to start on unsafe settings before forking workers; the workers load these.
    settings = load_settings({**overrides, "TICKETING_PROJECTOR": projector})
    if settings.projector == PROJECTOR_EMBEDDED:
        migrate(settings.database_url)
    else:
        _require_migrated(settings.database_url)
    serve(args.host, args.port, args.workers, args.threads, settings)
    return 0


def _require_migrated(database_url: str) -> None:
    """Workers never create tables (they would race): say so before they fail one by one."""
    from projections.queries import ReadModel

    read_model = ReadModel(database_url)
    try:
        read_model.check()
    except Exception:
        raise ConfigError(
            "The store that DATABASE_URL names is not migrated (or unreachable): "
            "run `ticketing migrate` first."
        ) from None
    finally:
        read_model.close()


def _migrate(_args: argparse.Namespace, overrides: Overrides) -> int:
    from api.composition import migrate

    migrate(_database_url(overrides))
    print("migrated the event store and the read models")
    return 0


def _project(args: argparse.Namespace, overrides: Overrides) -> int:
    """Run until SIGTERM or SIGINT; then finish the batch in hand (it commits with its
    tracking position, or not at all) and exit 0."""
    import logging

    from api.request_log import configure_logging
    from projections.runner import ProjectionRunner

    store = load_store_settings(overrides)
    configure_logging(store.log_level)
    log = logging.getLogger("ticketing.projection")
    runner = ProjectionRunner(
        store.database_url, batch_size=args.batch_size, poll_interval=args.poll_interval
    )
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    runner.start()
    log.info("projection runner started", extra={"position": runner.position()})
    stopped.wait()
    runner.stop(timeout=PROJECT_STOP_TIMEOUT_SECONDS)
    try:
        log.info("projection runner stopped", extra={"position": runner.position()})
    finally:
        runner.close()
    return 0


def _expire_offers(args: argparse.Namespace, overrides: Overrides) -> int:
    """Run until SIGTERM or SIGINT, then finish the round in hand and exit 0 (or, with
    ``--status``, report and exit)."""
    import logging

    from adapters import open_service
    from api.request_log import configure_logging
    from projections.offer_deadlines import OfferDeadlineFollower

    if args.status:
        return _offer_deadlines_status(args, overrides)
    store = load_store_settings(overrides)
    configure_logging(store.log_level)
    log = logging.getLogger("ticketing.offer_deadlines")
    # The write service for its one command; it hashes no password and follows no
    # credentials (nobody logs in here).
    service = open_service(
        store.database_url, pool_size=2, settings=load_service_settings(overrides)
    )
    follower = OfferDeadlineFollower(
        store.database_url, service=service, poll_interval=args.poll_interval
    )
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        follower.start()
        log.info("offer deadline follower started", extra={"position": follower.position()})
        stopped.wait()
        follower.stop(timeout=PROJECT_STOP_TIMEOUT_SECONDS)
        log.info("offer deadline follower stopped", extra={"position": follower.position()})
    finally:
        follower.close()
        service.close()
    return 0


def _notify(args: argparse.Namespace, overrides: Overrides) -> int:
    """Run until SIGTERM or SIGINT; then finish the batch in hand (its messages commit with
    its tracking position, or not at all) and exit 0."""
    import logging

    from api.config import load_notification_settings
    from api.request_log import configure_logging
    from projections.notifications.outbox import OutboxFollower

    store = load_store_settings(overrides)
    notifications = load_notification_settings(overrides)
    configure_logging(store.log_level)
    log = logging.getLogger("ticketing.outbox")
    follower = OutboxFollower(
        store.database_url,
        mail=notifications.mail,
        batch_size=args.batch_size,
        poll_interval=args.poll_interval,
    )
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        follower.start()
        log.info("outbox follower started", extra={"position": follower.position()})
        stopped.wait()
        follower.stop(timeout=PROJECT_STOP_TIMEOUT_SECONDS)
        log.info("outbox follower stopped", extra={"position": follower.position()})
    finally:
        follower.close()
    return 0


def _dispatch(args: argparse.Namespace, overrides: Overrides) -> int:
    """Run until SIGTERM or SIGINT; then finish the attempts in hand (what a claim has not
    attempted is given back) and exit 0 (or, with ``--status``, report and exit)."""
    import logging

    from api.config import load_notification_settings
    from api.request_log import configure_logging
    from projections.notifications.dispatcher import open_dispatcher

    if args.status:
        return _dispatch_status(args, overrides)
    store = load_store_settings(overrides)
    notifications = load_notification_settings(overrides)
    configure_logging(store.log_level)
    log = logging.getLogger("ticketing.dispatcher")
    try:
        dispatcher = open_dispatcher(
            store.database_url,
            allow_http=notifications.allow_http,
            allow_private=notifications.allow_private,
            smtp_url=notifications.smtp_url,
            mail_from=notifications.mail_from,
            workers=args.workers,
            poll_interval=args.poll_interval,
            lease_seconds=args.lease_seconds,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        dispatcher.start()
        log.info("dispatcher started", extra={"mail": notifications.mail})
        stopped.wait()
        dispatcher.stop(timeout=PROJECT_STOP_TIMEOUT_SECONDS)
        log.info("dispatcher stopped")
    finally:
        dispatcher.close()
    return 0


def _dispatch_status(args: argparse.Namespace, overrides: Overrides) -> int:
    from adapters.log_reader import open_log
    from adapters.sql import ReadModelDatabase
    from projections.notifications.backlog import measure_backlog

    database_url = _database_url(overrides)
    log = open_log(database_url)
    database = ReadModelDatabase(database_url)
    try:
        backlog = measure_backlog(log, database)
    except Exception as error:  # noqa: BLE001 - unreachable or unmigrated: unhealthy
        print(f"ticketing: cannot measure the backlog: {type(error).__name__}", file=sys.stderr)
        return EXIT_UNHEALTHY
    finally:
        database.close()
        log.close()
    counts = ", ".join(f"{count} {status}" for status, count in backlog.deliveries.items())
    print(
        f"deliveries: {counts}; {backlog.pending_deliveries} can go out "
        f"({backlog.pending_messages} messages, the oldest pending "
        f"{backlog.oldest_pending_seconds:.1f} seconds, the most overdue "
        f"{backlog.overdue_seconds:.1f} seconds past due), {backlog.held_deliveries} held by "
        f"disabled endpoints; outbox {backlog.outbox.events} events behind"
    )
    limit = args.max_overdue_seconds
    if limit is not None and backlog.overdue_seconds > limit:
        print("ticketing: due deliveries have waited beyond the limit", file=sys.stderr)
        return EXIT_UNHEALTHY
    return 0


def _offer_deadlines_status(args: argparse.Namespace, overrides: Overrides) -> int:
    from adapters.log_reader import open_log
    from adapters.sql import ReadModelDatabase
    from projections.offer_deadlines import deadline_status

    database_url = _database_url(overrides)
    log = open_log(database_url)
    database = ReadModelDatabase(database_url)
    try:
        status = deadline_status(log, database)
    except Exception as error:  # noqa: BLE001 - unreachable or unmigrated: unhealthy
        print(f"ticketing: cannot measure the deadlines: {type(error).__name__}", file=sys.stderr)
        return EXIT_UNHEALTHY
    finally:
        database.close()
        log.close()
    upcoming = status.next_deadline.isoformat() if status.next_deadline else "none"
    print(
        f"offer deadlines: {status.open_offers} open, next {upcoming}, most overdue "
        f"{status.overdue_seconds:.1f} seconds; {status.events} events unread "
        f"(at position {status.position}, store at {status.head})"
    )
    limit = args.max_overdue_seconds
    if limit is not None and status.overdue_seconds > limit:
        print("ticketing: open offers are overdue beyond the limit", file=sys.stderr)
        return EXIT_UNHEALTHY
    return 0


def _lag(args: argparse.Namespace, overrides: Overrides) -> int:
    from adapters.log_reader import open_log
    from adapters.sql import ReadModelDatabase
    from projections.runner import measure_lag

    database_url = _database_url(overrides)
    log = open_log(database_url)
    database = ReadModelDatabase(database_url)
    try:
        lag = measure_lag(log, database, _tracking_name(args.follower))
    except Exception as error:  # noqa: BLE001 - unreachable or unmigrated: unhealthy
        print(f"ticketing: cannot measure the lag: {type(error).__name__}", file=sys.stderr)
        return EXIT_UNHEALTHY
    finally:
        database.close()
        log.close()
    print(
        f"lag: {lag.events} events, {lag.seconds:.1f} seconds "
        f"({args.follower} at position {lag.position}, store at {lag.head})"
    )
    too_many = args.max_events is not None and lag.events > args.max_events
    too_old = args.max_seconds is not None and lag.seconds > args.max_seconds
    if too_many or too_old:
        print(f"ticketing: the {args.follower} lags behind the limit", file=sys.stderr)
        return EXIT_UNHEALTHY
    return 0


def _tracking_name(follower: str) -> str:
    """The ``projection_tracking`` row of a follower named as ``lag --follower`` names it."""
    if follower == "notifications":
        from projections.notifications.schema import TRACKING_NAME

        return TRACKING_NAME
    if follower == "offer-deadlines":
        from projections.offer_deadlines import TRACKING_NAME

        return TRACKING_NAME
    from projections.tracking import LIVE

    return LIVE


def _rebuild(_args: argparse.Namespace, overrides: Overrides) -> int:
    from projections.rebuild import rebuild

    processed = rebuild(_database_url(overrides), progress=True)
    print(f"rebuilt the read models from {processed} stored events")
    return 0


def _verify(args: argparse.Namespace, overrides: Overrides) -> int:
    from adapters.log_reader import open_log
    from projections.queries import ReadModel
    from projections.verify import all_event_ids, verify

    database_url = _database_url(overrides)
    log = open_log(database_url)
    read_model = ReadModel(database_url)
    try:
        event_ids = [args.event_id] if args.event_id else all_event_ids(log)
        inconsistent = 0
        for event_id in event_ids:
            result = verify(log, read_model, event_id)
            if result["consistent"]:
                print(f"{event_id}  consistent")
            else:
                inconsistent += 1
                print(f"{event_id}  INCONSISTENT")
                for difference in result["differences"]:
                    print(f"    {json.dumps(difference, default=str)}")
        print(f"{len(event_ids)} event(s) checked, {inconsistent} inconsistent")
        return EXIT_INCONSISTENT if inconsistent else 0
    finally:
        read_model.close()
        log.close()


def _history(args: argparse.Namespace, overrides: Overrides) -> int:
    from adapters.log_reader import open_log
    from projections.audit import history

    log = open_log(_database_url(overrides))
    try:
        from_version: int | None = 1
        while from_version is not None:
            page = history(log, args.event_id, from_version, 500)
            for item in page["items"]:
                print(describe(item))
            from_version = page["nextVersion"]
        return 0
    finally:
        log.close()


def describe(item: dict[str, Any]) -> str:
    """One history item as a line an auditor reads: when, version, what, with whom.

    Values come from stored data that clients wrote (an event's name, older ones included),
    so each is printed as ``shown``: it can neither end the line nor steer the terminal.
    """
    facts = "  ".join(
        f"{shown(name)}={shown(value)}"
        for name, value in item["data"].items()
        if value not in (None, "")
    )
    return f"{item['occurredAt']}  v{item['version']:<5} {item['type']:<17} {facts}".rstrip()


def shown(value: Any) -> str:
    """``value`` fit for a terminal line: a string that holds anything but visible
    characters (spaces, quotes and ``=`` included) is quoted, with every control, format or
    separator character escaped as ``\\xNN``/``\\uNNNN``; lists and objects as JSON, escaped
    alike."""
    if isinstance(value, (list, dict)):
        return _escaped(json.dumps(value, ensure_ascii=False, default=str))
    value = str(value)
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    body = _escaped(value.replace("\\", "\\\\").replace('"', '\\"'))
    return f'"{body}"'


def _escaped(text: str) -> str:
    return "".join(
        character if character.isprintable() or character == " " else _escape(character)
        for character in text
    )


def _escape(character: str) -> str:
    code = ord(character)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _users(args: argparse.Namespace, overrides: Overrides) -> int:
    service = _open_service(overrides)
    try:
        user = service.accounts.find_user_by_email(args.email)
        user = service.accounts.set_role(user.id, args.role, grant=args.action == "grant")
        print(f"{shown(user.email)}: roles {', '.join(user.roles)}")
        return 0
    finally:
        service.close()


if __name__ == "__main__":
    sys.exit(main())
