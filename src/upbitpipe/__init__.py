"""upbitpipe: a loss-free real-time market-data pipeline for the Upbit exchange."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("upbitpipe")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
