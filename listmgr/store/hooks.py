"""Run file-system side effects only once the store transaction has committed."""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def after_commit(s: Session, fn: Callable[[], None]) -> None:
    """Call `fn` after `s` commits (never if it rolls back); errors are logged."""
    def run(_session) -> None:
        try:
            fn()
        except Exception:
            log.exception("after-commit action failed")
    event.listen(s, "after_commit", run, once=True)
