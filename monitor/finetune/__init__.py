"""Fine-tuning on corrective data (``finetune``, ``sample-efficiency``): the ``train`` extra.

Only :mod:`monitor.finetune.data` and the command modules import without torch; the
training, conversion and serving modules import torch, transformers and peft lazily.
"""
