"""The on-sale's users and their tokens, made outside the timed phases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta


def create_users(database_url: str, count: int, tag: str) -> tuple[list[str], str]:
    """Users through the application service (not timed); returns their ids and the organizer.

    ``tag`` makes the names unique, so runs against a long-lived server's store never meet.
    """
    from adapters import open_service

    service = open_service(
        database_url, pool_size=8, ARGON2_TIME_COST="1", ARGON2_MEMORY_COST="1024"
    )
    try:
        organizer = service.accounts.register_user(
            f"organizer-{tag}", f"organizer-{tag}@bench.example", "bench-pass-1"
        )

        def register(n: int) -> str:
            return service.accounts.register_user(
                f"user{n}-{tag}", f"user{n}-{tag}@bench.example", "bench-pass-1"
            ).id

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(register, range(count), chunksize=64)), organizer.id
    finally:
        service.close()


def mint_tokens(secret: str, user_ids: list[str]) -> dict[str, str]:
    """Access tokens as the service issues them (identity + credential version)."""
    from flask import Flask
    from flask_jwt_extended import JWTManager, create_access_token

    app = Flask("bench-tokens")
    app.config["JWT_SECRET_KEY"] = secret
    JWTManager(app)
    with app.app_context():
        return {
            user_id: create_access_token(
                identity=user_id, additional_claims={"cv": 1}, expires_delta=timedelta(hours=3)
            )
            for user_id in user_ids
        }
