"""Everything that touches the outside world: robots, cameras and input devices.

Each kind has a small base class in :mod:`drivers.base`, a config dataclass per
implementation and a registry keyed by a ``type`` string (:mod:`drivers.registry`).
Vendor SDKs are imported lazily inside the driver that needs them.
"""
