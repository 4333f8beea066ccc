"""Exceptions that say where the failure belongs, and so which exit code it gets."""

from __future__ import annotations


class BadInputError(Exception):
    """A config, data file or option the user gave is wrong (exit 2)."""


class BundleError(Exception):
    """A bundle failed a check: digest, format, trusted types, versions, golden outputs (exit 1)."""
