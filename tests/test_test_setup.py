"""The test suite's own set-up: parallel workers share the cores instead of oversubscribing
them, and a command forked from the warm CLI server (tests/warm_cli.py) behaves as one
started from a fresh interpreter."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import make_photo, threads_per_xdist_worker
from tests.warm_cli import COLD_VARIABLE, CliResult, run_styleforge


def test_workers_split_the_cores_and_a_single_process_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    cores = threads_per_xdist_worker()
    assert cores is not None and cores == len(os.sched_getaffinity(0))
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert threads_per_xdist_worker() == max(1, cores // 2)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(4 * cores))
    assert threads_per_xdist_worker() == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT")
    assert threads_per_xdist_worker() is None


def test_this_worker_runs_its_share_of_threads() -> None:
    share = threads_per_xdist_worker()
    if share is None:
        pytest.skip("not under pytest-xdist")
    assert torch.get_num_threads() == share and os.environ["OMP_NUM_THREADS"] == str(share)


ROOT = Path(__file__).resolve().parents[1]


def test_readme_ci_and_scripts_test_run_the_same_command() -> None:
    """The README's test command is scripts/test, .ci/run runs it in a fresh venv, and
    scripts/test's two modes run pytest with the same options."""
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in first_block.splitlines() if line and not line.startswith("#")]
    assert commands[1] == "scripts/test"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "rm -rf .venv" in ci and ci.rstrip().endswith("exec bash scripts/test")
    script = (ROOT / "scripts" / "test").read_text()
    pytest_lines = {line.strip().removeprefix("exec ") for line in script.splitlines() if "python -m pytest" in line}
    assert pytest_lines == {'python -m pytest -q -n auto --dist loadfile "$@"'}


def test_scripts_test_without_setup_hands_its_arguments_to_pytest() -> None:
    done = subprocess.run(["bash", str(ROOT / "scripts" / "test"), "--no-setup", "-n", "0", "--collect-only",
                           "tests/test_devices.py::test_a_bad_override_is_one_clear_error"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tests/test_devices.py::test_a_bad_override_is_one_clear_error" in done.stdout
    assert "1 test collected" in done.stdout


def _both(monkeypatch: pytest.MonkeyPatch, argv: list[str], **options: object) -> tuple[CliResult, CliResult]:
    """``argv`` run warm (forked from the server), then cold (a fresh interpreter)."""
    warm = run_styleforge(argv, **options)
    monkeypatch.setenv(COLD_VARIABLE, "1")
    cold = run_styleforge(argv, **options)
    monkeypatch.delenv(COLD_VARIABLE)
    return warm, cold


@pytest.mark.parametrize("argv", [["models", "list"], ["classify", "--weights", "nowhere.pth", "x.png"], ["--version"],
                                  ["transfer", "--no-such-option"]])
def test_a_warm_command_ends_as_a_cold_one(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    warm, cold = _both(monkeypatch, argv)
    assert warm == cold
    assert warm.stdout or warm.stderr  # a real command ran: something was said


def test_a_warm_command_that_imports_pytorch_says_what_a_cold_one_says(tmp_path: Path, weight_files: dict[str, Path],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever importing PyTorch prints (a warning, say) must show in both: the server
    must not have swallowed it."""
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(weight_files["pth"].read_bytes()[:4000])
    make_photo(tmp_path / "photo.png")
    warm, cold = _both(monkeypatch, ["classify", "photo.png", "--weights", str(truncated)], cwd=tmp_path)
    assert warm == cold and warm.returncode == 2 and "truncated.pth" in warm.stderr


def test_a_warm_command_gets_its_own_folder_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shown through the CLI's own behaviour: a relative path resolved in the given folder,
    STYLEFORGE_HOME taken from the given environment (not the server's)."""
    (tmp_path / "in.png").write_bytes(b"not an image")
    warm, cold = _both(monkeypatch, ["classify", "in.png", "--weights", "in.png"], cwd=tmp_path)
    assert warm == cold and warm.returncode == 2 and "in.png" in warm.stderr
    home = tmp_path / "home"
    (home / "weights").mkdir(parents=True)
    (home / "weights" / "vgg19.safetensors").write_bytes(b"")
    env = {**os.environ, "STYLEFORGE_HOME": str(home)}
    warm, cold = _both(monkeypatch, ["weights", "path", "vgg19"], env=env, cwd=tmp_path)
    assert warm == cold and str(home) in warm.stdout + warm.stderr


#: Stand-ins for ``styleforge/__main__.py``, put first on the path by the command's
#: working folder (as ``python -m`` does): how a process ends, whatever the CLI does.
ENDINGS = {
    "exit-status": "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)",
    "uncaught-error": "print('before', flush=True); raise RuntimeError('a bug')",
    "uncaught-interrupt": "raise KeyboardInterrupt",
    "killed": "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    "atexit-and-unflushed-output": "import atexit, sys; atexit.register(print, 'at exit'); sys.stdout.write('no newline')",
    "argv-and-stdin": "import sys; print(sys.argv[1:], repr(sys.stdin.read()), sys.path[0])",
    "thread-joined-at-exit": "import threading, time; threading.Thread(target=lambda: (time.sleep(0.3), print('joined'))).start()",
    "file-size-limit": "try:\n    with open('big', 'wb') as f:\n        f.write(b'x' * 5000)\nexcept OSError as e:\n    print(e.errno)",
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_a_warm_process_ends_as_a_fresh_interpreter_does(ending: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "styleforge"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(ENDINGS[ending] + "\n")
    warm, cold = _both(monkeypatch, ["a", "b c"], cwd=tmp_path, file_size_limit=1000)
    assert warm == cold
    assert warm.stdout or warm.stderr or warm.returncode == -signal.SIGKILL


def test_a_warm_command_is_forked_from_the_server_with_pytorch_imported(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """So the comparisons above compare two different ways of starting."""
    (tmp_path / "styleforge").mkdir()
    (tmp_path / "styleforge" / "__init__.py").write_text("")
    (tmp_path / "styleforge" / "__main__.py").write_text("import os, sys; print(os.getppid(), 'torch' in sys.modules)\n")
    warm, cold = _both(monkeypatch, [], cwd=tmp_path)
    assert cold.stdout.split() == [str(os.getpid()), "False"]
    parent, torch_imported = warm.stdout.split()
    assert int(parent) != os.getpid() and torch_imported == "True"


def test_a_warm_command_past_its_time_is_killed(tmp_path: Path) -> None:
    (tmp_path / "styleforge").mkdir()
    (tmp_path / "styleforge" / "__init__.py").write_text("")
    (tmp_path / "styleforge" / "__main__.py").write_text("import time; time.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_styleforge([], cwd=tmp_path, timeout=1)
    assert run_styleforge(["--version"]).returncode == 0  # the server serves on


def test_a_warm_command_can_have_a_full_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    warm, cold = _both(monkeypatch, ["models", "list"], stdout_path="/dev/full")
    assert warm == cold and warm.returncode == 2 and "cannot write standard output" in warm.stderr
