// uvrsep's page: pick a file and settings, run a job through the HTTP API, follow its progress,
// listen to, look at and download the stems. No build step, no dependencies.
"use strict";

const POLL_MS = 300;
const JOB_LIST_LIMIT = 50;
const SETTINGS = ["model", "aggressiveness", "stems", "format", "window_size", "split_bin", "tta", "postprocess"];
// A server started with --token: open the page as http://HOST:PORT/#token=SECRET
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";

const $ = (id) => document.getElementById(id);
let chosen = null;   // the File to upload
let shown = null;    // id of the job on screen
let polling = null;  // its poll timer

function withToken(path) {
  if (!token) return path;
  return path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((data && data.error) || response.status + " " + response.statusText);
  return data;
}

function say(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.className = isError ? "error" : "";
}

function chooseFile(file) {
  chosen = file || null;
  $("drop-text").textContent = chosen ? chosen.name + " (" + (chosen.size / 1e6).toFixed(1) + " MB)" : "Drop a song here, or tap to choose one";
  $("run").disabled = !chosen;
  say("");
}

function settingsQuery() {
  const query = new URLSearchParams({ name: chosen.name });
  for (const name of SETTINGS) {
    const field = $(name);
    const value = field.type === "checkbox" ? String(field.checked) : field.value;
    if (value !== "" && !(field.type === "checkbox" && !field.checked)) query.set(name, value);
  }
  return query.toString();
}

async function submit() {
  if (!chosen) return;
  $("run").disabled = true;
  say("Uploading " + chosen.name + "…");
  try {
    const job = await api("/api/jobs?" + settingsQuery(), { method: "POST", body: chosen });
    say("");
    showJob(job);
    refreshJobs();
  } catch (error) {
    say(error.message, true);
  } finally {
    $("run").disabled = !chosen;
  }
}

function describe(job) {
  const percent = Math.round(job.progress * 100);
  switch (job.status) {
    case "queued": return "Waiting for the jobs before it…";
    case "running": return "Separating: " + percent + " %";
    case "done": return "Done" + (job.duration ? " (" + job.duration.toFixed(1) + " s of audio)" : "");
    case "cancelled": return "Cancelled";
    default: return "Failed: " + (job.error || "unknown error");
  }
}

function showJob(job) {
  if (shown !== job.id) {
    shown = job.id;
    $("stems-list").replaceChildren();
    $("input-figure").hidden = false;
    $("input-picture").src = withToken("/api/jobs/" + job.id + "/pictures/input.png");
  }
  $("job").hidden = false;
  $("job-title").textContent = job.name;
  $("progress").value = job.status === "done" ? 1 : job.progress;
  $("job-status").textContent = describe(job);
  $("job-status").className = job.status === "failed" ? "error" : "muted";
  $("cancel").hidden = !(job.status === "queued" || job.status === "running");
  clearTimeout(polling);
  if (job.status === "queued" || job.status === "running") {
    polling = setTimeout(() => poll(job.id), POLL_MS);
  } else {
    if (job.status === "done" && !$("stems-list").children.length) showStems(job);
    refreshJobs();
  }
}

async function poll(id) {
  try {
    const job = await api("/api/jobs/" + id);
    if (shown === id) showJob(job);
  } catch (error) {
    $("job-status").textContent = error.message;
    polling = setTimeout(() => poll(id), POLL_MS * 4);
  }
}

function showStems(job) {
  const list = $("stems-list");
  const stem = job.name.replace(/\.[^.]*$/, "");
  for (const name of job.stems) {
    const block = $("stem-template").content.firstElementChild.cloneNode(true);
    const file = withToken("/api/jobs/" + job.id + "/stems/" + encodeURIComponent(name));
    block.dataset.stem = name;
    block.querySelector(".stem-name").textContent = name;
    block.querySelector("audio").src = file;
    const picture = block.querySelector("img");
    picture.src = withToken("/api/jobs/" + job.id + "/pictures/" + encodeURIComponent(name) + ".png");
    picture.alt = "spectrogram of the " + name + " stem";
    const link = block.querySelector("a");
    link.href = file;
    link.download = stem + "_" + name + "." + job.settings.format;
    link.textContent = "Download " + name;
    list.appendChild(block);
  }
}

async function refreshJobs() {
  try {
    const jobs = await api("/api/jobs?limit=" + JOB_LIST_LIMIT);
    const items = jobs.map((job) => {
      const item = document.createElement("li");
      item.dataset.id = job.id;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = job.name;
      const state = document.createElement("span");
      state.className = "muted";
      state.textContent = job.status + " · " + new Date(job.created * 1000).toLocaleString();
      item.append(name, state);
      item.addEventListener("click", () => showJob(job));
      return item;
    });
    $("jobs").replaceChildren(...items);
    if (!items.length) $("jobs").innerHTML = '<li class="muted">none yet</li>';
  } catch (error) {
    $("jobs").textContent = error.message;
  }
}

async function start() {
  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (event) => { if (event.key === "Enter" || event.key === " ") $("file").click(); });
  $("aggressiveness").addEventListener("input", (event) => { $("aggressiveness-value").textContent = event.target.value; });
  $("run").addEventListener("click", submit);
  $("cancel").addEventListener("click", async () => {
    try { showJob(await api("/api/jobs/" + shown + "/cancel", { method: "POST" })); } catch (error) { say(error.message, true); }
  });
  try {
    const health = await api("/api/health");
    $("health").textContent = "v" + health.version + " on " + health.device;
  } catch (error) {
    $("health").textContent = "server unreachable: " + error.message;
  }
  try {
    const models = await api("/api/models");
    for (const model of models) {
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.name + " (" + model.stems.join("/") + ")" + (model.cached ? "" : " · downloads on first use");
      $("model").appendChild(option);
    }
  } catch (error) {
    say(error.message, true);
  }
  refreshJobs();
}

start();
