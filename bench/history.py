"""Large, realistic histories written quickly: commands decided on live aggregates, saved in chunks.

Every stored event is a real, rule-checked fact (the aggregate's commands decide them); only
the HTTP layer and per-command transactions are skipped, which is what makes 10^6 events
take seconds instead of hours. Used by the benchmarks and by the projection tests.
"""

from __future__ import annotations

import random

from domain.errors import DomainError
from domain.event import Event
from domain.service import TicketingService

ORGANIZER = "organizer"


def random_history(
    service: TicketingService,
    target_events: int,
    *,
    seed: int = 7,
    events: int = 3,
    users: int = 300,
    save_every: int = 200,
) -> list[str]:
    """Random book / cancel / leave / capacity / close commands on a few events."""
    rng = random.Random(seed)
    created = [
        service.create_event(ORGANIZER, f"Event {n}", rng.randint(5, 60), 3) for n in range(events)
    ]
    aggregates = {view.id: service.get_event(view.id) for view in created}
    written = len(created)
    step = 0
    while written < target_events:
        step += 1
        event: Event = aggregates[rng.choice(list(aggregates))]
        user = f"user-{rng.randrange(users)}"
        roll = rng.random()
        try:
            if roll < 0.55:
                event.book(user, rng.randint(1, 3))
            elif roll < 0.75 and event.bookings:
                event.cancel(ORGANIZER, booking_id=rng.choice(list(event.bookings)))
            elif roll < 0.88 and event.waitlist:
                event.cancel(ORGANIZER, waiting_list_id=rng.choice(list(event.waitlist)))
            elif roll < 0.995:
                event.change_capacity(ORGANIZER, max(event.booked, rng.randint(1, 80)))
            elif not event.closed:
                event.close(ORGANIZER)
        except DomainError:
            pass
        if step % save_every == 0:
            written += sum(len(a.pending_events) for a in aggregates.values())
            service.save(*aggregates.values())
    service.save(*aggregates.values())
    return list(aggregates)


def churn_history(
    service: TicketingService,
    target_events: int,
    *,
    tickets: int = 10_000,
    waiting: int = 20_000,
    seed: int = 1,
    save_every: int = 5_000,
) -> str:
    """One hot event: sold out, a long queue, then cancellations that promote the queue head
    while newcomers join the back. State stays the size of an on-sale; history grows."""
    rng = random.Random(seed)
    view = service.create_event(ORGANIZER, "Hot event", tickets, 1)
    event: Event = service.get_event(view.id)
    active: list[str] = []
    written, user = 1, 0
    while written < target_events:
        pending = len(event.pending_events)
        if len(active) < tickets or len(event.waitlist) < waiting:
            outcome = event.book(f"user-{user}", 1)
            user += 1
            if outcome.booking_id:
                active.append(outcome.booking_id)
        else:
            index = rng.randrange(len(active))
            active[index], active[-1] = active[-1], active[index]
            result = event.cancel(ORGANIZER, booking_id=active.pop())
            active.extend(r["bookingId"] for r in result.reassigned)
        written += len(event.pending_events) - pending
        if len(event.pending_events) >= save_every:
            service.save(event)
    service.save(event)
    return view.id
