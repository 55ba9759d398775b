"""runaway-monitor's Inspect AI extension (registered by the ``inspect_ai`` entry point).

Inspect names an extension's tasks after the top-level package that defines them, so
they are defined here, as ``runaway_monitor/<task>``; the code is in
:mod:`monitor.integrations.inspect`. Importing this package needs the ``inspect`` extra.
"""
