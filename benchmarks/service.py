"""Web service throughput and latency on loopback, against the bare ``transfer`` work.

N concurrent clients each post a photo for a fast style at a fixed size, follow the
job with long polls (``?wait=30``) until it is done and download the result; a separate
client asks /healthz every 50 ms the whole time. Reported per mode (embedded with its
default pool; Celery + Redis with one ``styleforge worker`` of ``--concurrency`` 1 and 2,
i.e. 1 and 2 worker processes): jobs/s, p50/p99 latency from submission to result in hand, and /healthz
p50/p99 while the queue is full. ``embedded-pytorch`` and ``embedded-openvino`` run the
embedded mode with the ``runtime`` setting named (``embedded`` keeps the default, ``auto``;
its first start here measures the model in a background process). The reference is the same work done in one process
without HTTP (read the photo, stylise at the size, encode the result: what
``styleforge transfer`` does per image), so jobs/s over it is what the service keeps of
the machine.

The model is the full-size network with random weights (speed does not depend on the
values); the photos are the content photos of ../shared/data resized to 512 px JPEGs.

    python benchmarks/service.py --json docs/benchmarks/service-cpu.json
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import environment, print_table, write_json  # noqa: E402

from tests.service.processes import RedisServer, Server  # noqa: E402

CONTENT = ROOT.parent / "shared" / "data" / "content"


def prepare(folder: Path) -> tuple[Path, list[bytes]]:
    """A models folder with one random full-size style, and the photos as 512 px JPEGs."""
    from styleforge.images.io import read_image, resize_long_side
    from styleforge.models.files import save_style_model
    from tests.synthetic import random_style_network

    models = folder / "models"
    save_style_model(random_style_network(seed=0), models / "bench.safetensors", {"name": "Bench"})
    photos = []
    for path in sorted(CONTENT.glob("*.jpg")) or sorted(CONTENT.iterdir()):
        buffer = io.BytesIO()
        resize_long_side(read_image(path), 512).save(buffer, format="JPEG", quality=92)
        photos.append(buffer.getvalue())
    assert photos, f"no photos in {CONTENT}"
    return models, photos


def bare_throughput(models: Path, photos: list[bytes], size: int, jobs: int) -> float:
    """Images/s of read + stylise + encode in this process (the ``transfer`` work per image)."""
    from PIL import Image

    from styleforge.transfer.model import load_style_model

    model = load_style_model(models / "bench.safetensors")

    def one(data: bytes) -> None:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        out = model.stylize(image, size=size)
        out.save(io.BytesIO(), format="JPEG", quality=95)

    one(photos[0])  # warm-up
    start = time.perf_counter()
    for index in range(jobs):
        one(photos[index % len(photos)])
    return jobs / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def drive(server: Server, photos: list[bytes], size: int, clients: int, jobs: int) -> dict:
    """Run ``jobs`` jobs from ``clients`` concurrent clients; returns the measurements."""
    latencies: list[float] = []
    health: list[float] = []
    lock = threading.Lock()
    counter = iter(range(jobs))
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.base, timeout=60) as http:
            for index in counter:
                start = time.perf_counter()
                created = http.post("/api/jobs", files={"file": ("p.jpg", photos[index % len(photos)])},
                                    data={"style": "bench", "size": str(size)})
                created.raise_for_status()
                job = created.json()
                while (status := http.get(job["status_url"], params={"wait": 30}).json())["status"] not in ("done", "failed"):
                    pass  # long poll: each answer is a change
                assert status["status"] == "done", status
                http.get(job["result_url"]).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - start)

    def prober() -> None:
        with httpx.Client(base_url=server.base, timeout=10) as http:
            while not stop.is_set():
                start = time.perf_counter()
                http.get("/healthz").raise_for_status()
                health.append(time.perf_counter() - start)
                stop.wait(0.05)

    probe = threading.Thread(target=prober)
    workers = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    probe.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    stop.set()
    probe.join()
    return {"jobs": len(latencies), "jobs_per_s": len(latencies) / elapsed, "p50_s": statistics.median(latencies),
            "p99_s": percentile(latencies, 99), "health_p50_ms": 1000 * statistics.median(health),
            "health_p99_ms": 1000 * percentile(health, 99), "health_requests": len(health)}


def start_serve(models: Path, data: Path, *extra: str, runtime: str = "auto") -> Server:
    server = Server(["serve", "--port", "0", "--models", str(models), "--data", str(data), *extra],
                    {"STYLEFORGE_RATE_LIMIT": "0", "STYLEFORGE_MAX_QUEUED": "1000", "STYLEFORGE_RUNTIME": runtime})
    return server.wait_until_serving()


def run_embedded(models: Path, folder: Path, photos: list[bytes], args: argparse.Namespace, runtime: str = "auto") -> dict:
    """The embedded mode with the ``runtime`` setting (``embedded`` is the default, ``auto``)."""
    server = start_serve(models, folder / f"embedded-{runtime}", runtime=runtime)
    try:
        drive(server, photos, args.size, args.clients, 2)  # warm-up: model load, first-call costs
        return drive(server, photos, args.size, args.clients, args.jobs)
    finally:
        server.stop()


def run_celery(models: Path, folder: Path, photos: list[bytes], args: argparse.Namespace, workers: int) -> dict:
    redis_folder = folder / f"redis-{workers}"
    redis_folder.mkdir()
    redis = RedisServer(redis_folder, shutil.which("redis-server") or "redis-server").start()
    data = folder / f"celery-{workers}"
    server = start_serve(models, data, "--broker", redis.url)
    processes = []
    try:
        worker = Server(["worker", "--broker", redis.url, "--models", str(models), "--data", str(data),
                         "--concurrency", str(workers)])
        processes.append(worker)
        worker.wait_for_output(r"ready\.", timeout=60)
        drive(server, photos, args.size, args.clients, 2 * workers)  # warm-up: every worker loads the model
        return drive(server, photos, args.size, args.clients, args.jobs)
    finally:
        for process in [server, *processes]:
            process.stop()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="long side of the results")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--jobs", type=int, default=40, help="jobs per mode")
    parser.add_argument("--modes", default="embedded,celery-1,celery-2",
                        help="comma-separated modes to run: embedded (the default runtime setting, auto), "
                             "embedded-pytorch, embedded-openvino, celery-1, celery-2")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    import os

    import torch

    folder = Path(tempfile.mkdtemp(prefix="styleforge-bench-service-"))
    try:
        models, photos = prepare(folder)
        bare = bare_throughput(models, photos, args.size, args.jobs)
        rows = [{"mode": "bare transfer (no HTTP)", "jobs_per_s": bare, "of_bare": 1.0}]
        for mode in args.modes.split(","):
            if mode.startswith("embedded"):
                result = run_embedded(models, folder, photos, args, mode.partition("-")[2] or "auto")
            else:
                result = run_celery(models, folder, photos, args, int(mode.split("-")[1]))
            rows.append({"mode": mode, **result, "of_bare": result["jobs_per_s"] / bare})
            print(f"{mode}: {result['jobs_per_s']:.2f} jobs/s", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.clients} clients, {args.jobs} jobs per mode, {args.size} px results, "
          f"{os.cpu_count()} cores, torch {torch.__version__}")
    print_table(rows, [("mode", "mode", "s"), ("jobs_per_s", "jobs/s", ".2f"), ("of_bare", "of bare", ".0%"),
                       ("p50_s", "p50 s", ".2f"), ("p99_s", "p99 s", ".2f"), ("health_p50_ms", "health p50 ms", ".1f"),
                       ("health_p99_ms", "health p99 ms", ".1f")])
    write_json(args.json, {"benchmark": "service", "environment": environment(torch.device("cpu")), "size": args.size,
                           "clients": args.clients, "jobs": args.jobs, "cores": os.cpu_count(), "torch": torch.__version__,
                           "rows": rows})


if __name__ == "__main__":
    main()
