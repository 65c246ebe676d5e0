"""Every task module, so ``taskiq worker brokers:broker tasks`` registers them all."""

from tasks import maintenance, qr

__all__ = ["maintenance", "qr"]
