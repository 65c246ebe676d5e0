"""Every task module, so ``taskiq worker brokers:broker tasks`` registers them all."""

from tasks import maintenance, qr, webhooks

__all__ = ["maintenance", "qr", "webhooks"]
