"""Attune client_web package."""
