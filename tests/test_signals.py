"""Ctrl-C (SIGINT) and SIGTERM at several points of every long command, for real.

Each run is stopped either early (during start-up, while PyTorch and the weights load)
or in the middle of the work (after a marker shows work has begun). Whatever the point:
exit 130 for SIGINT and 143 for SIGTERM, a short message and no traceback, no temporary
``.part`` file anywhere, and every output that exists is complete (it decodes).
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.bad_input_assets import Assets, build_assets
from tests.conftest import make_photo

STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _stopped_by(status: int, sig: signal.Signals) -> bool:
    """Exit status 128+N exactly. (Before the handlers deferred a stop that lands inside
    an import, CPython could also end the process by SIGINT itself, after a
    KeyboardInterrupt went through PyTorch's import.)"""
    return status == STATUS[sig]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    return build_assets(tmp_path_factory.mktemp("signal-assets"))


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    """A loopback HTTP server sending a 2 MB file slowly (so a download is caught mid-way)."""

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(2_000_000))
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 10_000)
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vgg.pth"
    server.shutdown()


def _download_argv(url: str) -> list[str]:
    return ["-m", "styleforge", "weights", "download", "vgg19", "--url", url]


def _commands(a: Assets, work: Path) -> dict[str, tuple[list[str], Callable[[Path, list[str], list[str]], bool]]]:
    """Command -> (argv after ``python -m styleforge``, marker(work, stdout lines, stderr lines) of work begun)."""
    folder = work / "many"
    folder.mkdir()
    for i in range(40):
        make_photo(folder / f"m{i:02d}.png", size=(96, 80), seed=i)
    weights = ["--weights", str(a.pth), "--device", "cpu"]
    return {
        "stylize": (["stylize", str(a.photo), "--style", str(a.style), "-o", "out.png", "--size", "48", "--iterations",
                     "100000", "--save-every", "1", *weights],
                    lambda w, out, err: (w / "out_step00001.png").exists()),
        "train": (["train", "--style", str(a.style), "--data", str(a.data), "--out", "run", "--image-size", "32",
                   "--batch-size", "2", "--epochs", "100000", "--log-every", "1", "--workers", "0", "--keep-models",
                   "--checkpoint-every", "3", *weights],
                  lambda w, out, err: any(line.startswith("step 4/") for line in err)),
        "transfer": (["transfer", "--model", str(a.model), str(folder), "-o", "res", "--device", "cpu"],
                     lambda w, out, err: len(out) >= 2),
        "classify": (["classify", *[str(a.photo)] * 8, "--size", "64", "--repeat", "100000", *weights],
                     _after(2.5)),  # prints only at the end: by then the timing loop runs
    }


def _after(seconds: float) -> Callable[[Path, list[str], list[str]], bool]:
    """A marker that turns true ``seconds`` after it is first asked."""
    first: list[float] = []

    def begun(work: Path, out: list[str], err: list[str]) -> bool:
        first.append(time.monotonic())
        return time.monotonic() - first[0] >= seconds

    return begun


def _run_until(argv: list[str], cwd: Path, env: dict[str, str], begun: Callable[[Path, list[str], list[str]], bool] | None,
               sig: signal.Signals) -> tuple[int, list[str], list[str]]:
    """Start ``argv``; send ``sig`` 0.6 s after start (``begun`` None) or once ``begun``
    says work has started; return (status, stdout lines, stderr lines)."""
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s=stream, d=dest: d.extend(s), daemon=True)
               for stream, dest in ((proc.stdout, out), (proc.stderr, err))]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 120
    if begun is None:
        time.sleep(0.6)
    else:
        while not begun(cwd, out, err) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.send_signal(sig)
    status = proc.wait(timeout=120)
    for reader in readers:
        reader.join(timeout=10)
    return status, out, err


def _check_outputs(*roots: Path) -> None:
    """No temporary file is left; every image written decodes completely."""
    for root in roots:
        for path in root.rglob("*"):
            assert ".part" not in path.name, path
            if path.suffix in (".png", ".jpg") and path.is_file():
                with Image.open(path) as img:
                    img.load()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("point", ["early", "mid"])
