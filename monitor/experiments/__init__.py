"""Experiments: grids of episodes over models x environments x mitigations x seeds.

``config`` validates the YAML, ``grid`` turns it into cells and episode specs with
deterministic ids, ``layout`` owns the results directory (the contract other commands
read), ``records`` turns an episode log into result lines, ``runner`` runs what is not
done yet, ``stats`` aggregates per cell, ``report``/``plots`` write the Markdown report and
``search`` tunes mitigation settings with Optuna.
"""
