"""``styleforge weights list | download NAME | import PATH | path NAME | remove NAME``."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import HelpFormatter, add_command, add_json_option, print_json

DESCRIPTION = """\
Manage VGG19 weights in the cache ($STYLEFORGE_HOME, else $XDG_CACHE_HOME/styleforge,
else ~/.cache/styleforge). Every download or import is converted once to a safetensors
file that records its source and preprocessing convention.

  vgg19             torchvision's vgg19-dcbb9e9d.pth (RGB in [0,1], ImageNet mean/std)
  vgg19-matconvnet  MatConvNet's imagenet-vgg-verydeep-19.mat (RGB 0-255 minus mean)
"""


def register(subparsers: Any) -> None:
    """Add the ``weights`` command and its actions."""
    parser = add_command(subparsers, "weights", "download, import and list VGG19 weights", DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="show known and cached weights", formatter_class=HelpFormatter)
    add_json_option(listing)
    listing.set_defaults(handler=run_list)

    download = actions.add_parser("download", help="download weights by name, verify and convert them", formatter_class=HelpFormatter)
    download.add_argument("name", help="vgg19 or vgg19-matconvnet")
    download.add_argument("--keep-original", action="store_true", help="keep the downloaded .pth/.mat beside the cache")
    download.add_argument("--url", default=None, help="download from this mirror instead of the official address (checksum still verified)")
    download.add_argument("--quiet", action="store_true", help="no progress output")
    download.set_defaults(handler=run_download)

    importing = actions.add_parser("import", help="convert a local .pth/.mat/.safetensors file into the cache", formatter_class=HelpFormatter)
    importing.add_argument("path", help="torchvision .pth, MatConvNet .mat or styleforge .safetensors file")
    importing.add_argument("--name", default=None, help="cache name (default: vgg19 / vgg19-matconvnet for the official file names, else the file's stem)")
    importing.set_defaults(handler=run_import)

    path = actions.add_parser("path", help="print the cached file of NAME", formatter_class=HelpFormatter)
    path.add_argument("name", help="cached weights name")
    path.set_defaults(handler=run_path)

    remove = actions.add_parser("remove", help="delete NAME from the cache", formatter_class=HelpFormatter)
    remove.add_argument("name", help="cached weights name")
    remove.set_defaults(handler=run_remove)


def run_list(args: argparse.Namespace) -> int:
    """Print the weights table (or JSON)."""
    from styleforge.utils.fs import human_size
    from styleforge.vgg.weights import list_weights

    entries = list_weights()
    if args.json:
        print_json([
            {"name": e.name, "cached": e.cached, "path": str(e.path), "size": e.size, "description": e.description}
            for e in entries
        ])
        return 0
    width = max(len(e.name) for e in entries)
    for e in entries:
        status = f"cached {human_size(e.size or 0):>9}" if e.cached else "not downloaded  "
        print(f"{e.name:<{width}}  {status}  {e.description}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download, verify and convert registry weights."""
    from styleforge.vgg.weights import download_weights

    path = download_weights(args.name, progress=not args.quiet, keep_original=args.keep_original, url=args.url)
    print(path)
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Convert a local weights file into the cache."""
    from styleforge.vgg.weights import import_weights

    print(import_weights(args.path, name=args.name))
    return 0


def run_path(args: argparse.Namespace) -> int:
    """Print the path of cached weights."""
    from styleforge.vgg.weights import weights_path

    print(weights_path(args.name))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Delete cached weights."""
    from styleforge.vgg.weights import remove_weights

    print(f"removed {remove_weights(args.name)}")
    return 0
