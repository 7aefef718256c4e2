"""The CLI tests run `leo` in-process against the suite's real, migrated PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Leo


@pytest.fixture
def leo(migrated_db: str, tmp_path: Path) -> Leo:
    return Leo(
        env={
            "LEO_DATABASE_URL": migrated_db,
            "LEO_DATA_DIR": str(tmp_path / "leo-data"),
            "TEMPORAL_ADDRESS": None,
            # Wide enough that rich does not fold the values the tests look for.
            "COLUMNS": "250",
        }
    )
