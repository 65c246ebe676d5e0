"""Every module here, found rather than listed: ``taskiq worker brokers:broker tasks``
registers every task, and a new job kind is one new module (see tasks/kinds.py)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
