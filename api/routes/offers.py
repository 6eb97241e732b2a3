"""Waitlist offers: the caller's open offers, and accepting or declining one."""

from __future__ import annotations

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api import composition
from api.auth import authenticated, caller_id
from api.idempotency import idempotency
from api.openapi import documented
from api.parsing import json_body, query_args
from api.presenters import accepted_json, declined_json, offer_item_json, page_json
from api.schemas.common import PageQuery, RequestSchema
from api.schemas.offers import OfferAcceptedSchema, OfferDeclinedSchema, OfferPageSchema

bp = Blueprint("offers", __name__, url_prefix="/api")

ANSWER_ERRORS = (400, 403, 404, 409, 413, 415, 422, 503)
ANSWER_DESCRIPTION = (
    "Only the person the offer was made to may answer it (403 otherwise). 404 "
    "`offer_not_found`; 409 `offer_expired` once `expiresAt` has passed, 409 `offer_closed` "
    "when it was already accepted or declined. Takes no body (or an empty object)."
)


@bp.get("/users/me/offers")
@authenticated
@documented(
    "The caller's open offers, soonest deadline first",
    tag="offers",
    query=PageQuery,
    responses={200: OfferPageSchema},
    errors=(400,),
)
def my_offers() -> ResponseReturnValue:
    page = query_args(PageQuery)
    items, next_cursor = composition.reads().user_offers(caller_id(), page["limit"], page["cursor"])
    return page_json(items, next_cursor, offer_item_json)


@bp.post("/offers/<offer_id>/accept")
@authenticated
@documented(
    "Accept an offer: its held seats join the caller's booking",
    tag="offers",
    responses={201: OfferAcceptedSchema},
    errors=ANSWER_ERRORS,
    idempotent=True,
    description="A partial holder's seats join their existing booking (same `bookingId`, "
    "larger `quantity`); if the entry wanted more seats, the rest keeps its place at the "
    "head of the queue. " + ANSWER_DESCRIPTION,
)
def accept(offer_id: str) -> ResponseReturnValue:
    data = json_body(RequestSchema, optional=True)
    user_id = caller_id()
    event_id, outcome = composition.service().accept_offer(
        offer_id, user_id, idempotency(user_id, data)
    )
    return accepted_json(event_id, outcome), 201


@bp.post("/offers/<offer_id>/decline")
@authenticated
@documented(
    "Decline an offer: the caller leaves the waiting list",
    tag="offers",
    responses={200: OfferDeclinedSchema},
    errors=ANSWER_ERRORS,
    idempotent=True,
    description="The seats are offered to the next heads of the queue in the same append "
    "(`offeredTo`). " + ANSWER_DESCRIPTION,
)
def decline(offer_id: str) -> ResponseReturnValue:
    data = json_body(RequestSchema, optional=True)
    user_id = caller_id()
    _event_id, outcome = composition.service().decline_offer(
        offer_id, user_id, idempotency(user_id, data)
    )
    return declined_json(outcome)
