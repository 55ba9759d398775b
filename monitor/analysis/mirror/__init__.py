"""The mirror model: an open-weights model reads a target model's conversation, and its
hidden states are recorded, probed and projected (``runaway-monitor mirror ...``).

The pure parts (:mod:`.conversation`, :mod:`.windows`, :mod:`.store`, :mod:`.probe`,
:mod:`.direction`) need only numpy and scikit-learn; :mod:`.extract` loads torch and
transformers (the ``mirror`` extra) when it runs, never at import; :mod:`.inspect_log`
imports inspect-ai only when an Inspect ``.eval`` log is read.
"""
