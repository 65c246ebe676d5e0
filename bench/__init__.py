"""Offload's benchmark: ``.venv/bin/python -m bench.run`` from the repository root."""
