"""Attune privacy package."""
