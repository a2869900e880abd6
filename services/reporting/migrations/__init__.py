"""Versioned SQL migrations, applied in order by `services.reporting.migrator`.

A file is `<version>_<name>.sql` (`0001_jobs_and_events.sql`); it runs once, inside one
transaction, and must never change after it shipped: add a new file instead.
"""

RUNTIME_ROLE = "weather_app"
"""The role reporting serves as; `0004_runtime_role_rights.sql` grants it its rights (a
shipped migration cannot read a constant: a test checks the file names this role)."""
