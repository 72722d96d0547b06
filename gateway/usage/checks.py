"""The checks an event accepted while Lago could not be asked gets before it is forwarded."""

from __future__ import annotations

import asyncio

from gateway.usage.lookups import Known, LagoLookups
from gateway.usage.store import Claimed


async def recheck(
    lookups: LagoLookups, claimed: list[Claimed]
) -> tuple[list[Claimed] | None, dict[Claimed, str]]:
    """Events accepted while Lago was unreachable are checked before they are sent.

    Returns (events to send, events found invalid with the reason); None to send when Lago
    still cannot tell (then the second item holds the whole batch to retry). The distinct
    metrics and subscriptions are looked up concurrently: each lookup waits for Lago at most
    a second, and the claim is held open meanwhile.
    """
    unchecked = [c for c in claimed if c.needs_check]
    if not unchecked:
        return claimed, {}
    codes = sorted({c.code for c in unchecked})
    subscriptions = sorted({c.external_subscription_id for c in unchecked})
    answers = await asyncio.gather(
        *(lookups.metric(code) for code in codes),
        *(lookups.subscription(sub) for sub in subscriptions),
    )
    if Known.UNSURE in answers:
        return None, dict.fromkeys(claimed, "")
    metric = dict(zip(codes, answers[: len(codes)], strict=True))
    subscription = dict(zip(subscriptions, answers[len(codes) :], strict=True))
    send: list[Claimed] = []
    dead: dict[Claimed, str] = {}
    for c in claimed:
        if not c.needs_check:
            send.append(c)
        elif metric[c.code] is Known.NO:
            dead[c] = '{"code":["billable_metric_not_found"]}'
        elif subscription[c.external_subscription_id] is Known.NO:
            dead[c] = '{"external_subscription_id":["subscription_not_found"]}'
        else:
            send.append(c)
    return send, dead
