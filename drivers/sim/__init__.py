"""The simulated SO-101 rig: MuJoCo arm and cube, cameras rendered in their own process, a scripted expert."""
