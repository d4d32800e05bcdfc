"""RAWE: a collective of trading agents that trade by weighted consensus."""

__version__ = "0.1.0"
