"""Integrations with other tools; each needs its extra (``pip install 'runaway-monitor[X]'``)."""
