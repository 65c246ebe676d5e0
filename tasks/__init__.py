"""Every task module, so ``taskiq worker brokers:broker tasks`` registers them all.

Except in a CPU pool process (brokers/cpu_pool.py): there, importing a task's pure function
must not import the broker, which registering the tasks would build.
"""

import multiprocessing

from pebble.pool.process import WORKERS_NAME

if multiprocessing.current_process().name != WORKERS_NAME:
    from tasks import maintenance, qr

__all__ = ["maintenance", "qr"]
