"""The REST API and the thesis' API against a real ``styleforge serve`` (uvicorn on
loopback) with synthetic models: round trips checked against the model run in-process,
and every limit refused with a 4xx and a message."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import Server, photo_bytes, serve, wait_for_job

MAX_UPLOAD = 300_000
MAX_PIXELS = 40_000


@pytest.fixture(scope="module")
def server(style_folder: Path, weight_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("service-data")
    env = {"STYLEFORGE_VGG": str(weight_files["pth"]), "STYLEFORGE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
           "STYLEFORGE_MAX_PIXELS": str(MAX_PIXELS), "STYLEFORGE_RATE_LIMIT": "0", "STYLEFORGE_GATYS_ITERATIONS": "6",
           "STYLEFORGE_GATYS_SIZE": "48", "STYLEFORGE_DEVICE": "cpu"}
    started: list[Server] = []
    home = tmp_path_factory.mktemp("home")
    yield serve(started, style_folder, data, env={**env, "STYLEFORGE_HOME": str(home)})
    for s in started:
        s.stop()


def submit(server: Server, data: bytes, filename: str = "photo.png", style: str = "wave", **fields: object) -> httpx.Response:
    form = {"style": style, **{k: str(v) for k, v in fields.items()}}
    return httpx.post(server.url("/api/jobs"), files={"file": (filename, data)}, data=form, timeout=30)


def test_styles_list_fast_and_gatys_with_thumbnails(server: Server, style_folder: Path) -> None:
    styles = {s["id"]: s for s in httpx.get(server.url("/api/styles")).json()}
    assert {k: (v["name"], v["kind"]) for k, v in styles.items()} == {
        "candy": ("Candy", "fast"), "starry": ("Starry", "gatys"), "wave": ("The Wave", "fast")}
    thumb = httpx.get(server.url(styles["wave"]["thumbnail_url"]))
    assert thumb.headers["content-type"] == "image/png"
    recorded = json.loads((style_folder / "wave.json").read_text())["style_thumbnail_png_base64"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(thumb.content))), np.asarray(Image.open(io.BytesIO(base64.b64decode(recorded)))))
    legacy = httpx.get(server.url("/static/models_image/starry.jpg"))
    assert legacy.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(legacy.content)).size == (40, 40)
    assert httpx.get(server.url("/static/models_image/nope.jpg")).status_code == 404


def test_multipart_job_gives_the_models_own_output(server: Server, style_folder: Path, tmp_path: Path) -> None:
    from styleforge.config import TransferOptions
    from styleforge.transfer.model import load_style_model

    upload = photo_bytes(tmp_path, "holiday.png", size=(90, 60))
    created = submit(server, upload, "holiday.png", size=64)
    assert created.status_code == 202, created.text
    job = created.json()
    assert len(base64.urlsafe_b64decode(job["id"] + "==")) == 16  # 128 random bits
    status = wait_for_job(server, job["id"])
    assert status["status"] == "done" and status["progress"] == 1 and status["error"] is None
    result = httpx.get(server.url(job["result_url"]))
    assert result.headers["content-type"] == "image/png"
    assert result.headers["content-disposition"] == 'attachment; filename="holiday-wave.png"'
    got = np.asarray(Image.open(io.BytesIO(result.content)), dtype=np.int16)
    model = load_style_model(style_folder / "wave.safetensors", options=TransferOptions(device="cpu"))
    expected = np.asarray(model.stylize(Image.open(io.BytesIO(upload)), size=64), dtype=np.int16)
    assert got.shape == expected.shape == (43, 64, 3)
    # Both run this CPU's default precision (bf16 autocast with native bf16, else fp32);
    # the server's job has its own thread count, so sums round in another order: a few
    # levels here and there in bf16 (the bound), exact or nearly so in fp32.
    difference = np.abs(got - expected)
    assert difference.mean() < 0.8 and difference.max() <= 8, (difference.mean(), difference.max())


def test_json_job_with_data_url_then_delete(server: Server, tmp_path: Path) -> None:
    encoded = "data:image/jpeg;base64," + base64.b64encode(photo_bytes(tmp_path, "a.jpg")).decode()
    created = httpx.post(server.url("/api/jobs"), json={"image": encoded, "filename": "a.jpg", "style": "candy", "size": 32})
    assert created.status_code == 202, created.text
    job_id = created.json()["id"]
    assert wait_for_job(server, job_id)["status"] == "done"
    result = httpx.get(server.url(f"/api/jobs/{job_id}/result"))
    assert result.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(result.content)).size == (32, 24)
    assert httpx.delete(server.url(f"/api/jobs/{job_id}")).status_code == 204
    for path in (f"/api/jobs/{job_id}", f"/api/jobs/{job_id}/result"):
        assert httpx.get(server.url(path)).status_code == 404
    assert httpx.delete(server.url(f"/api/jobs/{job_id}")).status_code == 404


def test_gatys_job_long_polled_to_the_end(server: Server, tmp_path: Path) -> None:
    created = submit(server, photo_bytes(tmp_path), style="starry")
    assert created.status_code == 202, created.text
    seen = [httpx.get(server.url(created.json()["status_url"])).json()]
    while seen[-1]["status"] not in ("done", "failed"):
        seen.append(httpx.get(server.url(created.json()["status_url"]), params={"wait": 10}, timeout=20).json())
    moves = [(s["status"], s["progress"]) for s in seen]
    assert all(a != b for a, b in zip(moves, moves[1:])), moves  # a long poll answers on a change
    assert [p for _, p in moves] == sorted(p for _, p in moves) and moves[-1] == ("done", 1.0), moves
    started = time.monotonic()
    status = httpx.get(server.url(created.json()["status_url"]), params={"wait": 10}).json()
    assert status["status"] == "done" and time.monotonic() - started < 1  # a finished job answers at once
    for bad in ("-1", "31", "soon"):
        assert httpx.get(server.url(created.json()["status_url"]), params={"wait": bad}).status_code == 422
    result = Image.open(io.BytesIO(httpx.get(server.url(status["result_url"])).content))
    assert max(result.size) == 48  # capped at gatys_size


def test_thesis_transform_as_jquery_sends_it(server: Server, tmp_path: Path) -> None:
    image = base64.b64encode(photo_bytes(tmp_path, "cat.jpg")).decode()
    body = json.dumps({"email": "", "filename": "cat.jpg", "image": image, "model": "wave"})
    # $.ajax({type: "POST", data: JSON.stringify(...)}) keeps its default form content type.
    answer = httpx.post(server.url("/transform"), content=body,
                        headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8", "X-Requested-With": "XMLHttpRequest"})
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["status"] == "SUBMIT_SUCCESS" and reply["status_url"] == f"/api/jobs/{reply['id']}"
    assert wait_for_job(server, reply["id"])["status"] == "done"
    # $.ajax with a plain object: real form encoding.
    answer = httpx.post(server.url("/transform"), data={"filename": "cat.jpg", "image": image, "model": "candy"})
    assert answer.json()["status"] == "SUBMIT_SUCCESS"
    assert httpx.get(server.url("/help")).json() == {"status": "HELP_SUCCESS", "models": ["candy", "starry", "wave"],
                                                     "format": ["bmp", "jpeg", "jpg", "png", "webp"]}


@pytest.mark.parametrize(("fields", "code", "status"), [
    ({"filename": "a.jpg", "model": "wave"}, 400, "PARAMS ERROR"),
    ({"filename": "a.gif", "model": "wave", "image": "IMAGE"}, 400, "FILENAME NOT SUPPORT"),
    ({"filename": "a.jpg", "model": "wave", "image": "IMAGE", "email": "not an address"}, 400, "EMAIL FORMAT ERROR"),
    ({"filename": "a.jpg", "model": "monet", "image": "IMAGE"}, 404, "MODEL NOT EXISTS"),
    ({"filename": "a.jpg", "model": "wave", "image": "%%%"}, 400, "IMAGE ERROR"),
    ({"filename": "a.jpg", "model": "wave", "image": base64.b64encode(b"GIF89a not really").decode()}, 415, "IMAGE ERROR"),
])
def test_thesis_transform_errors(server: Server, tmp_path: Path, fields: dict, code: int, status: str) -> None:
    if fields.get("image") == "IMAGE":
        fields["image"] = base64.b64encode(photo_bytes(tmp_path)).decode()
    answer = httpx.post(server.url("/transform"), json=fields)
    assert (answer.status_code, answer.json()["status"]) == (code, status), answer.text
    assert answer.json()["message"]
    assert httpx.post(server.url("/transform"), content=b"\xff\x00 not json").json()["status"] == "PARAMS ERROR"


def _png_of(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bad_uploads(tmp_path: Path) -> list[tuple[str, dict, int, str]]:
    photo = photo_bytes(tmp_path)
    truncated = _png_of((64, 64))[:-40]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    return [
        ("text named .jpg", {"data": b"hello, I am text", "filename": "photo.jpg"}, 415, "not a JPEG, PNG, WebP or BMP"),
        ("GIF", {"data": gif.getvalue(), "filename": "anim.gif"}, 415, "read from the content"),
        ("truncated PNG", {"data": truncated}, 400, "cannot be read"),
        ("empty file", {"data": b""}, 400, "empty"),
        ("too many pixels", {"data": _png_of((250, 200))}, 413, "over the limit of 40,000"),
        ("result too large", {"data": _png_of((400, 40)), "size": 1024}, 413, "would be 1024x102"),
        ("unknown style", {"data": photo, "style": "monet"}, 404, "no style 'monet'"),
        ("bad e-mail", {"data": photo, "email": "a@b"}, 400, "e-mail address is not valid"),
        ("size too small", {"data": photo, "size": 4}, 400, "size must be"),
        ("size too large", {"data": photo, "size": 100000}, 400, "size must be"),
        ("size not a number", {"data": photo, "size": "big"}, 400, "size"),
    ]


def test_bad_uploads_are_refused_with_4xx_and_a_message(server: Server, tmp_path: Path) -> None:
    for name, fields, code, fragment in _bad_uploads(tmp_path):
        answer = submit(server, **fields)
        assert answer.status_code == code, (name, answer.text)
        assert fragment in answer.json()["detail"], (name, answer.json())
    assert httpx.get(server.url("/healthz")).json()["queue_depth"] == 0


def test_json_bodies_that_are_refused(server: Server) -> None:
    cases = [
        (b"[1, 2]", 400, "object"),
        (b"{not json", 400, "must be JSON"),
        (json.dumps({"image": "!!!notbase64", "style": "wave"}).encode(), 400, "not valid base64"),
        (json.dumps({"image": 5, "style": "wave"}).encode(), 400, "base64 string"),
        (json.dumps({"image": "aGVsbG8=", "style": ""}).encode(), 400, "'style' is required"),
    ]
    for body, code, fragment in cases:
        answer = httpx.post(server.url("/api/jobs"), content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == code and fragment in answer.json()["detail"], (body, answer.text)


def test_upload_byte_limit_with_and_without_content_length(server: Server) -> None:
    big = b"\xff" * (MAX_UPLOAD + 10)
    answer = submit(server, big, "big.jpg")
    assert answer.status_code == 413 and "larger than the limit of 300,000 bytes" in answer.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer, counted as it arrives
        for _ in range(40):
            yield b"x" * 10_000

    answer = httpx.post(server.url("/api/jobs"), content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    answer = httpx.post(server.url("/transform"), content=chunks())
    assert answer.status_code == 413 and answer.json()["status"] == "IMAGE ERROR"


def test_filename_is_sanitised(server: Server, tmp_path: Path) -> None:
    created = submit(server, photo_bytes(tmp_path, "x.png"), "../../../etc/evil name<script>.png", size=32)
    assert created.status_code == 202
    status = wait_for_job(server, created.json()["id"])
    assert status["filename"] == "evil name_script-wave.png"
    disposition = httpx.get(server.url(status["result_url"])).headers["content-disposition"]
    assert disposition == "attachment; filename*=utf-8''evil%20name_script-wave.png"  # RFC 6266 form for the space
    created = submit(server, photo_bytes(tmp_path, "x.png"), "..\\..\\windows\\..png", size=32)
    assert wait_for_job(server, created.json()["id"])["filename"] == "image-wave.png"


def test_unknown_and_malformed_job_ids_are_404(server: Server) -> None:
    for job_id in ("A" * 22, "short", "../../jobs.sqlite3", "%2e%2e"):
        for method in ("GET", "DELETE"):
            assert httpx.request(method, server.url(f"/api/jobs/{job_id}")).status_code == 404
        assert httpx.get(server.url(f"/api/jobs/{job_id}/result")).status_code == 404


def test_health_and_openapi(server: Server) -> None:
    health = httpx.get(server.url("/healthz")).json()
    assert health["status"] == "ok" and health["mode"] == "embedded" and health["styles"] == 3
    assert len(health["workers_seen"]) == 1 and health["version"]
    schema = httpx.get(server.url("/openapi.json")).json()
    for path in ("/api/styles", "/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result", "/healthz", "/help", "/transform"):
        assert path in schema["paths"], path
    assert set(schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert "swagger" in httpx.get(server.url("/docs")).text.lower()


def test_page_is_served_without_external_resources(server: Server) -> None:
    for path in ("/", "/index"):
        page = httpx.get(server.url(path))
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert httpx.get(server.url(asset)).status_code == 200


def test_limits_rate_and_slow_bodies(servers: list[Server], style_folder: Path, tmp_path: Path) -> None:
    server = serve(servers, style_folder, tmp_path / "data", env={"STYLEFORGE_RATE_LIMIT": "3", "STYLEFORGE_RATE_WINDOW": "60",
                                                                  "STYLEFORGE_REQUEST_TIMEOUT": "1"})
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:  # a client trickling its body
        sock.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"im")
        started = time.monotonic()
        reply = b""
        while b"within" not in reply and (chunk := sock.recv(4096)):
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in reply
    assert time.monotonic() - started < 5

    photo = photo_bytes(tmp_path)  # the slow request counted as the first of three
    codes = [submit(server, photo, size=32).status_code for _ in range(2)]
    refused = submit(server, photo, size=32)
    assert codes == [202] * 2 and refused.status_code == 429
    assert "at most 3 per 60 s" in refused.json()["detail"] and 0 < int(refused.headers["retry-after"]) <= 60
    assert httpx.post(server.url("/transform"), json={}).json()["status"] == "TOO MANY REQUESTS"


def test_finished_jobs_expire(servers: list[Server], style_folder: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = serve(servers, style_folder, data, env={"STYLEFORGE_RETENTION_HOURS": str(1.5 / 3600), "STYLEFORGE_SWEEP_INTERVAL": "0.5"})
    job_id = submit(server, photo_bytes(tmp_path), size=32).json()["id"]
    assert wait_for_job(server, job_id)["status"] == "done"
    assert (data / "jobs" / job_id).is_dir()
    deadline = time.monotonic() + 15
    while httpx.get(server.url(f"/api/jobs/{job_id}")).status_code != 404:
        assert time.monotonic() < deadline, "the job never expired"
        time.sleep(0.2)
    assert not (data / "jobs" / job_id).exists()



def test_exported_onnx_models_are_served_the_same_way(servers: list[Server], style_folder: Path, tmp_path: Path) -> None:
    from styleforge.config import TransferOptions
    from styleforge.deploy.export import export_style_model
    from styleforge.transfer.model import load_style_model

    models = tmp_path / "models"
    models.mkdir()
    exported = export_style_model(style_folder / "wave.safetensors", models / "wave_onnx.onnx").path
    server = serve(servers, models, tmp_path / "data", env={"STYLEFORGE_DEVICE": "cpu"})
    assert [(s["id"], s["kind"]) for s in httpx.get(server.url("/api/styles")).json()] == [("wave_onnx", "fast")]
    upload = photo_bytes(tmp_path, "p.png", size=(64, 48))
    job = submit(server, upload, "p.png", style="wave_onnx").json()
    assert wait_for_job(server, job["id"])["status"] == "done"
    got = np.asarray(Image.open(io.BytesIO(httpx.get(server.url(job["result_url"])).content)), dtype=np.int16)
    model = load_style_model(exported, options=TransferOptions(device="cpu"))
    expected = np.asarray(model.stylize(Image.open(io.BytesIO(upload))), dtype=np.int16)
    assert got.shape == (48, 64, 3) and np.abs(got - expected).max() <= 1


def test_each_style_of_a_multistyle_model_is_offered(servers: list[Server], tmp_path: Path) -> None:
    from styleforge.config import TransferOptions
    from styleforge.models.files import save_style_model, thumbnail_png_base64
    from styleforge.transfer.model import load_style_model
    from tests.test_multistyle import random_multistyle

    models = tmp_path / "models"
    models.mkdir()
    swatches = [Image.new("RGB", (20, 20), colour) for colour in ((200, 40, 40), (40, 40, 200))]
    path = save_style_model(random_multistyle(2, seed=5), models / "duo.safetensors", {
        "name": "Duo", "styles": [{"name": "red_sky", "thumbnail_png_base64": thumbnail_png_base64(swatches[0])},
                                  {"name": "blue", "thumbnail_png_base64": thumbnail_png_base64(swatches[1])}]})
    from styleforge.deploy.export import export_style_model

    export_style_model(path, models / "duo_onnx.onnx")  # keeps both styles (a style_weights input)
    server = serve(servers, models, tmp_path / "data", env={"STYLEFORGE_DEVICE": "cpu"})
    styles = httpx.get(server.url("/api/styles")).json()
    assert [(s["id"], s["name"]) for s in styles] == [("duo-0", "Duo: Red Sky"), ("duo-1", "Duo: Blue"),
                                                      ("duo_onnx-0", "Duo Onnx: Red Sky"), ("duo_onnx-1", "Duo Onnx: Blue")]
    thumb = Image.open(io.BytesIO(httpx.get(server.url(styles[1]["thumbnail_url"])).content)).convert("RGB")
    assert thumb.getpixel((5, 5)) == (40, 40, 200)
    assert httpx.get(server.url(styles[3]["thumbnail_url"])).status_code == 200  # no JSON beside the .onnx: a placeholder
    upload = photo_bytes(tmp_path, "p.png", size=(64, 48))
    for stem in ("duo", "duo_onnx"):
        for index in (0, 1):
            job = submit(server, upload, "p.png", style=f"{stem}-{index}").json()
            assert wait_for_job(server, job["id"])["status"] == "done"
            got = np.asarray(Image.open(io.BytesIO(httpx.get(server.url(job["result_url"])).content)), dtype=np.int16)
            precision = "fp32" if stem == "duo_onnx" else "auto"  # ONNX Runtime computes in fp32
            model = load_style_model(path, options=TransferOptions(device="cpu", style_weights=str(index), precision=precision))
            expected = np.asarray(model.stylize(Image.open(io.BytesIO(upload))), dtype=np.int16)
            difference = np.abs(got - expected)  # the same precision on both sides, other thread counts
            assert difference.mean() < 0.8 and difference.max() <= 8, (stem, index, difference.mean(), difference.max())


def test_any_style_models_take_the_painting_with_the_job(servers: list[Server], weight_files: dict[str, Path], tmp_path: Path) -> None:
    """An AdaIN model (and its ONNX export) is offered as kind adain; a job sends the photo
    and the painting (multipart or JSON) and gets the model's own output; a job without
    the painting, or a painting sent to a fixed style, is refused with a 400."""
    import styleforge as sf
    from styleforge.config import TransferOptions
    from styleforge.deploy.export import export_style_model
    from styleforge.models.files import save_style_model
    from styleforge.transfer.model import load_style_model
    from tests.synthetic import random_adain_network

    models = tmp_path / "models"
    models.mkdir()
    model = save_style_model(random_adain_network(sf.load_vgg19(str(weight_files["pth"])), seed=6), models / "anystyle.safetensors",
                             {"name": "Any painting"})
    export_style_model(model, models / "anystyle_onnx.onnx")
    server = serve(servers, models, tmp_path / "data", env={"STYLEFORGE_DEVICE": "cpu"})
    styles = {s["id"]: s for s in httpx.get(server.url("/api/styles")).json()}
    assert {k: (v["kind"], v["needs_style_image"]) for k, v in styles.items()} == {
        "anystyle": ("adain", True), "anystyle_onnx": ("adain", True)}
    upload, painting = photo_bytes(tmp_path, "p.png", size=(64, 48)), photo_bytes(tmp_path, "art.png", size=(56, 72), seed=9)
    (tmp_path / "art.png").write_bytes(painting)
    expected = np.asarray(load_style_model(model, options=TransferOptions(device="cpu", styles=(str(tmp_path / "art.png"),)))
                          .stylize(Image.open(io.BytesIO(upload))), dtype=np.int16)
    multipart = httpx.post(server.url("/api/jobs"), files={"file": ("p.png", upload), "style_image": ("art.png", painting)},
                           data={"style": "anystyle"}, timeout=30)
    as_json = httpx.post(server.url("/api/jobs"), json={"image": base64.b64encode(upload).decode(), "style": "anystyle_onnx",
                                                         "style_image": base64.b64encode(painting).decode()}, timeout=30)
    for created in (multipart, as_json):
        assert created.status_code == 202, created.text
        assert wait_for_job(server, created.json()["id"])["status"] == "done"
        got = np.asarray(Image.open(io.BytesIO(httpx.get(server.url(created.json()["result_url"])).content)), dtype=np.int16)
        difference = np.abs(got - expected)  # the default precision (PyTorch) or fp32 (ONNX Runtime) against the default
        assert got.shape == (48, 64, 3) and difference.mean() < 1.5 and difference.max() <= 12, (difference.mean(), difference.max())
    missing = submit(server, upload, "p.png", style="anystyle")
    assert missing.status_code == 400 and "send it as 'style_image'" in missing.json()["detail"]
    broken = httpx.post(server.url("/api/jobs"), files={"file": ("p.png", upload), "style_image": ("art.png", b"not an image")},
                        data={"style": "anystyle"}, timeout=30)
    assert broken.status_code == 415, broken.text


def test_a_painting_sent_to_a_fixed_style_is_refused(server: Server, tmp_path: Path) -> None:
    refused = httpx.post(server.url("/api/jobs"), files={"file": ("p.png", photo_bytes(tmp_path)), "style_image": ("a.png", photo_bytes(tmp_path))},
                         data={"style": "wave"}, timeout=30)
    assert refused.status_code == 400 and "has its style built in" in refused.json()["detail"]
