"""The subscription decision table (reference 4.1), pure."""

from __future__ import annotations

import itertools

import pytest

from listmgr.commands.policy import Action, subscribe_action, unsubscribe_action
from listmgr.listconfig import POLICIES

D, C, F = Action.DO, Action.CONFIRM, Action.FORWARD

# policy: (self unconfirmed, other unconfirmed, self confirmed, other confirmed)
SUBSCRIBE = {
    "open": (D, F, D, F),
    "closed": (F, F, F, F),
    "auto": (D, C, D, D),
    "open+confirm": (C, C, D, F),
    "closed+confirm": (C, C, F, F),
    "auto+confirm": (C, C, D, D),
}
UNSUBSCRIBE = {
    "open": (D, F, D, F),
    "closed": (D, F, D, F),
    "auto": (D, C, D, D),
    "open+confirm": (D, C, D, F),
    "closed+confirm": (D, C, D, F),
    "auto+confirm": (D, C, D, D),
}


@pytest.mark.parametrize("fn,table", [(subscribe_action, SUBSCRIBE),
                                      (unsubscribe_action, UNSUBSCRIBE)])
def test_table(fn, table):
    assert set(table) == set(POLICIES)
    for policy, expected in table.items():
        got = tuple(fn(policy, approved=False, self_request=s, confirmed=c)
                    for c, s in ((False, True), (False, False), (True, True), (True, False)))
        assert got == expected, policy


def test_approved_always_acts():
    for fn, policy, s, c in itertools.product((subscribe_action, unsubscribe_action), POLICIES,
                                              (True, False), (True, False)):
        assert fn(policy, approved=True, self_request=s, confirmed=c) is Action.DO
