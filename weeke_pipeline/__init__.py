"""weeke-pipeline: neonatal brain MRI to blinded Weeke brain-injury scores."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("weeke-pipeline")
except PackageNotFoundError:  # running from a checkout without installation
    __version__ = "0.1.0"

__all__ = ["__version__"]
