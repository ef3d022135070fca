"""Command line: ``python -m nbutils.style CONTENT STYLE [STYLE ...] -o OUT.png [options]``.

``--method optimize`` (the default) optimises the pixels with `stylize_fast`; ``--method
feedforward`` runs `stylize_feedforward`, one pass of networks trained once on many
paintings (Ghiasi et al. 2017): seconds, not minutes, but this image's cost is not
minimised. Defaults are read from the library's signatures, choices are the constants it
validates against; an option of the other method is refused, not silently ignored.

Bad input (a missing or non-image file, a number NaN, infinite or out of range, an unknown
VGG19 layer, a size too large for this machine's memory, an output that cannot be written)
prints one ``error:`` line naming the option or file and exits with status 2, before any
network is loaded. Ctrl-C still saves the best image so far; if the output cannot be
written after all, the image goes to the temporary folder and the error line says where.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from nbutils.extras.cli.options import (
    INT64_MAX,
    INT64_MIN,
    fail,
    file_problem,
    float_option,
    folder_problem,
    int_option,
)
from nbutils.extras.color import PRESERVE_COLOR
from nbutils.extras.fast_style import OPTIMIZERS, POOLING, PREPROCESS, stylize_fast
from nbutils.extras.feedforward import MAX_CONTENT_PIXELS, MIN_CONTENT_SIDE, stylize_feedforward
from nbutils.images import MAX_PIXELS, ImageError, load_image, save_image
from nbutils.style.optimize import INITS, MIN_SIDE
from nbutils.vgg19 import VGG19_LAYER_NAMES

# Peak memory of one VGG19 forward+backward pass, per output pixel, measured at 400 x 400
# (1.3 GB, see benchmarks/step_time.py), with a margin: used to refuse sizes that cannot fit.
BYTES_PER_PIXEL = 12_000
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg")
# The largest cost weight accepted: the costs are float32 (at most 3.4e38), and a weight
# beyond this turns J into inf with ordinary costs, as NaN would turn it into NaN.
MAX_WEIGHT = 1e15
#: --method: optimise the pixels (`stylize_fast`), or one pass of `stylize_feedforward`.
METHODS = ("optimize", "feedforward")
#: The options (dests) --method feedforward uses; it refuses the others, the optimisation's.
FEEDFORWARD_OPTIONS = frozenset({"content", "styles", "output", "size", "method", "strength"})
# Peak memory of one feed-forward run per content pixel, over the built networks: about
# 265 bytes measured at 512 x 512 and 1024 x 1024 (peak resident size), with a margin.
FEEDFORWARD_BYTES_PER_PIXEL = 400


def available_memory() -> int:
    """Bytes of memory available to this process (physical memory when unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; defaults from `stylize_fast`'s and `stylize_feedforward`'s
    signatures, choices from the library's sets."""
    default = {name: p.default for name, p in inspect.signature(stylize_fast).parameters.items()}
    feedforward = {name: p.default
                   for name, p in inspect.signature(stylize_feedforward).parameters.items()}
    p = argparse.ArgumentParser(
        prog="python -m nbutils.style",
        description="Neural style transfer: optimise the pixels on ImageNet VGG19 (L-BFGS or "
                    "Adam, coarse-to-fine), or one pass of a network trained to stylise "
                    "(--method feedforward).")
    p.add_argument("content", type=Path, help="content image (JPEG, PNG, ...)")
    p.add_argument("styles", type=Path, nargs="+", metavar="STYLE",
                   help="one or more style images, blended with --style-weights "
                        "(one with --method feedforward)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png/.jpg)")
    p.add_argument("--method", choices=METHODS, default=METHODS[0],
                   help="optimize: minimise the cost J for this image (minutes); feedforward: "
                        "one pass of networks trained on many paintings (seconds, higher J; "
                        "only --size and --strength apply) (default %(default)s)")
    p.add_argument("--size", type=int_option(MIN_SIDE), default=default["size"],
                   help="output side in pixels (default %(default)s; with --method "
                        + ("feedforward: the content's own size)" if feedforward["size"] is None
                           else f"feedforward: {feedforward['size']})"))
    p.add_argument("--strength", type=float_option(0, 1), default=feedforward["strength"],
                   help="--method feedforward: 1 is the style image's style, 0 the content's "
                        "own, between them a blend (default %(default)s)")
    p.add_argument("--steps", type=int_option(1), default=default["steps"],
                   help="budget of steps, each one VGG forward+backward pass "
                        "(default %(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=default["optimizer"],
                   help="lbfgs is fast, adam is the course's (default %(default)s)")
    p.add_argument("--lr", type=float_option(0, above=True), default=default["learning_rate"],
                   help="Adam's learning rate (default %(default)s)")
    p.add_argument("--scales", type=int_option(1), default=default["scales"],
                   help="coarse-to-fine levels, each twice the previous (default %(default)s)")
    p.add_argument("--alpha", type=float_option(0, MAX_WEIGHT), default=default["alpha"],
                   help="content weight (default %(default)s)")
    p.add_argument("--beta", type=float_option(0, MAX_WEIGHT), default=default["beta"],
                   help="style weight (default %(default)s)")
    p.add_argument("--tv-weight", type=float_option(0, MAX_WEIGHT), default=default["tv_weight"],
                   help="total-variation weight: smoother images (default %(default)s)")
    p.add_argument("--style-weights", type=float_option(0, MAX_WEIGHT), nargs="+",
                   default=default["style_weights"],
                   help="blend weights, one per style image (default: equal)")
    p.add_argument("--style-scale", type=float_option(0, above=True),
                   default=default["style_scale"],
                   help="style image size relative to the output (default %(default)s)")
    p.add_argument("--preserve-color", choices=PRESERVE_COLOR, default=default["preserve_color"],
                   help="keep the content's colours (default %(default)s)")
    p.add_argument("--preprocess", choices=PREPROCESS, default=default["preprocess"],
                   help="VGG input: [0, 1] as the course, or ImageNet mean-subtracted BGR "
                        "(default %(default)s)")
    p.add_argument("--pooling", choices=POOLING, default=default["pooling"],
                   help="VGG pooling (default %(default)s)")
    p.add_argument("--content-layer", default=default["content_layer"],
                   help="VGG19 layer of the content cost (default %(default)s)")
    style_layers = [name for name, _ in default["style_layers"]]
    p.add_argument("--style-layers", default=",".join(style_layers),
                   help="VGG19 layers of the style cost, comma-separated, equally weighted "
                        f"(default {', '.join(style_layers)})")
    p.add_argument("--init", choices=INITS, default=default["init"],
                   help="starting image (default %(default)s)")
    p.add_argument("--seed", type=int_option(INT64_MIN, INT64_MAX), default=default["seed"],
                   help="noise seed (default %(default)s)")
    p.add_argument("--save-every", type=int_option(0), default=0,
                   help="save an intermediate image every N steps (default: never)")
    p.add_argument("--save-dir", type=Path,
                   help="folder for intermediates (default: OUTPUT's folder/OUTPUT-stem_steps)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; ``given`` holds the dests of those on the command line, whatever their
    value (``--steps 200`` is given even though 200 is the default)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for action in parser._actions:  # argparse lists its actions nowhere public
        action.default = argparse.SUPPRESS  # (set_defaults would also fill the namespace)
    args.given = frozenset(vars(parser.parse_args(argv)))  # parsed once already: no error
    return args


def option_name(dest: str) -> str:
    """The command-line spelling of an option's dest (``tv_weight`` -> ``--tv-weight``)."""
    return "--" + dest.replace("_", "-")


def style_layer_names(args: argparse.Namespace) -> list[str]:
    """The names of ``--style-layers``, blanks dropped."""
    return [name.strip() for name in args.style_layers.split(",") if name.strip()]


def stylize_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `stylize_fast` (all but the images) that the options give."""
    layers = style_layer_names(args)
    save_dir = args.save_dir or args.output.parent / f"{args.output.stem}_steps"
    return dict(
        size=args.size, style_weights=args.style_weights, optimizer=args.optimizer,
        steps=args.steps, scales=args.scales, alpha=args.alpha, beta=args.beta,
        tv_weight=args.tv_weight, style_layers=[(name, 1.0 / len(layers)) for name in layers],
        content_layer=args.content_layer, preprocess=args.preprocess, pooling=args.pooling,
        preserve_color=args.preserve_color, style_scale=args.style_scale, init=args.init,
        seed=args.seed, learning_rate=args.lr, every=args.save_every or None,
        save_dir=save_dir if args.save_every else None)


def feedforward_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `stylize_feedforward` (all but the images): ``size`` only
    when given, its default (the content's own size) otherwise."""
    size = (args.size if "size" in args.given
            else inspect.signature(stylize_feedforward).parameters["size"].default)
    return dict(strength=args.strength, size=size)


def option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options together, naming the option, or None: what argparse
    cannot check (the options against each other and the method, VGG19's layers, this
    machine's memory, the file system). Nothing is loaded, created or written."""
    if args.output.suffix.lower() not in OUTPUT_SUFFIXES:
        return f"-o/--output {args.output}: the output must end in .png, .jpg or .jpeg"
    if args.method == "feedforward":
        return feedforward_problem(args)
    if "strength" in args.given:
        return ("--strength is used only with --method feedforward: add it or drop "
                "--strength")
    if args.size**2 > MAX_PIXELS:  # first: the checks below may then compute with it freely
        return f"--size {args.size} asks for more than {MAX_PIXELS:,} pixels; use a smaller --size"
    for option, names in (("--style-layers", style_layer_names(args)),
                          ("--content-layer", [args.content_layer])):
        if not names:
            return f"{option} names no layer"
        unknown = [name for name in names if name not in VGG19_LAYER_NAMES]
        if unknown:
            return (f"{option}: no VGG19 layer named {', '.join(map(repr, unknown))}; "
                    f"the layers are {', '.join(VGG19_LAYER_NAMES)}")
    coarsest = args.size / 2 ** min(args.scales - 1, 64)  # min: no giant power for a bad value
    if coarsest < MIN_SIDE:
        most = 1 + max(k for k in range(64) if args.size / 2**k >= MIN_SIDE)
        return (f"--scales {args.scales} is too many for --size {args.size}: the coarsest "
                f"scale would be {coarsest:.3g} pixels, under {MIN_SIDE}; use at most {most}")
    if args.steps < args.scales:
        return (f"--steps {args.steps} is fewer than --scales {args.scales}: each scale "
                "needs at least one step")
    if args.alpha == 0 and args.beta == 0:
        return "--alpha and --beta are both 0: there is nothing to optimise"
    if args.style_weights is not None:
        if len(args.style_weights) != len(args.styles):
            return (f"--style-weights has {len(args.style_weights)} values for "
                    f"{len(args.styles)} style images: give one per style image")
        if sum(args.style_weights) == 0:
            return "--style-weights are all 0: at least one style must count"
    style_side = args.size * args.style_scale  # a float: compared, never squared (overflow)
    if style_side > math.sqrt(MAX_PIXELS):
        return (f"--style-scale {args.style_scale} makes the style images {style_side:.3g} "
                f"pixels per side, over {MAX_PIXELS:,} pixels in all; use a smaller --style-scale")
    side, option = max((args.size, f"--size {args.size}"),
                       (round(style_side), f"--style-scale {args.style_scale}"))
    problem = memory_problem(BYTES_PER_PIXEL * side**2, option, option.split()[0])
    if problem:
        return problem
    problem = output_problem(args.output)
    if problem:
        return problem
    if args.save_dir is not None and not args.save_every:
        return "--save-dir is used only with --save-every N (N > 0): add it or drop --save-dir"
    if args.save_every:
        save_dir = stylize_arguments(args)["save_dir"]
        problem = folder_problem(save_dir)
        if problem:
            which = "--save-dir" if args.save_dir else "--save-dir (default, from -o)"
            return f"{which} {save_dir} cannot be written: {problem}"
    return None


def output_problem(output: Path) -> str | None:
    problem = file_problem(output)
    return f"-o/--output {output} cannot be written: {problem}" if problem else None


def memory_problem(needed: int, what: str, option: str) -> str | None:
    """Refuse a run that needs more than 80% of the free memory: ``what`` needs it, a
    smaller ``option`` is the remedy."""
    free = available_memory()
    if needed > 0.8 * free:
        return (f"{what} needs about {needed / 2**30:.1f} GB of memory, more than this "
                f"machine has free ({free / 2**30:.1f} GB); use a smaller {option}")
    return None


def content_size_problem(height: int, width: int, what: str) -> str | None:
    """Why the feed-forward network cannot take a ``height`` x ``width`` content image, or
    None; ``what`` set that size (``--size N``, or the content file at its own size)."""
    if height * width > MAX_CONTENT_PIXELS:
        return (f"{what} gives a content image of {width} x {height} pixels; the feed-forward "
                f"network takes at most {MAX_CONTENT_PIXELS:,} pixels: use a smaller --size")
    if min(height, width) < MIN_CONTENT_SIDE:
        return (f"{what} gives a content image of {width} x {height} pixels; the feed-forward "
                f"network needs at least {MIN_CONTENT_SIDE} a side: use a larger --size")
    return memory_problem(FEEDFORWARD_BYTES_PER_PIXEL * height * width, what, "--size")


def feedforward_problem(args: argparse.Namespace) -> str | None:
    """`option_problem` for --method feedforward: only its options, one style image, a
    size the networks take; the content's own size is checked once it is loaded."""
    others = sorted(args.given - FEEDFORWARD_OPTIONS)
    if others:
        names = ", ".join(map(option_name, others))
        verb = "is" if len(others) == 1 else "are"
        return (f"{names} {verb} used only with --method optimize; --method feedforward "
                f"takes --size and --strength: drop {names}")
    if len(args.styles) != 1:
        return (f"--method feedforward takes one style image, not {len(args.styles)}: "
                "blend several with --method optimize and --style-weights")
    if "size" in args.given:
        problem = content_size_problem(args.size, args.size, f"--size {args.size}")
        if problem:
            return problem
    return output_problem(args.output)


def save_result(image: np.ndarray, output: Path) -> tuple[Path, str | None]:
    """Save to ``output``, or when that fails to the temporary folder, so that no result is
    lost: (where the image is, the reason ``output`` could not be written or None)."""
    try:
        return save_image(image, output), None
    except OSError as err:  # AtomicWriteError: the folder vanished or filled up during the run
        folder = Path(tempfile.gettempdir())
        spare = next(candidate for n in itertools.count()
                     if not os.path.lexists(candidate := folder /
                                            f"{output.stem}-rescued-{n}{output.suffix}"))
        return save_image(image, spare), str(err)


def run_feedforward(args: argparse.Namespace, content: np.ndarray,
                    style: np.ndarray) -> tuple[np.ndarray | None, str]:
    """`stylize_feedforward` on the loaded images: (the image, a summary), or (None, the
    error line's message)."""
    arguments = feedforward_arguments(args)
    if arguments["size"] is None:  # the content's own size, known now that it is loaded
        problem = content_size_problem(*content.shape[:2], f"{args.content} (no --size)")
        if problem:
            return None, problem
    start = time.perf_counter()
    try:
        image = stylize_feedforward(content, style, **arguments)
    except ValueError as e:  # ImageError included
        return None, str(e)
    except KeyboardInterrupt:
        return None, "interrupted: nothing to save"
    return image, (f"one feed-forward pass, strength {args.strength:g}, "
                   f"{time.perf_counter() - start:.1f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)  # each value's range: argparse exits with status 2
    problem = option_problem(args)
    if problem:
        return fail(problem)
    try:
        content = load_image(args.content)
        styles = [load_image(s) for s in args.styles]
    except ImageError as e:
        return fail(str(e))
    note = ""
    if args.method == "feedforward":
        result, summary = run_feedforward(args, content, styles[0])
        if result is None:
            return fail(summary)
        image = result
    else:
        try:
            image, history = stylize_fast(content, styles, **stylize_arguments(args))
        except ValueError as e:
            return fail(str(e))
        except KeyboardInterrupt:
            return fail("interrupted before the first step finished: nothing to save")
        note = " (interrupted: best image so far)" if history["interrupted"] else ""
        summary = f"{len(history['step'])} steps, J = {history['best_total']:.4g}"
    where, save_error = save_result(image, args.output)
    if save_error:
        print(f"error: {save_error}; the result was saved to {where} instead", file=sys.stderr)
        return 1
    print(f"saved {args.output}{note}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
