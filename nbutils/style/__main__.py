"""Command line: ``python -m nbutils.style CONTENT STYLE [STYLE ...] -o OUT.png [options]``.

Bad input (a missing file, something that is not an image, a size too large for this
machine's memory) prints one line and exits with status 2. Ctrl-C stops the optimisation
and still saves the best image found so far.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nbutils.images import ImageError, load_image, save_image

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m nbutils.style",
        description="Neural style transfer on ImageNet VGG19 (L-BFGS or Adam, coarse-to-fine).")
    p.add_argument("content", type=Path, help="content image (JPEG, PNG, ...)")
    p.add_argument("styles", type=Path, nargs="+", metavar="STYLE",
                   help="one or more style images, blended with --style-weights")
    p.add_argument("-o", "--output", type=Path, required=True, help="output image (.png/.jpg)")
    p.add_argument("--size", type=int, default=400, help="output side in pixels (default 400)")
    p.add_argument("--passes", type=int, default=200,
                   help="budget of VGG forward+backward passes (default 200)")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs",
                   help="lbfgs (fast, default) or adam (the course's)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate (default 0.01)")
    p.add_argument("--scales", type=int, default=1,
                   help="coarse-to-fine levels, each twice the previous (default 1)")
    p.add_argument("--alpha", type=float, default=10, help="content weight (default 10)")
    p.add_argument("--beta", type=float, default=40, help="style weight (default 40)")
    p.add_argument("--tv-weight", type=float, default=0.0,
                   help="total-variation weight: smoother images (default 0)")
    p.add_argument("--style-weights", type=float, nargs="+",
                   help="blend weights, one per style image (default: equal)")
    p.add_argument("--style-scale", type=float, default=1.0,
                   help="style image size relative to the output (default 1)")
    p.add_argument("--preserve-color", choices=("none", "luminance", "histogram"),
                   default="none", help="keep the content's colours (default none)")
    p.add_argument("--preprocess", choices=("course", "imagenet"), default="course",
                   help="VGG input: [0, 1] as the course, or ImageNet mean-subtracted BGR")
    p.add_argument("--pooling", choices=("max", "avg"), default="max", help="VGG pooling")
    p.add_argument("--content-layer", default="block5_conv4", help="default block5_conv4")
    p.add_argument("--style-layers", default="block1_conv1,block2_conv1,block3_conv1,"
                   "block4_conv1,block5_conv1", help="comma-separated, equally weighted")
    p.add_argument("--init", choices=("content+noise", "noise", "content"),
                   default="content+noise", help="starting image (default content+noise)")
    p.add_argument("--seed", type=int, default=272, help="noise seed (default 272)")
    p.add_argument("--save-every", type=int, default=0,
                   help="save an intermediate image every N passes (default: never)")
    p.add_argument("--save-dir", type=Path,
                   help="folder for intermediates (default: OUTPUT's folder/OUTPUT-stem_passes)")
    return p.parse_args(argv)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        return fail(f"{args.output}: the output must end in .png, .jpg or .jpeg")
    if args.size < 16:
        return fail(f"--size {args.size} is too small (at least 16 pixels)")
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
    layers = [name.strip() for name in args.style_layers.split(",") if name.strip()]
    save_dir = args.save_dir or args.output.parent / f"{args.output.stem}_passes"

    from nbutils.style.fast import stylize_fast

    try:
        image, history = stylize_fast(
            content, styles, args.size, style_weights=args.style_weights,
            optimizer=args.optimizer, passes=args.passes, scales=args.scales,
            alpha=args.alpha, beta=args.beta, tv_weight=args.tv_weight,
            style_layers=[(name, 1.0 / len(layers)) for name in layers],
            content_layer=args.content_layer, preprocess=args.preprocess,
            pooling=args.pooling, preserve_color=args.preserve_color,
            style_scale=args.style_scale, init=args.init, seed=args.seed,
            learning_rate=args.lr, every=args.save_every or None,
            save_dir=save_dir if args.save_every else None)
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
