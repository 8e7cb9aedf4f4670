// styleforge page: gallery from /api/styles, drag-and-drop upload, job polling, result.
"use strict";

const state = { style: null, file: null, painting: null, previewUrl: null, polling: null, names: {}, needsPainting: {} };
const $ = (id) => document.getElementById(id);

function showMessage(text) {
  const box = $("message");
  box.textContent = text;
  box.hidden = !text;
}

function updateSubmit() {
  const paintingMissing = state.needsPainting[state.style] && !state.painting;
  $("submit").disabled = !(state.style && state.file) || paintingMissing || state.polling !== null;
}

async function loadStyles() {
  const gallery = $("gallery");
  let styles;
  try {
    const response = await fetch("/api/styles");
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    styles = await response.json();
  } catch (error) {
    gallery.innerHTML = "";
    showMessage(`Could not load the styles: ${error.message}. Reload the page to try again.`);
    return;
  }
  gallery.innerHTML = "";
  if (styles.length === 0) {
    gallery.innerHTML = '<p class="muted">This server offers no styles yet: put trained models in its --models folder.</p>';
    return;
  }
  for (const style of styles) {
    state.names[style.id] = style.name;
    state.needsPainting[style.id] = Boolean(style.needs_style_image);
    const card = document.createElement("button");
    card.type = "button";
    card.className = "style-card";
    card.setAttribute("role", "radio");
    card.setAttribute("aria-checked", "false");
    card.dataset.style = style.id;
    const img = document.createElement("img");
    img.src = style.thumbnail_url;
    img.alt = "";
    const name = document.createElement("span");
    name.textContent = style.name;
    const kind = document.createElement("span");
    kind.className = "kind";
    kind.textContent = { gatys: "slow (optimised)", adain: "any painting" }[style.kind] || "fast";
    card.append(img, name, kind);
    card.addEventListener("click", () => selectStyle(style.id));
    gallery.append(card);
  }
}

function selectStyle(id) {
  state.style = id;
  $("painting-box").hidden = !state.needsPainting[id];
  for (const card of document.querySelectorAll(".style-card")) {
    card.setAttribute("aria-checked", String(card.dataset.style === id));
  }
  updateSubmit();
}

const ACCEPTED = ["image/jpeg", "image/png", "image/webp", "image/bmp"];

function chooseFile(file) {
  if (!file) return;
  if (file.type && !ACCEPTED.includes(file.type)) {
    showMessage(`"${file.name}" is not a JPEG, PNG, WebP or BMP image.`);
    return;
  }
  showMessage("");
  state.file = file;
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = URL.createObjectURL(file);
  const preview = $("preview");
  preview.src = state.previewUrl;
  preview.hidden = false;
  $("drop-text").textContent = `${file.name} (${Math.ceil(file.size / 1024)} KB). Drop or click to change.`;
  updateSubmit();
}

function setupDropzone() {
  const zone = $("dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (event) => chooseFile(event.dataTransfer.files[0]));
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  $("painting").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file && file.type && !ACCEPTED.includes(file.type)) {
      showMessage(`"${file.name}" is not a JPEG, PNG, WebP or BMP image.`);
      return;
    }
    showMessage("");
    state.painting = file || null;
    updateSubmit();
  });
}

async function submitJob(event) {
  event.preventDefault();
  showMessage("");
  $("result-box").hidden = true;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  form.append("style", state.style);
  form.append("size", $("size").value);
  if (state.needsPainting[state.style]) form.append("style_image", state.painting, state.painting.name);
  const email = $("email").value.trim();
  if (email) form.append("email", email);
  let response;
  try {
    response = await fetch("/api/jobs", { method: "POST", body: form });
  } catch (error) {
    showMessage(`Could not reach the server: ${error.message}`);
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const retry = response.headers.get("Retry-After");
    showMessage((body.detail || `The server refused the job (${response.status}).`) + (retry ? ` (retry in ${retry} s)` : ""));
    return;
  }
  showProgress(0, "Queued");
  state.polling = true;
  updateSubmit();
  follow(body.status_url);
}

function showProgress(value, text) {
  $("progress-box").hidden = false;
  $("progress").value = value;
  $("progress-text").textContent = text;
}

function stopPolling() {
  state.polling = null;
  updateSubmit();
}

// Long polling: the server answers as soon as the job moves (or after 10 s).
async function follow(url) {
  while (state.polling) {
    await poll(`${url}?wait=10`);
  }
}

async function poll(url) {
  let job;
  try {
    const response = await fetch(url, { cache: "no-store" });
    job = await response.json();
    if (!response.ok) throw new Error(job.detail || `status ${response.status}`);
  } catch (error) {
    stopPolling();
    showMessage(`Lost track of the job: ${error.message}`);
    return;
  }
  if (job.status === "queued") {
    showProgress(0, `Queued (position ${job.position})`);
  } else if (job.status === "running") {
    showProgress(job.progress, `Stylising… ${Math.round(job.progress * 100)}%`);
  } else if (job.status === "failed") {
    stopPolling();
    $("progress-box").hidden = true;
    showMessage(`The job failed: ${job.error}`);
  } else if (job.status === "done") {
    stopPolling();
    showProgress(1, "Done");
    showResult(job);
  }
}

function showResult(job) {
  $("original").src = state.previewUrl;
  $("result").src = job.result_url;
  $("result-caption").textContent = `In the style of ${state.names[job.style] || job.style}`;
  const link = $("download");
  link.href = job.result_url;
  link.setAttribute("download", job.filename);
  $("result-box").hidden = false;
}

document.addEventListener("DOMContentLoaded", () => {
  setupDropzone();
  $("job-form").addEventListener("submit", submitJob);
  loadStyles();
});
