"""What tasks may ask TaskiQ to inject."""

from __future__ import annotations

from typing import Annotated, cast

from taskiq import Context, TaskiqDepends

from brokers.factory import BACKEND_STATE_KEY, Backend


def current_backend(context: Annotated[Context, TaskiqDepends()]) -> Backend:
    """The backend whose broker delivered this task."""
    return cast(Backend, getattr(context.broker.state, BACKEND_STATE_KEY))


BackendDep = Annotated[Backend, TaskiqDepends(current_backend)]
ContextDep = Annotated[Context, TaskiqDepends()]
