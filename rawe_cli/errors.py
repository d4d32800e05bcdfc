"""The project's error types. A RaweError is a user's error: one line, no traceback."""


class RaweError(Exception):
    """An error the user can fix (bad input, unreachable service). Printed as one line."""


class ConfigError(RaweError):
    """A settings or personality file that does not validate."""


class CodecError(RaweError):
    """A wire message that cannot be decoded or does not validate."""


class BusUnavailable(RaweError):
    """The Redis server cannot be reached."""


class BrokerError(RaweError):
    """The broker refused or failed in a way the user must act on."""


class Fenced(Exception):
    """Another engine holds a newer fencing token: this one must stop writing."""


class UsageError(RaweError):
    """A bad command line (an option's value, options that do not go together): exit 2."""


class RedisLost(Exception):
    """Redis lost its data under a running engine (it restarted empty): the consumer group,
    the fencing token or the state marker is gone. Not an error of the user's: the engine
    recovers (re-creates the group, rewrites its state or stands by)."""


class StateDiverged(Exception):
    """The fenced write found Redis disagreeing with the engine's memory (a proposal id it
    thought new is already recorded under another entry): nothing was written; the engine
    drops its memory and restores from Redis."""
