"""The package version, in one place (pyproject.toml reads it; modules import it from here, not from the package)."""

__version__ = "0.1.0"
