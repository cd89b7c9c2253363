"""The built-in trainable policy: small CNNs per camera + state + task words -> a chunk of joint targets.

It trains on the app's own episode files on a CPU in minutes (``teleop-app
train``) and runs through the same runner as any other policy (``.pt``
checkpoints load through :mod:`policies.loading`).

- :mod:`.model`: configuration, normalization and the network;
- :mod:`.dataset`: samples from episode files (kept range, successful episodes);
- :mod:`.train`: the training loop and the checkpoint it writes;
- :mod:`.checkpoint`: :class:`~.checkpoint.BuiltinPolicy`, loaded from a checkpoint.

Importing this package imports torch; :mod:`policies.loading` imports it only
when a ``.pt`` file is loaded.
"""
