"""The ceiling: a trivial Flask endpoint that decodes a JWT and answers a small JSON body.

The on-sale benchmark runs it under the same server settings as the service, so our
throughput can be stated as a fraction of what any Flask service can do on the machine.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify
from flask_jwt_extended import JWTManager, get_jwt_identity, jwt_required


def create_app() -> Flask:
    app = Flask("baseline")
    app.config["JWT_SECRET_KEY"] = os.environ["JWT_SECRET_KEY"]
    JWTManager(app)

    @app.post("/api/book")
    @jwt_required()
    def book():  # noqa: ANN202 - a view
        return jsonify(userId=get_jwt_identity(), status="confirmed"), 201

    return app


app = create_app() if "JWT_SECRET_KEY" in os.environ else None
