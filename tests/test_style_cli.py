"""The command line of style transfer: its defaults and choices are the library's own, and
bad input ends with one error line."""

import functools
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbutils.extras.cli import style as cli
from nbutils.extras.cli.style import (
    FEEDFORWARD_OPTIONS,
    METHODS,
    build_parser,
    feedforward_arguments,
    main,
    option_name,
    option_problem,
    parse_args,
    stylize_arguments,
)
from nbutils.extras.color import PRESERVE_COLOR, describe
from nbutils.extras.fast_style import (
    OPTIMIZERS,
    POOLING,
    PREPROCESS,
    stylize_fast,
    vgg19_with_pooling,
    vgg_input,
)
from nbutils.extras.feedforward import stylize_feedforward
from nbutils.images import load_image
from nbutils.samples import sample_image_path
from nbutils.style.costs import STYLE_LAYERS
from nbutils.style.optimize import INITS, initial_generated_image, stylize

# option dest -> the parameter of stylize_fast it sets
OPTION_PARAMETER = {
    "size": "size", "steps": "steps", "optimizer": "optimizer", "lr": "learning_rate",
    "scales": "scales", "alpha": "alpha", "beta": "beta", "tv_weight": "tv_weight",
    "style_weights": "style_weights", "style_scale": "style_scale",
    "preserve_color": "preserve_color", "preprocess": "preprocess", "pooling": "pooling",
    "content_layer": "content_layer", "init": "init", "seed": "seed",
}
# parameter -> the constant the library validates it against
CHOICES = {"optimizer": OPTIMIZERS, "preserve_color": PRESERVE_COLOR, "preprocess": PREPROCESS,
           "pooling": POOLING, "init": INITS}
REQUIRED = ["content.jpg", "style.jpg", "-o", "out.png"]
FEEDFORWARD = REQUIRED + ["--method", "feedforward"]


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
    assert {a.dest for a in checked} >= {"size", "steps", "lr", "alpha", "seed", "scales"}
    for action in checked:
        assert action.type(str(action.default)) == action.default, action.dest
    monkeypatch.chdir(tmp_path)
    assert option_problem(parse_args(REQUIRED)) is None


def test_help_shows_the_derived_defaults():
    text = " ".join(build_parser().format_help().split())
    defaults = signature_defaults(stylize_fast)
    for dest, parameter in OPTION_PARAMETER.items():
        if defaults[parameter] is not None:
            assert re.search(rf"\(default {re.escape(str(defaults[parameter]))}[);]", text), dest
    assert f"(default {', '.join(name for name, _ in STYLE_LAYERS)})" in text


def test_every_choice_is_the_library_constant():
    choices = {a.dest: a.choices for a in build_parser()._actions if a.choices is not None}
    assert choices == CHOICES | {"method": METHODS}
    assert parse_args(REQUIRED).method == "optimize"  # the behaviour before --method existed
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
                 "--steps", "3", "--style-weights", "0.5", "0.5", "--save-every", "1"]) == 0
    assert load_image(out).shape == (32, 32, 3)
    assert len(list((tmp_path / "out_steps").glob("step_*.png"))) == 3


# --------------------------------------------------------------------------- --method feedforward


class NotToBeCalled(AssertionError):
    pass


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Small content and style files in the working directory; no network may run."""
    rng = np.random.default_rng(5)
    for name in ("content.jpg", "style.jpg"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(tmp_path / name)

    def refusing(fn):
        @functools.wraps(fn)  # the parser reads the defaults from the signatures
        def refuse(*args, **kwargs):
            raise NotToBeCalled("validation let a bad option through to the network")
        return refuse

    monkeypatch.setattr(cli, "stylize_fast", refusing(stylize_fast))
    monkeypatch.setattr(cli, "stylize_feedforward", refusing(stylize_feedforward))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(argv, capsys):
    """main(argv)'s exit status (argparse exits, main returns), stdout, and stderr's lines."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


def assert_refused(argv, option, folder, capsys):
    code, _, err = run_cli(argv, capsys)
    errors = [line for line in err if "error:" in line]
    assert code == 2 and len(errors) == 1, (argv, err)
    assert option in errors[0], (option, errors[0])
    assert sorted(p.name for p in folder.iterdir()) == ["content.jpg", "style.jpg"]
    return errors[0]


def test_feedforward_defaults_are_its_signatures():
    defaults = signature_defaults(stylize_feedforward)
    args = parse_args(FEEDFORWARD)
    assert args.strength == defaults["strength"]
    # no --size: the library's default (the content's own size), not stylize_fast's 400
    assert feedforward_arguments(args) == {"strength": defaults["strength"],
                                           "size": defaults["size"]}
    assert feedforward_arguments(parse_args(FEEDFORWARD + ["--size", "64"]))["size"] == 64
    assert set(defaults) == {"strength", "size"}  # every parameter but the images has an option
    text = " ".join(build_parser().format_help().split())
    assert f"(default {defaults['strength']})" in text and "(default optimize)" in text
    assert "the content's own size" in text


