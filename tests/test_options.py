"""ratecast.options.resolve: the layering of a run's options and the names it gives them in messages."""

import math

import pytest

from ratecast.options import PresetError, resolve


def config(tmp_path, text: str):
    path = tmp_path / "cfg.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_later_layers_win_and_each_option_knows_its_origin(tmp_path):
    cfg = config(tmp_path, "epochs = 5\nbatch_size = 32\ndropout = 0.3\n")
    got = resolve("deep", preset="lab", config_file=cfg, cli_options={"epochs": 3, "dropout": None},
                  set_options=["epochs=2"])
    assert got.model == "deep"
    assert got.params["epochs"] == 2 and got.origins["epochs"] == "--set epochs"
    assert got.params["batch_size"] == 32 and got.origins["batch_size"] == f"{cfg}: batch_size"
    assert got.params["dropout"] == 0.3 and got.origins["dropout"] == f"{cfg}: dropout"  # None: not given
    assert got.params["learning_rate"] == 1e-3 and got.origins["learning_rate"] == "--preset lab"


def test_the_model_comes_from_the_command_line_then_the_file_then_the_preset_then_the_default(tmp_path):
    cfg = config(tmp_path, 'model = "dot"\n')
    assert resolve("deep", config_file=cfg, check=False).model == "deep"
    got = resolve(None, config_file=cfg, check=False)
    assert (got.model, got.origins["model"]) == ("dot", f"{cfg}: model")
    assert resolve(None, preset="fast", check=False).model == "biased_dot"
    assert resolve(None, preset="fast", config_file=cfg, check=False).model == "dot"
    assert resolve(None, check=False, default_model="hybrid").model == "hybrid"


def test_set_values_are_json_or_text():
    got = resolve("deep", set_options=["epochs=4", "optimizer=adam", "hidden-units=[8, 4]"], check=False)
    assert got.params == {"epochs": 4, "optimizer": "adam", "hidden_units": [8, 4]}


@pytest.mark.parametrize("layer, origin", [("file", "cfg.toml: wings"), ("set", "--set wings")])
def test_unknown_options_are_named_by_where_they_came_from(tmp_path, layer, origin):
    kwargs = ({"config_file": config(tmp_path, "wings = 2\n")} if layer == "file" else {"set_options": ["wings=2"]})
    with pytest.raises(ValueError, match="unknown option") as info:
        resolve("deep", **kwargs)
    assert str(info.value).startswith(origin.replace("cfg.toml", str(tmp_path / "cfg.toml")) + ": ")


def test_a_bad_value_is_named_by_its_flag():
    with pytest.raises(ValueError, match=r"^--epochs "):
        resolve("deep", cli_options={"epochs": -1})


@pytest.mark.parametrize("layer", ["file", "cli", "set"])
def test_non_finite_numbers_are_refused_naming_their_origin(tmp_path, layer):
    if layer == "file":
        kwargs, origin = {"config_file": config(tmp_path, "learning_rate = nan\n")}, f"{tmp_path / 'cfg.toml'}: "
    elif layer == "cli":
        kwargs, origin = {"cli_options": {"learning_rate": math.inf}}, "--"
    else:
        kwargs, origin = {"set_options": ["learning_rate=NaN"]}, "--set "
    with pytest.raises(ValueError, match="must be a finite number") as info:
        resolve("deep", check=False, **kwargs)
    assert str(info.value).startswith(origin + ("learning-rate" if layer == "cli" else "learning_rate")), info.value


@pytest.mark.parametrize("text, flag", [("model=dot", "--model"), ("random_state=3", "--seed"),
                                        ("verbose=1", "--quiet")])
def test_run_settings_given_with_set_point_to_their_flag(text, flag):
    with pytest.raises(ValueError, match=f"is not a model option; use {flag}"):
        resolve("deep", set_options=[text], check=False)


def test_a_config_file_must_not_set_the_seed(tmp_path):
    with pytest.raises(ValueError, match=r"cfg.toml: random_state is not a model option; use --seed"):
        resolve("deep", config_file=config(tmp_path, "random_state = 1\n"), check=False)


def test_a_preset_that_does_not_allow_the_model_is_a_preset_error():
    with pytest.raises(PresetError, match="--model 'deep'"):
        resolve("deep", preset="fast", check=False)
    with pytest.raises(PresetError, match="preset must be one of"):
        resolve(None, preset="nope", check=False)


def test_a_missing_config_file_is_a_missing_file(tmp_path):
    from ratecast.errors import MissingFileError

    with pytest.raises(MissingFileError, match="config file not found"):
        resolve("deep", config_file=tmp_path / "absent.toml", check=False)
