"""Campaign tests read reports and sign marketers in: the console's fixtures apply here too."""

from tests.adserver.console.conftest import report, tenants  # noqa: F401