def test_given_options_are_told_from_defaults():
    assert parse_args(REQUIRED).given == {"content", "styles", "output"}
    args = parse_args(REQUIRED + ["--steps", "200", "--tv-weight", "0", "--method", "optimize"])
    assert args.steps == signature_defaults(stylize_fast)["steps"]  # the default, yet given
    assert args.given == {"content", "styles", "output", "steps", "tv_weight", "method"}
    options = {a.dest: a.option_strings for a in build_parser()._actions if a.option_strings}
    for dest, strings in options.items():
        if dest != "help":
            assert option_name(dest) in strings, dest
    assert FEEDFORWARD_OPTIONS - {"content", "styles"} <= set(options)


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.01", "2", "strong", ""])
def test_a_bad_strength_is_one_error_line(workdir, capsys, value):
    line = assert_refused(FEEDFORWARD + ["--strength", value], "--strength", workdir, capsys)
    assert "must be a finite number >= 0 and <= 1" in line


# each is an option of the optimisation: with --method feedforward it would do nothing
OPTIMISATION_ONLY = [["--steps", "200"], ["--optimizer", "adam"], ["--lr", "0.02"],
                     ["--scales", "2"], ["--alpha", "10"], ["--beta", "1"],
                     ["--tv-weight", "1"], ["--style-weights", "1"], ["--style-scale", "2"],
                     ["--preserve-color", "luminance"], ["--preprocess", "imagenet"],
                     ["--pooling", "avg"], ["--content-layer", "block4_conv2"],
                     ["--style-layers", "block1_conv1"], ["--init", "noise"], ["--seed", "1"],
                     ["--save-every", "5"], ["--save-dir", "frames"]]


def test_optimisation_options_are_refused_with_feedforward(workdir, capsys):
    assert {o[0] for o in OPTIMISATION_ONLY} == {
        option_name(a.dest) for a in build_parser()._actions
        if a.option_strings and a.dest not in FEEDFORWARD_OPTIONS | {"help"}}
    for options in OPTIMISATION_ONLY:  # even at their default values (--steps 200)
        line = assert_refused(FEEDFORWARD + options, options[0], workdir, capsys)
        assert "only with --method optimize" in line
    line = assert_refused(FEEDFORWARD + ["--seed", "3", "--alpha", "1"], "--alpha", workdir,
                          capsys)
    assert "--alpha, --seed are used only" in line


def test_strength_is_refused_without_feedforward(workdir, capsys):
    for argv in (REQUIRED + ["--strength", "0.5"],
                 REQUIRED + ["--method", "optimize", "--strength", "1"]):
        line = assert_refused(argv, "--strength", workdir, capsys)
        assert "only with --method feedforward" in line


def test_feedforward_takes_one_style_and_a_size_it_can_run(workdir, capsys, monkeypatch):
    line = assert_refused(["content.jpg", "style.jpg", "style.jpg", "-o", "out.png",
                           "--method", "feedforward"], "one style image", workdir, capsys)
    assert "not 2" in line
    assert_refused(FEEDFORWARD + ["--size", "5000"], "--size 5000", workdir, capsys)
    assert_refused(FEEDFORWARD + ["--size", "1" + "0" * 400], "--size", workdir, capsys)
    assert_refused(FEEDFORWARD + ["--size", "8"], "--size", workdir, capsys)
    assert_refused(FEEDFORWARD + ["-o", "out.gif"], "--output", workdir, capsys)
    monkeypatch.setattr(cli, "available_memory", lambda: 1000 * 2**20)  # 1000 MB free
    line = assert_refused(FEEDFORWARD + ["--size", "4000"], "--size 4000", workdir, capsys)
    assert "memory" in line
    # without --size the content's own size counts (24 x 32 here), checked once it is loaded
    monkeypatch.setattr(cli, "MAX_CONTENT_PIXELS", 500)
    line = assert_refused(FEEDFORWARD, "content.jpg", workdir, capsys)
    assert "32 x 24" in line and "--size" in line


def test_feedforward_options_reach_the_network_and_the_image_is_saved(workdir, capsys,
                                                                    monkeypatch):
    calls = []

    @functools.wraps(stylize_feedforward)
    def fake(content, style, **kwargs):
        inspect.signature(stylize_feedforward).bind(content, style, **kwargs)  # a valid call
        calls.append((content.shape, style.shape, kwargs))
        return np.full((20, 16, 3), 0.25, np.float32)

    monkeypatch.setattr(cli, "stylize_feedforward", fake)
    code, out, err = run_cli(FEEDFORWARD + ["--strength", "0.5"], capsys)
    assert (code, err) == (0, []) and out.startswith("saved out.png: one feed-forward pass")
    assert calls == [((24, 32, 3), (24, 32, 3), {"strength": 0.5, "size": None})]
    assert load_image(workdir / "out.png").shape == (20, 16, 3)
    code, _, _ = run_cli(FEEDFORWARD + ["--size", "48", "-o", "b.jpg"], capsys)
    assert code == 0 and calls[-1][2] == {"strength": 1.0, "size": 48}


@pytest.mark.slow
def test_feedforward_writes_the_image(tmp_path, images, capsys):
    out = tmp_path / "out.png"
    assert main([str(images[0]), str(images[2]), "-o", str(out), "--method", "feedforward",
                 "--size", "40", "--strength", "0.7"]) == 0
    image = load_image(out)
    assert image.shape == (40, 40, 3) and image.std() > 0.01
    assert "one feed-forward pass, strength 0.7" in capsys.readouterr().out