@pytest.mark.parametrize("command", ["stylize", "train", "transfer", "classify"])
def test_signal_stops_cleanly(command: str, point: str, sig: signal.Signals, assets: Assets, tmp_path: Path,
                              isolated_home: Path) -> None:
    argv, begun = _commands(assets, tmp_path)[command]
    status, out, err = _run_until(["-m", "styleforge", *argv], tmp_path, dict(os.environ),
                                  begun if point == "mid" else None, sig)
    text = "".join(err)
    assert _stopped_by(status, sig), (status, text)
    assert "Traceback" not in text, text
    assert ("terminated" if sig == signal.SIGTERM else "interrupted") in text.splitlines()[-1], text
    _check_outputs(tmp_path, isolated_home)
    if point == "mid" and command == "stylize":
        assert Image.open(tmp_path / "out.png").size == (48, 36)  # the best image so far was written
    if point == "mid" and command == "train":
        step = next(int(line.split()[3].rstrip(":")) for line in reversed(err) if " at step " in line)
        assert (tmp_path / "run" / "checkpoint.pt").is_file()
        assert (tmp_path / "run" / f"style_step{step:07d}.safetensors").is_file()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_download_leaves_no_part_file(sig: signal.Signals, slow_server: str, tmp_path: Path,
                                                       isolated_home: Path) -> None:
    status, out, err = _run_until(_download_argv(slow_server), tmp_path, dict(os.environ),
                                  lambda w, o, e: any("downloading" in line for line in e), sig)
    text = "".join(err)
    assert _stopped_by(status, sig), (status, text)
    assert "Traceback" not in text, text
    leftovers = [p for p in isolated_home.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("stop", ["group-SIGTERM", "double-SIGINT", "double-SIGINT-0.4s-apart"])
def test_a_stop_of_the_process_group_during_multi_worker_training_is_clean(stop: str, assets: Assets, tmp_path: Path,
                                                                          isolated_home: Path) -> None:
    """A service manager stops the whole process group (the DataLoader workers too), and a
    double Ctrl-C at a terminal reaches every process twice. The run still ends like a
    stop of the main process alone: its status, the step model and checkpoint, no
    traceback of a worker "killed by signal", and no ``pymp-*`` folder left behind. A
    second Ctrl-C that lands while the stop is being saved (0.4 s apart) does not cost
    the checkpoint and model either."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(48):  # enough batches that the workers are busy when the stop lands
        make_photo(photos / f"p{i:02d}.png", size=(160, 120), seed=i)
    temp = tmp_path / "tmp"
    temp.mkdir()
    argv = [sys.executable, "-m", "styleforge", "train", "--style", str(assets.style), "--data", str(photos), "--out", "run",
            "--image-size", "32", "--batch-size", "2", "--epochs", "1000", "--log-every", "1", "--workers", "2",
            "--checkpoint-every", "3", "--weights", str(assets.pth), "--device", "cpu"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env={**os.environ, "TMPDIR": str(temp)}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 120
    while not any(line.startswith("step 4/") for line in err) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sig = signal.SIGTERM if stop == "group-SIGTERM" else signal.SIGINT
    os.killpg(proc.pid, sig)
    if stop.startswith("double-SIGINT"):
        time.sleep(0.4 if stop.endswith("apart") else 0.05)
        os.killpg(proc.pid, sig)
    status = proc.wait(timeout=120)
    reader.join(timeout=10)
    text = "".join(err)
    assert status == STATUS[sig], (status, text)
    assert "Traceback" not in text and "Exception ignored" not in text and "killed by signal" not in text, text
    assert any(" at step " in line for line in err), text  # the main process saved and said where
    step = next(int(line.split()[3].rstrip(":")) for line in reversed(err) if " at step " in line)
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert (tmp_path / "run" / f"style_step{step:07d}.safetensors").is_file()
    assert list(temp.iterdir()) == []  # the workers' multiprocessing folders were cleaned up


def test_a_signal_after_the_stop_is_reported_leaves_the_exit_status_alone() -> None:
    """The console script ignores stops once it has chosen 130/143 (cli.run): a second
    Ctrl-C landing during the exit would otherwise raise there or, after CPython's
    finalisation restored the default dispositions, kill the process by the signal (on a
    fast machine the double-Ctrl-C training test above caught exactly that). SIG_IGN is the
    disposition finalisation keeps, so the check is that it is set and that a signal
    landing after it changes nothing."""
    script = ("import os, signal, sys, time\n"
              "from styleforge.utils.interrupts import absorb_further_stops, install_signal_handlers\n"
              "install_signal_handlers()\n"
              "absorb_further_stops()\n"
              "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN is signal.getsignal(signal.SIGTERM)\n"
              "os.kill(os.getpid(), signal.SIGINT)\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "time.sleep(0.2)\n"
              "sys.exit(130)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
