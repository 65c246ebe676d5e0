"""Signed webhooks: a POST of the job to its ``callback_url`` when it finishes."""
