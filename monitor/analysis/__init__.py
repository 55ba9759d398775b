"""Offline analysis of finished episodes: flip autopsies, corrective datasets, propensity.

Everything here reads the results layout that ``experiment`` writes (``episodes.jsonl``
plus ``logs/<episode_id>.jsonl``) or single episode logs; see :mod:`monitor.analysis.results`.
"""
