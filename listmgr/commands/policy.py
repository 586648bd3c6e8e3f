"""Subscription policy decisions (reference section 4), pure.

Majordomo's decision table, made stricter where it let one person change another's
membership: under `auto` a third-party subscribe or unsubscribe first needs the address's
own confirmation. `self_request` means the mail's requester identities all name the
address; `confirmed` that a valid auth key for exactly this request came with it.
"""

from __future__ import annotations

import enum


class Action(enum.Enum):
    DO = "do"            # add / remove now
    CONFIRM = "confirm"  # mail an auth key to the address, wait for it
    FORWARD = "forward"  # ask the owners (APPROVE LIST)


def base(policy: str) -> str:
    return policy.split("+", 1)[0]


def subscribe_action(policy: str, *, approved: bool, self_request: bool,
                     confirmed: bool) -> Action:
    if approved:
        return Action.DO
    if "confirm" in policy and not confirmed:
        return Action.CONFIRM
    kind = base(policy)
    if kind == "auto":
        return Action.DO if (self_request or confirmed) else Action.CONFIRM
    if kind == "open":
        return Action.DO if self_request else Action.FORWARD
    return Action.FORWARD  # closed


def unsubscribe_action(policy: str, *, approved: bool, self_request: bool,
                       confirmed: bool) -> Action:
    if approved or self_request:  # people can always remove themselves
        return Action.DO
    if "confirm" in policy and not confirmed:
        return Action.CONFIRM
    if base(policy) == "auto":
        return Action.DO if confirmed else Action.CONFIRM
    return Action.FORWARD
