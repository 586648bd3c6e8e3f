"""The failed-login slow-down per client IP (pure)."""

from listmgr.pop3.throttle import FailureTracker


def test_delay_doubles_per_recent_failure_and_is_capped():
    t = FailureTracker(1.0, cap=5.0, window=100.0)
    assert t.delay("a", 0) == 1.0
    t.failed("a", 0)
    assert t.delay("a", 1) == 2.0
    t.failed("a", 1)
    assert t.delay("a", 2) == 4.0
    t.failed("a", 2)
    assert t.delay("a", 3) == 5.0
    assert t.delay("b", 3) == 1.0  # per IP


def test_failures_expire_and_success_clears():
    t = FailureTracker(1.0, window=10.0)
    t.failed("a", 0)
    t.failed("a", 5)
    assert t.count("a", 9) == 2
    assert t.count("a", 12) == 1
    assert t.count("a", 16) == 0
    t.failed("a", 20)
    t.succeeded("a")
    assert t.delay("a", 21) == 1.0


def test_memory_is_bounded():
    t = FailureTracker(1.0, max_ips=10)
    for i in range(100):
        t.failed(f"10.0.0.{i}", 0)
    assert len(t._failures) <= 10
