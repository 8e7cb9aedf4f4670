"""Option spelling: the course's flag names as aliases, and one true default per option in --help."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from styleforge.cli import build_parser
from styleforge.cli.common import HelpFormatter
from tests.conftest import assert_user_error, make_photo, run_cli

COURSE_TRAIN = ["train", "--style", "s.jpg", "--train-path", "data", "--checkpoint-dir", "ckp", "--checkpoint-iterations", "100",
                "--learning-rate", "0.01", "--vgg-path", "vgg.mat", "--test", "t.jpg", "--content-weight", "15"]
OURS_TRAIN = ["train", "--style", "s.jpg", "--data", "data", "--out", "ckp", "--checkpoint-every", "100",
              "--lr", "0.01", "--weights", "vgg.mat", "--test-image", "t.jpg", "--content-weight", "15"]


def _parsed(argv: list[str]) -> dict:
    values = vars(build_parser().parse_args(argv))
    values.pop("handler")
    return values


def test_the_course_training_flags_mean_the_same_as_ours() -> None:
    assert _parsed(COURSE_TRAIN) == _parsed(OURS_TRAIN)


def test_in_path_and_out_path_mean_the_inputs_and_output() -> None:
    assert _parsed(["transfer", "--model", "m", "--in-path", "a.jpg", "--in-path", "dir", "--out-path", "out"]) == \
        {**_parsed(["transfer", "--model", "m", "-o", "out"]), "in_path": ["a.jpg", "dir"]}
    stylize = _parsed(["stylize", "--in-path", "c.jpg", "--style", "s.jpg", "--out-path", "o.png"])
    assert stylize["in_path"] == ["c.jpg"] and stylize["output"] == "o.png"


def _subparsers(parser: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser, nested ones included, by its full name."""
    found = {}
    for action in (parser or build_parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[prefix + name] = sub
                found.update(_subparsers(sub, prefix + name + " "))
    return found


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_help_states_each_default_once(command: str) -> None:
    parser = _subparsers()[command]
    formatter = HelpFormatter(command)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        text = formatter._get_help_string(action) % {**vars(action), "default": action.default}
        assert text.count("default") <= 1, (action.option_strings, text)
        assert "(default: None)" not in text and "(default: False)" not in text, (action.option_strings, text)
        if action.option_strings != ["-h", "--help"]:
            assert action.help, f"{command} {action.option_strings or action.dest} has no help text"
    help_text = parser.format_help()
    assert "(default: None)" not in help_text


def test_help_shows_the_aliases_and_true_defaults() -> None:
    train = _subparsers()["train"].format_help()
    for alias in ("--checkpoint-dir", "--train-path", "--checkpoint-iterations", "--learning-rate", "--vgg-path", "--test "):
        assert alias in train, alias
    assert re.search(r"--lr LR, --learning-rate LR\s+Adam learning rate \(default: 0\.001\)", train)
    stylize = " ".join(_subparsers()["stylize"].format_help().split())
    assert "(default: equal)" in stylize and "(default: 500)" in stylize and "--out-path" in stylize


def test_course_flags_end_to_end(tmp_path: Path, weight_files: dict[str, Path]) -> None:
    photos = tmp_path / "train2014_small"
    photos.mkdir()
    for i in range(4):
        make_photo(photos / f"p{i}.jpg", size=(40, 36), seed=i)
    style = make_photo(tmp_path / "rain_princess.png", size=(40, 40), seed=9)
    ckp = tmp_path / "ckp_temp"
    trained = run_cli("train", "--checkpoint-dir", str(ckp), "--style", str(style), "--train-path", str(photos),
                      "--content-weight", "1.5e1", "--checkpoint-iterations", "1", "--epochs", "1", "--batch-size", "2",
                      "--vgg-path", str(weight_files["mat"]), "--test", str(style), "--image-size", "32", "--workers", "0",
                      "--device", "cpu", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert (ckp / "rain_princess.safetensors").is_file() and (ckp / "preview_step0000002.jpg").is_file()
    out = tmp_path / "out"
    done = run_cli("transfer", "--model", str(ckp / "checkpoint.pt"), "--in-path", str(photos), "--out-path", str(out),
                   "--device", "cpu", "--quiet")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "train2014_small").iterdir()) == [f"p{i}.jpg" for i in range(4)]
    assert_user_error(run_cli("transfer", "--model", str(ckp / "checkpoint.pt"), "-o", str(out)), "give IN (or --in-path)")
    assert_user_error(run_cli("stylize", "a.jpg", "--in-path", "b.jpg", "--style", "s.jpg", "-o", "x.png"), "give one CONTENT")
