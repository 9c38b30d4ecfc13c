"""Abonent: a self-hosted chat centre and virtual consultant for utilities."""

__version__ = "0.1.0"
