"""The installed teleop-app's version, stored in every episode file and checkpoint (pyproject.toml sets it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    APP_VERSION = version("teleop-app")
except PackageNotFoundError:  # running from a source tree that was never installed
    APP_VERSION = "0+unknown"
