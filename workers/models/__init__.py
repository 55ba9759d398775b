"""Model agents' machinery: retries, limits, context policy, providers, metrics.

Build agents with :func:`workers.agents.models.create_model_agent`.
"""
