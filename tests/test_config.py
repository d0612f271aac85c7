import dataclasses
import json

import pytest

from bal_tf import config as config_lib
from bal_tf.errors import ConfigError


@pytest.mark.parametrize("name", sorted(config_lib.PRESETS))
def test_every_preset_round_trips_through_json(name, tmp_path):
    config = config_lib.get_preset(name)
    config.to_json(tmp_path / "config.json")
    assert config_lib.RunConfig.from_json(tmp_path / "config.json") == config
    assert config.preset == name


def test_paper_presets_build_the_papers_classifier_and_cpu_presets_a_narrower_one():
    from bal_tf.backbones import build_classifier

    paper, cpu = config_lib.get_preset("mnist"), config_lib.get_preset("mnist-cpu")
    full = build_classifier(paper.backbone, (28, 28, 1), 10).count_params()
    assert full == pytest.approx(11.17e6, rel=0.01)  # ResNet-18 on 1-channel 28x28 (Sec. 5.2)
    assert build_classifier(cpu.backbone, (28, 28, 1), 10).count_params() < full / 3
    assert paper.classifier.epochs == 300 > cpu.classifier.epochs  # Sec. 5.2: 300 epochs


def test_preset_names():
    assert config_lib.preset_name("mnist", scale="cpu") == "mnist-cpu"
    assert config_lib.preset_name("cifar10", "densenet", "paper") == "cifar10-densenet"
    assert config_lib.preset_name("fashion_mnist", "cnn", "cpu") == "fashion_mnist-cnn-cpu"
    assert config_lib.preset_name("svhn", scale="paper") == "svhn-resnet34"
    with pytest.raises(ConfigError, match="resnet34 or densenet"):
        config_lib.preset_name("cifar10", "resnet18", "cpu")
    with pytest.raises(ConfigError, match="No preset"):
        config_lib.preset_name("imagenet", scale="cpu")
    with pytest.raises(ConfigError, match="Unknown preset"):
        config_lib.get_preset("mnist-tpu")


def test_overrides_are_typed():
    config = config_lib.get_preset("mnist-cpu").with_overrides(
        ["classifier.epochs=2", "classifier.learning_rate=1", "backbone.feature_dim=2", "seed=5",
         "data.data_dir=/tmp/x"]
    )
    assert config.classifier.epochs == 2
    assert config.classifier.learning_rate == 1.0 and isinstance(config.classifier.learning_rate, float)
    assert config.backbone.feature_dim == 2 and config.seed == 5 and config.data.data_dir == "/tmp/x"
    with pytest.raises(ConfigError, match="Unknown config field 'classifier.epoch'"):
        config_lib.get_preset("mnist-cpu").with_overrides(["classifier.epoch=2"])
    with pytest.raises(ConfigError, match="expects int. Received: 'many'"):
        config_lib.get_preset("mnist-cpu").with_overrides(["classifier.epochs=many"])


def test_bad_json_is_reported(tmp_path):
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_lib.RunConfig.from_json(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"sed": 1}))
    with pytest.raises(ConfigError, match="Unknown config field"):
        config_lib.RunConfig.from_json(tmp_path / "d.json")


def test_gan_presets_build_what_they_promise():
    import numpy as np

    from bal_tf.gan import make_gan

    rng = np.random.default_rng(0)
    features, labels = np.abs(rng.normal(size=(64, 4))).astype("float32"), rng.integers(0, 3, 64)
    small = {"latent_dim": 2, "generator_units": [4], "discriminator_units": [4], "memory_bank_size": 8}
    built = {name: make_gan(dataclasses.replace(make(), **small), 3, features, labels)
             for name, make in config_lib.GAN_PRESETS.items()}
    assert sorted(built) == ["default", "paper", "paper_literal"]  # the library's presets, nothing else
    # the literal preset scores D itself, pulls G to a bank of training features (M_c), and keeps
    # the printed +log D negatives
    literal = built["paper_literal"]
    assert literal.scoring_discriminator is literal.discriminator and literal.memory_bank.shape == (3, 8, 4)
    assert (literal.gan_config.negative_loss, literal.gan_config.selection) == ("log_d", "last")
    assert literal.sources == ["trivial", "shuffled", "hard"]  # the paper's negatives only
    assert "whiten" not in {layer.name for layer in literal.discriminator.layers}
    # `paper` is the literal recipe plus exactly the fixes its docstring names
    changed = {f.name for f in dataclasses.fields(config_lib.GANConfig)
               if getattr(built["paper"].gan_config, f.name) != getattr(literal.gan_config, f.name)}
    assert changed == {"negative_loss", "d_ema_decay", "d_ema_bias_correction", "selection"}
    assert built["paper"].scoring_discriminator is built["paper"].ema_discriminator
    # the default: D's fixed whitening layer, the paper's negatives plus the ladder and floor
    # references of D's density-ratio target, D itself scored (no EMA since issue 37)
    default = built["default"]
    assert default.discriminator.get_layer("whiten") is not None and default.gaussians is not None
    assert default.sources == ["trivial", "shuffled", "hard", "ladder", "floor"]
    assert default.ema_discriminator is None and default.scoring_discriminator is default.discriminator
    assert default.memory_bank is None


