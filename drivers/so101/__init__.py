"""The SO-101 arm on real servos: calibration, the leader arm (an input device) and the follower (a robot)."""
