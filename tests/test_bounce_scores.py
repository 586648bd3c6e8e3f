"""Bounce scores as Mailman 3 keeps them (pure policy), and per-recipient parts."""

from __future__ import annotations

import datetime as dt

from listmgr import unsubscribe
from listmgr.bounces import scores
from listmgr.bounces.scores import HARD, SOFT, State
from listmgr.delivery.personal import ListParts
from listmgr.store.bounces import MemberInfo

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 12, 1, 9, 0)
S = scores.Settings(threshold=5.0, warnings=3, warning_interval=7 * DAY, stale_after=7 * DAY)


def test_hard_one_soft_half_one_a_day():
    st, what = scores.bounce(State(), HARD, S, T0)
    assert what == scores.SCORED and st.bounce_score == 1.0
    st2, what = scores.bounce(st, HARD, S, T0 + dt.timedelta(hours=3))
    assert what == scores.IGNORED and st2 == st  # same day: once only
    st, what = scores.bounce(st, SOFT, S, T0 + DAY)
    assert what == scores.SCORED and st.bounce_score == 1.5


def test_threshold_disables_and_counts_the_first_notice():
    st = State()
    for day in range(4):
        st, what = scores.bounce(st, HARD, S, T0 + day * DAY)
        assert what == scores.SCORED and st.delivery_enabled
    st, what = scores.bounce(st, HARD, S, T0 + 4 * DAY)
    assert what == scores.DISABLED
    assert not st.delivery_enabled and st.disabled_reason == "bounces"
    assert st.warnings_sent == 1 and st.last_warning_at == T0 + 4 * DAY
    # Disabled: further bounces are not scored.
    assert scores.bounce(st, HARD, S, T0 + 5 * DAY)[1] == scores.IGNORED


def test_stale_scores_start_again():
    st, _ = scores.bounce(State(), HARD, S, T0)
    st, _ = scores.bounce(st, HARD, S, T0 + DAY)
    assert scores.effective_score(st, S, T0 + 9 * DAY) == 0.0
    st, _ = scores.bounce(st, HARD, S, T0 + 9 * DAY)
    assert st.bounce_score == 1.0


def test_warnings_every_interval_then_removal():
    st, _ = scores.bounce(State(), HARD, scores.Settings(threshold=1.0, warnings=3,
                                                          warning_interval=7 * DAY), T0)
    s = scores.Settings(threshold=1.0, warnings=3, warning_interval=7 * DAY)
    assert st.warnings_sent == 1
    assert scores.tick(st, s, T0 + 6 * DAY)[1] == scores.IGNORED
    st, what = scores.tick(st, s, T0 + 7 * DAY)
    assert what == scores.WARN and st.warnings_sent == 2
    st, what = scores.tick(st, s, T0 + 14 * DAY)
    assert what == scores.WARN and st.warnings_sent == 3
    assert scores.tick(st, s, T0 + 20 * DAY)[1] == scores.IGNORED
    assert scores.tick(st, s, T0 + 21 * DAY)[1] == scores.REMOVE


def test_no_warnings_means_removal_at_once():
    s = scores.Settings(threshold=1.0, warnings=0)
    st, what = scores.bounce(State(), HARD, s, T0)
    assert what == scores.DISABLED and st.warnings_sent == 0
    assert scores.tick(st, s, T0)[1] == scores.REMOVE


def test_members_who_chose_nomail_are_left_alone():
    st = State(delivery_enabled=False, disabled_reason="member")
    assert scores.tick(st, S, T0 + 100 * DAY)[1] == scores.IGNORED


def test_reenabled_clears_the_record():
    st, _ = scores.bounce(State(), HARD, scores.Settings(threshold=1.0), T0)
    assert scores.reenabled(st) == State()


# --------------------------------------------------------------------------- parts

SECRET = b"k" * 32


def test_verp_on_gives_each_member_their_own_sender_and_no_header():
    lp = ListParts(name="demo", domain="example.org", verp="on")
    assert not lp.needs_members
    assert lp.parts("bob@example.net", None) == ("owner-demo+bob=example.net@example.org", b"")


def test_probes_only_for_members_with_a_score():
    lp = ListParts(name="demo", domain="example.org", verp="probes")
    assert lp.needs_members
    assert lp.parts("bob@example.net", MemberInfo(7, "bob@example.net", 0.0)) == (None, b"")
    mail_from, _ = lp.parts("bob@example.net", MemberInfo(7, "bob@example.net", 0.5))
    assert mail_from == "owner-demo+bob=example.net@example.org"


def test_one_click_header_carries_a_token_for_that_member_row():
    lp = ListParts(name="demo", domain="example.org", verp="off",
                   base_url="https://lists.example.org/", secret=SECRET)
    mail_from, head = lp.parts("Bob@Example.NET", MemberInfo(42, "bob@example.net", 0.0))
    assert mail_from is None
    text = head.decode()
    assert text.endswith("\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    tok = text.split("/u/")[1].split(">")[0]
    assert unsubscribe.member_id_of(tok) == 42
    assert unsubscribe.verify(SECRET, tok, "demo", "bob@example.net")
    assert "<mailto:demo-request@example.org?subject=unsubscribe>" in text
    # Folded: no line longer than 998, continuation starts with white space.
    assert all(len(line) < 998 for line in text.split("\r\n"))


def test_overlong_verp_address_falls_back_to_the_list_sender():
    lp = ListParts(name="demo", domain="example.org", verp="on")
    member = '"' + " " * 100 + '"@example.net'  # every space becomes #20
    assert lp.parts(member, None) == (None, b"")
