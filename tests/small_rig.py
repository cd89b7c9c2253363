"""A sim rig small enough for tests that record: two 160×120 cameras at 10 fps."""

from __future__ import annotations


def small_rig_toml(name: str, inputs: tuple[str, ...]) -> str:
    """The rig file's text; each input is named for its type (``scripted``, ``keyboard``)."""
    cameras = "".join(f'[[cameras]]\nname = "{cam}"\ntype = "sim"\nwidth = 160\nheight = 120\nfps = 10.0\n'
                      for cam in ("front", "wrist"))
    devices = "".join(f'[[inputs]]\nname = "{i}"\ntype = "{i}"\n' for i in inputs)
    return (f'name = "{name}"\nrate_hz = 100.0\n[robot]\ntype = "sim_so101"\n{cameras}{devices}'
            "[safety]\nmax_joint_step = 0.05\nworkspace_min = [-0.1, -0.45, 0.004]\n"
            "workspace_max = [0.55, 0.45, 0.5]\n")
