"""Errors of the training package (the toolkit-wide hierarchy is :mod:`sr_runtime.errors`)."""

from __future__ import annotations

from sr_runtime.errors import SrError


class ConfigError(SrError):
    """A configuration file or option with a bad key or value (raised where the config is parsed and used)."""
