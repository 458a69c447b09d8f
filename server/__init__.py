"""Attune server package."""
