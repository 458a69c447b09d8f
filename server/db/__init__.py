"""Storage: SQLAlchemy Core tables, the engine and queries, Alembic migrations."""
