import pytest

from drivers.registry import ConfigError, create
from teleop_app.config import load_rig


def test_builtin_rig_is_the_default(tmp_path):
    rig = load_rig()
    assert rig.name == "sim_so101" and rig.rate_hz == 100.0
    assert rig.robot.type == "sim_so101"
    assert [c.name for c in rig.cameras] == ["front", "wrist"]
    assert [i.name for i in rig.inputs] == ["scripted", "keyboard"]
    assert rig.safety.workspace_min is not None


def test_rig_file_from_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('rate_hz = 50\n[robot]\ntype = "sim_so101"\n[[inputs]]\ntype = "keyboard"\n'
                    '[safety]\nmax_joint_step = 0.02\n')
    rig = load_rig(path)
    assert rig.name == "mine" and rig.rate_hz == 50 and rig.cameras == ()
    assert rig.inputs[0].name == "keyboard" and rig.safety.max_joint_step == 0.02


@pytest.mark.parametrize(
    "text, message",
    [
        ("rate_hz = 100\n", "missing \\[robot\\]"),
        ('[robot]\ntype = "sim_so101"\n[bogus]\n', "unknown key"),
        ('rate_hz = 0\n[robot]\ntype = "sim_so101"\n', "rate_hz must be"),
        ('[robot]\ntype = "sim_so101"\n[safety]\nworkspace_min = [0, 0]\nworkspace_max = [1, 1, 1]\n', "3 numbers"),
        ('[robot]\ntype = "sim_so101"\n[[cameras]]\nname = "a"\n', "'type' key"),
        ("[robot\n", "not valid TOML"),
    ],
)
def test_bad_rig_files_say_what_to_fix(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_rig(path)


def test_missing_rig_file():
    with pytest.raises(ConfigError, match="not found"):
        load_rig("/nonexistent/rig.toml")


def test_unknown_type_and_option_are_named():
    with pytest.raises(ConfigError, match="unknown robot type 'ur5'.*sim_so101"):
        create("robot", "ur5", {})
    with pytest.raises(ConfigError, match="no option 'speed'.*linear_speed"):
        create("input", "keyboard", {"speed": 1})


def test_every_builtin_rig_names_real_options_of_its_drivers():
    """A typo in a shipped rig file (e.g. `device` for `index`) would only show on the user's machine."""
    from drivers import registry
    from teleop_app.config import BUILTIN_RIGS, load_rig

    assert {"sim_so101", "so101_real", "sim_leader", "sim_spacemouse"} <= set(BUILTIN_RIGS)
    for name in BUILTIN_RIGS:
        config = load_rig(name)
        specs = [config.robot, *config.cameras, *config.inputs]
        for spec in specs:
            cls = registry.resolve(spec.kind, spec.type)
            options = dict(spec.options)
            if spec.kind != "robot":
                options.setdefault("name", spec.name)
            registry.make_config(cls, spec.kind, spec.type, options)
