"""Keep a session id and a W3C trace with every piece of work."""

__version__ = "0.1.0"
