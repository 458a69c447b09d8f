"""Owner-only database files: SQLite creates its files 0644 under a usual umask, which lets
every local user read the clinic's database."""

from __future__ import annotations

import os
from pathlib import Path

OWNER_ONLY = 0o600
# SQLite's companions: it creates them with the database file's own mode, so an owner-only
# database gets owner-only companions; existing ones from older versions are fixed at start.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def owner_only_sqlite_files(database: Path) -> None:
    """Create `database` empty and owner-only if missing; make it and its companions 0600."""
    try:
        fd = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OWNER_ONLY)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # an empty file is a valid empty SQLite database
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS)):
        try:
            if path.stat().st_mode & 0o777 != OWNER_ONLY:
                path.chmod(OWNER_ONLY)
        except FileNotFoundError:
            continue
