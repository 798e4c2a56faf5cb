"""Security checklist: one snapshot of the installation, pure checks, a runner.

Its Repairs issues are synchronised in ``issues.py`` of the integration.

* ``models``: the typed, frozen snapshot and the findings (no Home Assistant).
* ``checks``: one pure function per check and the registry of check ids.
* ``yaml_scan``: counts credentials written inline in the YAML configuration.
* ``snapshot``: collects the snapshot from a running Home Assistant.
* ``runner``: the shared runner per Home Assistant instance (schedule, listeners).
"""
