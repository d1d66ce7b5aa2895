"""The `srcore` command line: score models by the standard SR protocol, score existing images, upscale
images, export models for other tools, and show what a model file says about itself.

    srcore eval --model bicubic|MODEL --data data/benchmark/Set5 --scale 4 [--self-ensemble] [--save-images DIR]
    srcore metrics 'results/Set5/*.png' --reference data/benchmark/Set5 --scale 4 [--suffix x4] [--lpips W]
    srcore upscale photo.jpg photos/ 'scans/*.tif' -o out/ --model MODEL [--outscale 2] [--ext jpg --quality 90]
    srcore export MODEL -o model.safetensors|model.onnx|net_g.pth [--layout srcore|basicsr|esrgan]
    srcore info MODEL [--json]

MODEL is an srcore checkpoint or .safetensors, or ESRGAN / BasicSR / EDSR-PyTorch weights (.pth, .pt,
.safetensors); eval and upscale also take `bicubic`. Inputs may be files, folders and glob patterns
(expanded by srcore when quoted). Progress bars go to stderr on a terminal, unless --quiet.

Exit status: 0 when everything was done; 1 when some inputs failed (each named on stderr, the others
done) or the work failed midway (e.g. a full disk); 2 when nothing was done because of the command: a
bad flag, a missing or unreadable input, model or reference, an output that cannot be written,
--device cuda without CUDA.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from importlib import metadata
from pathlib import Path

# Kept here rather than imported from the library, so that --help and --version run without importing
# torch (~2 s); tests/test_cli.py checks they equal the library's.
PRECISIONS = ("fp32", "bf16")  # srcore.infer.PRECISIONS
OUTPUT_FORMATS = ("png", "jpg", "webp")  # srcore.imagewrite.FORMATS
EXPORT_FORMATS = ("safetensors", "onnx", "pth")
LAYOUTS = ("srcore", "basicsr", "esrgan")  # srcore.layouts.LAYOUTS
WEIGHT_SETS = ("ema", "raw")  # srcore.weights.WEIGHT_SETS
RUNNERS = {"eval": "srcore.cli_score:run_eval", "metrics": "srcore.cli_score:run_metrics",
           "upscale": "srcore.cli_upscale:run_upscale", "export": "srcore.cli_model:run_export",
           "info": "srcore.cli_model:run_info"}
EXIT_PARTIAL, EXIT_COMMAND, EXIT_INTERRUPTED = 1, 2, 130


class CommandError(Exception):
    """A problem with the command as given: reported on one line, exit status 2, nothing done."""


def checked_int(low: int, meaning: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {meaning}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer {meaning}, got {text}")
        return value
    return parse


positive_int, non_negative_int = checked_int(1, ">= 1"), checked_int(0, ">= 0")


def quality(text: str) -> int:
    value = checked_int(1, "from 1 to 100")(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"must be an integer from 1 to 100, got {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser, default_tile: int) -> None:
    """How a model is chosen and run: shared by eval and upscale."""
    parser.add_argument("--model", required=True,
                        help="bicubic (MATLAB bicubic, the baseline), srcore:psnr or srcore:gan (the shipped default "
                             "models), an srcore checkpoint or .safetensors, or ESRGAN/BasicSR/EDSR weights "
                             "(.pth/.pt/.safetensors)")
    parser.add_argument("--weights", choices=WEIGHT_SETS, default="ema",
                        help="which set of a file holding two (a training checkpoint's raw model and EMA, "
                             "BasicSR's params and params_ema): ema (default) or raw")
    parser.add_argument("--tile", type=non_negative_int, default=default_tile, metavar="N",
                        help=f"LR tile size in pixels; 0 runs each image whole (default {default_tile})")
    parser.add_argument("--tile-pad", type=non_negative_int, default=40, metavar="P",
                        help="LR pixels of context around each tile; tiled = untiled once >= the model's receptive "
                             "radius (default 40: EDSR/SRResNet presets; RRDBNet needs ~15 per block)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default) or bf16 autocast: faster on bf16-capable CPUs/GPUs, ~1/255 less exact")


def add_run_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help=f"where {what} runs (default: cuda when available, else cpu)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars (they are shown on a terminal only, on stderr)")


def add_scoring_options(parser: argparse.ArgumentParser) -> None:
    """How images are scored: the same flags for eval and metrics."""
    parser.add_argument("--rgb", action="store_true", help="score PSNR/SSIM on RGB instead of Y (default: Y)")
    parser.add_argument("--crop-border", type=non_negative_int, default=None, metavar="N",
                        help="pixels cropped from every border before scoring (default: the scale)")
    parser.add_argument("--no-niqe", action="store_true", help="skip NIQE (the slowest metric)")
    parser.add_argument("--niqe-model", type=Path, default=None, metavar="NPZ",
                        help="NIQE pristine model (default: the official one shipped with srcore)")
    parser.add_argument("--lpips", type=Path, default=None, metavar="WEIGHTS",
                        help="also score LPIPS with these local weights: a saved lpips.LPIPS(net='alex' or "
                             "'vgg').state_dict() (never downloaded; see README)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_run_options(parser, "the model (eval) and LPIPS run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srcore", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"srcore {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_eval_parser(commands)
    add_metrics_parser(commands)
    add_upscale_parser(commands)
    add_export_parser(commands)
    info = commands.add_parser("info", help="show a model file's card: architecture, scale, training, data, scores")
    info.add_argument("model", type=Path, help="an srcore checkpoint, .safetensors or .onnx, or foreign weights")
    info.add_argument("--weights", choices=WEIGHT_SETS, default="ema", help="which set of a file holding two")
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    return parser


def add_eval_parser(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser("eval", help="make LR from HR by the protocol, upscale it, score it")
    add_model_options(ev, default_tile=0)
    ev.add_argument("--data", required=True, type=Path, help="folder of HR images, or one holding HR/")
    ev.add_argument("--scale", required=True, type=int, choices=(2, 3, 4))
    ev.add_argument("--self-ensemble", action="store_true", help="average a model over the 8 flips/rotations")
    ev.add_argument("--save-images", type=Path, default=None, metavar="DIR",
                    help="also write each SR image, as scored (8-bit), to DIR/<name>.png")
    add_scoring_options(ev)


def add_metrics_parser(commands: argparse._SubParsersAction) -> None:
    me = commands.add_parser("metrics", help="score existing images (NIQE, and PSNR/SSIM with --reference)")
    me.add_argument("paths", nargs="+", help="image files, folders, or glob patterns (expanded when quoted)")
    me.add_argument("--reference", type=Path, default=None,
                    help="folder of references, or one holding HR/; each image is paired with the reference of "
                         "the same name, else of its name without --suffix or a scale suffix (x4, _x4, _SR, _out)")
    me.add_argument("--suffix", default=None, help="what to drop from an image's name to get its reference's "
                                                   "(e.g. x4 for babyx4.png -> baby.png)")
    me.add_argument("--scale", type=positive_int, default=1,
                    help="the SR scale: sets the default --crop-border (default 1: no crop)")
    add_scoring_options(me)


def add_upscale_parser(commands: argparse._SubParsersAction) -> None:
    up = commands.add_parser("upscale", help="upscale images with a model, tile by tile")
    up.add_argument("inputs", nargs="+", help="image files, folders, or glob patterns (expanded when quoted)")
    up.add_argument("-o", "--out", required=True, type=Path,
                    help="folder for the outputs, written as <stem>.<ext>; or, for one input, a file name "
                         "ending in .png/.jpg/.jpeg/.webp")
    add_model_options(up, default_tile=256)
    up.add_argument("--scale", type=positive_int, default=None, metavar="S",
                    help="which scale of a multi-scale model (MDSR, VDSR) to run (default: the model's own)")
    up.add_argument("--outscale", type=positive_float, default=None, metavar="S",
                    help="final scale of the output (default: the model's); the model's output is resized "
                         "with Lanczos, as Real-ESRGAN's --outscale; bicubic takes it as its scale (default 4)")
    up.add_argument("--ext", choices=OUTPUT_FORMATS, default=None,
                    help="output format (default: png, or the -o file's); jpg and webp are 8-bit")
    up.add_argument("--quality", type=quality, default=95, help="jpg/webp quality, 1-100 (default 95)")
    up.add_argument("--bits", type=int, default=None, choices=(8, 16),
                    help="bits per channel of PNGs (default: the input's, so 16-bit stays 16-bit)")
    up.add_argument("--max-pixels", type=non_negative_int, default=None, metavar="N",
                    help="refuse inputs of more than N pixels (default 89478485, Pillow's limit; 0: no limit)")
    up.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    add_run_options(up, "the model")


def add_export_parser(commands: argparse._SubParsersAction) -> None:
    ex = commands.add_parser("export", help="write a model for srcore, BasicSR, ESRGAN/spandrel or ONNX runtimes")
    ex.add_argument("model", type=Path, help="srcore checkpoint or foreign weights (see upscale --model)")
    ex.add_argument("-o", "--out", required=True, type=Path,
                    help="output file; its suffix (.safetensors, .onnx, .pth, .pt) picks the format")
    ex.add_argument("--format", choices=EXPORT_FORMATS, default=None, help="override the format the suffix picks")
    ex.add_argument("--layout", choices=LAYOUTS, default="srcore",
                    help="srcore (default; with its model card), basicsr (BasicSR's params/params_ema, names "
                         "and pixel range) or esrgan (the original ESRGAN RRDBNet state dict)")
    ex.add_argument("--weights", choices=WEIGHT_SETS, default="ema",
                    help="which set of a file holding two; the basicsr layout keeps both, as BasicSR does")


def package_version() -> str:
    try:
        return metadata.version("srgan-pipeline")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def show_warning(command: str):
    """warnings.showwarning for the command line: one line naming the command, no source location."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        from tqdm import tqdm  # writes above any progress bar

        tqdm.write(f"srcore {command}: warning: {message}", file=sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a bad flag exits 2, --help and --version exit 0
    module, name = RUNNERS[args.command].split(":")
    with warnings.catch_warnings():
        warnings.showwarning = show_warning(args.command)
        try:
            return getattr(importlib.import_module(module), name)(args)
        except (CommandError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError) as error:
            # Bad input is the user's to fix: one line naming it, not a traceback.
            print(f"srcore {args.command}: error: {error}", file=sys.stderr)
            return EXIT_COMMAND
        except OSError as error:  # failed midway: a full disk, a vanished folder
            print(f"srcore {args.command}: error: {error}", file=sys.stderr)
            return EXIT_PARTIAL
        except KeyboardInterrupt:
            print(f"srcore {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
