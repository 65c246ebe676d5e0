"""The backend, built once from settings: ``taskiq worker brokers:broker tasks`` starts here."""

import taskiq_fastapi

from brokers.dependencies import freeze_overrides_on_worker_startup
from brokers.factory import Backend, build_backend
from service.settings import get_settings

backend: Backend = build_backend(get_settings())
broker = backend.broker

taskiq_fastapi.init(broker, "service.app:create_app")
freeze_overrides_on_worker_startup(broker)

__all__ = ["Backend", "backend", "broker"]
