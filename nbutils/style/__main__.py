"""Command line: ``python -m nbutils.style CONTENT STYLE [STYLE ...] -o OUT.png [options]``.

The options are `stylize_fast`'s parameters: each default is read from its signature and
each set of choices is the constant the library validates against, so the two cannot
disagree. Bad input (a missing file, something that is not an image, a size too large
for this machine's memory) prints one line and exits with status 2. Ctrl-C stops the
optimisation and still saves the best image found so far.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from nbutils.images import ImageError, load_image, save_image
from nbutils.style.color import PRESERVE_COLOR
from nbutils.style.fast import OPTIMIZERS, POOLING, PREPROCESS, stylize_fast
from nbutils.style.optimize import INITS

# Peak memory of one VGG19 forward+backward pass, per output pixel, measured at 400 x 400
# (1.3 GB, see benchmarks/step_time.py), with a margin: used to refuse sizes that cannot fit.
BYTES_PER_PIXEL = 12_000


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
    """The argument parser; defaults from `stylize_fast`'s signature, choices from its sets."""
    default = {name: p.default for name, p in inspect.signature(stylize_fast).parameters.items()}
    p = argparse.ArgumentParser(
        prog="python -m nbutils.style",
        description="Neural style transfer on ImageNet VGG19 (L-BFGS or Adam, coarse-to-fine).")
    p.add_argument("content", type=Path, help="content image (JPEG, PNG, ...)")
    p.add_argument("styles", type=Path, nargs="+", metavar="STYLE",
                   help="one or more style images, blended with --style-weights")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png/.jpg)")
    p.add_argument("--size", type=int, default=default["size"],
                   help="output side in pixels (default %(default)s)")
    p.add_argument("--passes", type=int, default=default["passes"],
                   help="budget of VGG forward+backward passes (default %(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=default["optimizer"],
                   help="lbfgs is fast, adam is the course's (default %(default)s)")
    p.add_argument("--lr", type=float, default=default["learning_rate"],
                   help="Adam's learning rate (default %(default)s)")
    p.add_argument("--scales", type=int, default=default["scales"],
                   help="coarse-to-fine levels, each twice the previous (default %(default)s)")
    p.add_argument("--alpha", type=float, default=default["alpha"],
                   help="content weight (default %(default)s)")
    p.add_argument("--beta", type=float, default=default["beta"],
                   help="style weight (default %(default)s)")
    p.add_argument("--tv-weight", type=float, default=default["tv_weight"],
                   help="total-variation weight: smoother images (default %(default)s)")
    p.add_argument("--style-weights", type=float, nargs="+", default=default["style_weights"],
                   help="blend weights, one per style image (default: equal)")
    p.add_argument("--style-scale", type=float, default=default["style_scale"],
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
    p.add_argument("--seed", type=int, default=default["seed"],
                   help="noise seed (default %(default)s)")
    p.add_argument("--save-every", type=int, default=0,
                   help="save an intermediate image every N passes (default: never)")
    p.add_argument("--save-dir", type=Path,
                   help="folder for intermediates (default: OUTPUT's folder/OUTPUT-stem_passes)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def style_layer_names(args: argparse.Namespace) -> list[str]:
    """The names of ``--style-layers``, blanks dropped."""
    return [name.strip() for name in args.style_layers.split(",") if name.strip()]


def stylize_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `stylize_fast` (all but the images) that the options give."""
    layers = style_layer_names(args)
    save_dir = args.save_dir or args.output.parent / f"{args.output.stem}_passes"
    return dict(
        size=args.size, style_weights=args.style_weights, optimizer=args.optimizer,
        passes=args.passes, scales=args.scales, alpha=args.alpha, beta=args.beta,
        tv_weight=args.tv_weight, style_layers=[(name, 1.0 / len(layers)) for name in layers],
        content_layer=args.content_layer, preprocess=args.preprocess, pooling=args.pooling,
        preserve_color=args.preserve_color, style_scale=args.style_scale, init=args.init,
        seed=args.seed, learning_rate=args.lr, every=args.save_every or None,
        save_dir=save_dir if args.save_every else None)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return fail(f"{args.output}: the output must end in .png, .jpg or .jpeg")
    if args.size < 16:
        return fail(f"--size {args.size} is too small (at least 16 pixels)")
    if not style_layer_names(args):
        return fail("--style-layers names no layer")
    needed = BYTES_PER_PIXEL * args.size**2
    if needed > 0.8 * available_memory():
        return fail(f"--size {args.size} needs about {needed / 2**30:.1f} GB of memory, more "
                    f"than this machine has free ({available_memory() / 2**30:.1f} GB); "
                    "use a smaller --size")
    try:
        content = load_image(args.content)
        styles = [load_image(s) for s in args.styles]
    except ImageError as e:
        return fail(str(e))
    try:
        image, history = stylize_fast(content, styles, **stylize_arguments(args))
    except ValueError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return fail("interrupted before the first pass finished: nothing to save")
    save_image(image, args.output)
    note = " (interrupted: best image so far)" if history["interrupted"] else ""
    print(f"saved {args.output}{note}: {len(history['pass'])} passes, "
          f"J = {history['best_total']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
