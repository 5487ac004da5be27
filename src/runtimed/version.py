"""The package version, in a module of its own: the protocol and client layers import it
without reaching up into the package root."""

__version__ = "0.1.0"
