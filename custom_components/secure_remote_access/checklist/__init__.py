"""Security checklist: one snapshot of the installation, pure checks, Repairs issues.

* ``models``: the typed, frozen snapshot and the findings (no Home Assistant).
* ``checks``: one pure function per check and the registry of check ids.
* ``yaml_scan``: counts credentials written inline in the YAML configuration.
* ``snapshot``: collects the snapshot from a running Home Assistant.
* ``issues``: the one place that creates, updates and deletes Repairs issues.
* ``runner``: the shared runner per Home Assistant instance (schedule, listeners).
"""