def test_a_run_dir_written_before_the_cut_loads_when_its_removed_options_are_off(tmp_path):
    written = config_lib.get_preset("mnist-cpu").to_dict()
    written["gan"].update({"label_conditioning": "concat", "box_margin": 0.0, "shell_ascent_steps": 0,
                           "shell_ascent_step": 0.1, "discriminator_knn_size": 0, "discriminator_knn_k": 3,
                           "generator_loss": "saturating", "between_class_mix": [0.25, 0.5]})
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert config_lib.RunConfig.from_json(tmp_path / "config.json", absent_gan_options_off=True) == \
        config_lib.get_preset("mnist-cpu")
    written["gan"]["box_margin"] = 0.5  # an option of a lost experiment, on: this code cannot train it
    (tmp_path / "config.json").write_text(json.dumps(written))
    with pytest.raises(ConfigError, match=r"gan.box_margin=0.5 is an option removed after commit 05e9f0b") as info:
        config_lib.RunConfig.from_json(tmp_path / "config.json", absent_gan_options_off=True)
    assert "\n" not in str(info.value)  # one line


def test_cli_gan_preset_is_applied():
    from bal_tf import pipeline

    args = pipeline.build_arg_parser().parse_args(["--id", "mnist", "--scale", "cpu", "--gan-preset", "paper_literal",
                                                   "--set", "gan.epochs=3"])
    config = pipeline.resolve_config(args)
    assert config.gan.selection == "last" and config.gan.epochs == 3
    assert config.features.depths == "penultimate"  # the paper's D reads h(x) alone
    args = pipeline.build_arg_parser().parse_args(["--id", "mnist", "--scale", "cpu", "--gan-preset", "default"])
    assert pipeline.resolve_config(args).features.depths == "stages"
    with pytest.raises(ConfigError, match="Unknown GAN preset 'papr'"):
        config_lib.apply_gan_preset(config_lib.get_preset("mnist-cpu"), "papr")


@pytest.mark.parametrize("override, field, allowed", [
    ("gan.selection=synthetc", "gan.selection", "['synthetic', 'last']"),
    ("gan.discriminator_input=standardized", "gan.discriminator_input", "['raw', 'whitened']"),
    ("gan.trivial_sampling=gauss", "gan.trivial_sampling", "['uniform', 'gaussian', 'gaussian_tail']"),
    ("gan.p2_target=densty", "gan.p2_target", "['ratio', 'density', 'blend']"),
    ("gan.generator_output=tanh", "gan.generator_output", "['auto', 'relu', 'linear']"),
    ("classifier.lr_schedule=step", "classifier.lr_schedule", "['cosine', 'one_cycle', 'constant']"),
    ("backbone.arch=vgg", "backbone.arch", "['resnet18', 'resnet34', 'densenet', 'cnn']"),
    ('gan.synthetic_families=["noise_blob"]', "gan.synthetic_families", "['pixel_permutation'"),
])
def test_a_typo_in_a_choice_fails_at_parse_listing_the_choices(override, field, allowed):
    with pytest.raises(ConfigError, match=f"Config field {field} must be one of {re_escape(allowed)}"):
        config_lib.get_preset("mnist-cpu").with_overrides([override])


def re_escape(text):
    import re

    return re.escape(text)


def test_choices_are_checked_in_json_files_and_in_code(tmp_path):
    values = config_lib.get_preset("mnist-cpu").to_dict()
    values["gan"]["selection"] = "best"
    (tmp_path / "c.json").write_text(json.dumps(values))
    with pytest.raises(ConfigError, match="gan.selection must be one of"):
        config_lib.RunConfig.from_json(tmp_path / "c.json")
    with pytest.raises(ConfigError, match="GANConfig.negative_loss must be one of"):
        config_lib.GANConfig(negative_loss="wasserstein")


def test_train_py_refuses_a_typo_before_any_training(tmp_path, capsys):
    from bal_tf import pipeline

    run_dir = tmp_path / "run"
    assert pipeline.main(["--id", "mnist", "--scale", "cpu", "--run-dir", str(run_dir),
                          "--set", "gan.selection=synthetc"]) == 2
    assert "gan.selection must be one of ['synthetic', 'last']. Received: 'synthetc'" in capsys.readouterr().out
    assert not run_dir.exists()


def test_gan_ranges_are_checked():
    from bal_tf.config import GANConfig

    with pytest.raises(ConfigError, match=r"gan.floor_shrink must be \[low, high\]"):
        GANConfig(floor_shrink=[0.9, 0.1])
    with pytest.raises(ConfigError, match="gan.shell_radius"):
        GANConfig(shell_radius=[2.0])
    with pytest.raises(ConfigError, match="gan.ladder_scales must be a non-empty list of positive scales"):
        GANConfig(ladder_scales=[1.5, 0.0])
    assert GANConfig(floor_shrink=[0.25, 0.75]).floor_shrink == [0.25, 0.75]


def test_a_run_of_the_default_before_issue_37_is_refused_naming_the_commit_of_its_code(tmp_path):
    written = config_lib.get_preset("mnist-cpu").to_dict()
    written["gan"].update({"shell_sampling": "radial", "shell_weight": 1.0, "boundary_weight": 5.0,
                           "boundary_scale": [0.15, 0.6], "boundary_k": 10})
    (tmp_path / "config.json").write_text(json.dumps(written))
    with pytest.raises(ConfigError, match=r"gan.shell_sampling='radial' is an option removed after commit 3aaed79"):
        config_lib.RunConfig.from_json(tmp_path / "config.json", absent_gan_options_off=True)
    written["gan"].update({"shell_sampling": "none", "boundary_weight": 0.0})  # both off: nothing left to refuse
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert config_lib.RunConfig.from_json(tmp_path / "config.json", absent_gan_options_off=True) == \
        config_lib.get_preset("mnist-cpu")
