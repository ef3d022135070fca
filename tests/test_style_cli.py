"""The command line of style transfer: its defaults and choices are the library's own, and
bad input ends with one error line."""

import inspect
from pathlib import Path

import numpy as np
import pytest

from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.__main__ import (
    build_parser,
    main,
    option_problem,
    parse_args,
    stylize_arguments,
)
from nbutils.style.color import PRESERVE_COLOR, describe
from nbutils.style.costs import STYLE_LAYERS
from nbutils.style.fast import (
    OPTIMIZERS,
    POOLING,
    PREPROCESS,
    stylize_fast,
    vgg19_with_pooling,
    vgg_input,
)
from nbutils.style.optimize import INITS, initial_generated_image, stylize

# option dest -> the parameter of stylize_fast it sets
OPTION_PARAMETER = {
    "size": "size", "passes": "passes", "optimizer": "optimizer", "lr": "learning_rate",
    "scales": "scales", "alpha": "alpha", "beta": "beta", "tv_weight": "tv_weight",
    "style_weights": "style_weights", "style_scale": "style_scale",
    "preserve_color": "preserve_color", "preprocess": "preprocess", "pooling": "pooling",
    "content_layer": "content_layer", "init": "init", "seed": "seed",
}
# parameter -> the constant the library validates it against
CHOICES = {"optimizer": OPTIMIZERS, "preserve_color": PRESERVE_COLOR, "preprocess": PREPROCESS,
           "pooling": POOLING, "init": INITS}
REQUIRED = ["content.jpg", "style.jpg", "-o", "out.png"]


def signature_defaults(fn):
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


@pytest.fixture(scope="module")
def images():
    return (sample_image_path("content"), sample_image_path("style_swirls"),
            sample_image_path("style_mosaic"))


def test_every_default_is_the_signatures():
    defaults = signature_defaults(stylize_fast)
    args = parse_args(REQUIRED)
    for dest, parameter in OPTION_PARAMETER.items():
        assert getattr(args, dest) == defaults[parameter], dest
    assert defaults["style_layers"] is STYLE_LAYERS
    assert args.style_layers.split(",") == [name for name, _ in STYLE_LAYERS]
    # what main() passes to stylize_fast without options: exactly the library's defaults
    passed = stylize_arguments(args)
    assert passed == {name: defaults[name] for name in passed}
    assert set(defaults) - set(passed) == {"target_cost", "callback", "progress", "vgg"}


def test_every_default_passes_the_checks_of_its_option(tmp_path, monkeypatch):
    # argparse does not convert non-string defaults, so the range checks never see them
    checked = [a for a in build_parser()._actions
               if a.type not in (None, Path) and a.default is not None]
    assert {a.dest for a in checked} >= {"size", "passes", "lr", "alpha", "seed", "scales"}
    for action in checked:
        assert action.type(str(action.default)) == action.default, action.dest
    monkeypatch.chdir(tmp_path)
    assert option_problem(parse_args(REQUIRED)) is None


def test_help_shows_the_derived_defaults():
    text = " ".join(build_parser().format_help().split())
    defaults = signature_defaults(stylize_fast)
    for dest, parameter in OPTION_PARAMETER.items():
        if defaults[parameter] is not None:
            assert f"(default {defaults[parameter]})" in text, dest
    assert f"(default {', '.join(name for name, _ in STYLE_LAYERS)})" in text


def test_every_choice_is_the_library_constant():
    choices = {a.dest: a.choices for a in build_parser()._actions if a.choices is not None}
    assert choices == CHOICES
    for parameter, constant in CHOICES.items():
        assert signature_defaults(stylize_fast)[parameter] in constant


@pytest.mark.parametrize("parameter", CHOICES)
def test_values_outside_the_constants_are_refused(parameter, capsys):
    constant = CHOICES[parameter]
    # by the library, before any image or network is loaded (the paths do not exist)
    with pytest.raises(ValueError, match=f"{parameter} must be one of") as err:
        stylize_fast("missing.jpg", "missing.jpg", **{parameter: "bogus"})
    assert str(constant) in str(err.value)
    # by the command line, as argparse refuses a choice: status 2, an error line
    option = "--" + next(d for d, p in OPTION_PARAMETER.items() if p == parameter)
    with pytest.raises(SystemExit) as exit_:
        parse_args(REQUIRED + [option.replace("_", "-"), "bogus"])
    assert exit_.value.code == 2
    assert "error: argument " + option.replace("_", "-") in capsys.readouterr().err


def test_the_parts_refuse_what_stylize_fast_refuses():
    image = np.full((1, 8, 8, 3), 0.5, np.float32)
    for value in PREPROCESS:
        assert vgg_input(image, value).shape == image.shape
    for value in INITS:
        assert initial_generated_image(image, init=value).shape == image.shape
    for value in PRESERVE_COLOR:
        assert describe(value).startswith(repr(value))
    for call, name in ((lambda: vgg_input(image, "bogus"), "preprocess"),
                       (lambda: vgg19_with_pooling("bogus"), "pooling"),
                       (lambda: initial_generated_image(image, init="bogus"), "init"),
                       (lambda: stylize("missing.jpg", "missing.jpg", init="bogus"), "init"),
                       (lambda: describe("bogus"), "preserve_color")):
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            call()


def test_bad_input_exits_2_with_one_line(tmp_path, capsys, images):
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    out = str(tmp_path / "o.png")
    for argv in ([str(tmp_path / "missing.jpg"), str(images[1]), "-o", out],
                 [str(not_image), str(images[1]), "-o", out],
                 [str(images[0]), str(images[1]), "-o", out, "--size", "200000"],
                 [str(images[0]), str(images[1]), "-o", out, "--style-layers", " , "],
                 [str(images[0]), str(images[1]), "-o", str(tmp_path / "o.gif")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_writes_the_image(tmp_path, images):
    out = tmp_path / "out.png"
    assert main([str(images[0]), str(images[1]), str(images[2]), "-o", str(out), "--size", "32",
                 "--passes", "3", "--style-weights", "0.5", "0.5", "--save-every", "1"]) == 0
    assert load_image(out).shape == (32, 32, 3)
    assert len(list((tmp_path / "out_passes").glob("pass_*.png"))) == 3
