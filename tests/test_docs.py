"""The front door and the documentation site: the README is short and starts with its two
commands, every link in it and in docs/ resolves, and the MkDocs site (with the API
reference generated from the docstrings) builds with warnings as errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_a_front_door() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "pip install torch==2.13.0" in commands[0] and "styleforge transfer" in commands[0]
    assert commands[1] == "scripts/test"
    assert "<!-- table: headline -->" in text  # the headline figures are rendered from the JSON


def test_every_relative_link_resolves() -> None:
    missing = []
    for doc in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in LINK.findall(doc.read_text()):
            if not (doc.parent / target).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not missing, missing


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "models" / "index.html").read_text()
    assert "inspect_model" in reference and "ModelInfo" in reference  # the API reference came from the docstrings
    assert (tmp_path / "site" / "gallery" / "magenta-26.jpg").is_file()


def test_the_api_reference_covers_every_module() -> None:
    """A module added to the package gets a place in docs/reference/ (mkdocstrings renders it).
    The command line (``cli/``, ``launch``) is documented by ``--help`` and the command pages."""
    import styleforge

    package = Path(styleforge.__file__).parent
    modules = {".".join(("styleforge", *f.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
               for f in package.rglob("*.py") if f.stem not in ("__main__", "matconvnet_worker", "__init__", "launch")
               and "cli" not in f.relative_to(package).parts}
    listed = set(re.findall(r"^::: (styleforge[\w.]*)$", "".join(p.read_text() for p in (ROOT / "docs" / "reference").glob("*.md")), re.M))
    assert modules - listed == set(), sorted(modules - listed)
