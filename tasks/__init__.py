"""Every module here, found rather than listed: ``taskiq worker brokers:broker tasks``
registers every task, and a new job kind is one new module (see tasks/kinds.py).

Except in a CPU pool process (brokers/cpu_pool.py): there, importing a task's pure function
must not import the broker, which registering the tasks would build.
"""

import importlib
import multiprocessing
import pkgutil

from pebble.pool.process import WORKERS_NAME

if multiprocessing.current_process().name != WORKERS_NAME:
    for _module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{_module.name}")
