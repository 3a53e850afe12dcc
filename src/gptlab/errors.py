"""The error types a user can cause. The CLI turns each into one line and exit code 2."""
from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (a flag, a file, a config key), phrased as one line that
    names it. Anything else reaching the CLI is a bug in gptlab."""


class ConfigError(UserError, ValueError):
    """A config problem, phrased as one line that names the offending key."""


class InputError(UserError, ValueError):
    """An input (a file, a row, a request) that gptlab cannot use, phrased as one line that
    names it. A ValueError too, for library callers that catch those."""
