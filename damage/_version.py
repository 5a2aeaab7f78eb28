"""The package version, alone, so that nothing imports the front door from below."""

__version__ = "0.1.0"
