"""What a command runs with: the settings it was started with and the stores they name."""

from __future__ import annotations

from tracker.settings import Settings
from tracker.stores import Stores


class CommandContext:
    """Settings and stores of one CLI invocation, built once and closed when the command ends."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stores = Stores(settings)

    def clickhouse(self, migrate: bool = True):
        """The ClickHouse client, with the schema brought up to date first (commands need the tables)."""
        from tracker import schema

        ch = self.stores.clickhouse()
        if migrate:
            ch.create_database()
            schema.migrate(ch)
        return ch

    def close(self) -> None:
        self.stores.close()
