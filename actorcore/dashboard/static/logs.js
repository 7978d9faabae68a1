// The log view of one actor or worker: its last lines, then what is written (while "follow" is on).
// The log's text is put in the page as text (textContent), never as HTML.
"use strict";

const FOLLOW_MS = 2000;
const TAIL = 1000;
const params = new URLSearchParams(window.location.search);
const stream = params.get("stream") === "stderr" ? "stderr" : "stdout";
let offset = null;
let fileName = null;
let fileId = null;
let nodeId = params.get("node_id");
let timer = null;

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function link(id, value) {
  const query = new URLSearchParams(params);
  query.set("stream", value);
  document.getElementById(id).href = "/logs?" + query.toString();
}

async function read() {
  const query = new URLSearchParams();
  if (offset === null) {
    for (const name of ["actor_id", "node_id", "pid", "worker_id"]) {
      if (params.get(name)) query.set(name, params.get(name));
    }
    query.set("tail", String(TAIL));
  } else {
    query.set("node_id", nodeId);
    query.set("name", fileName);
    query.set("offset", String(offset));
    query.set("file_id", String(fileId));
  }
  query.set("stream", stream);
  const response = await fetch("/api/logs?" + query.toString(),
                               { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    return;
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  const text = document.getElementById("log-text");
  if (offset === null) text.textContent = body.text;
  else if (body.text) text.textContent += body.text;
  offset = body.offset;
  fileName = body.name;
  fileId = body.file_id;
  nodeId = body.node_id;
  document.getElementById("log-file").textContent = body.node_id + " / " + body.name;
  document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function tick() {
  try {
    await read();
    showError("");
  } catch (error) {
    showError(String(error.message || error));
  }
  window.clearTimeout(timer);
  if (document.getElementById("follow").checked || offset === null) timer = window.setTimeout(tick, FOLLOW_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  const who = params.get("actor_id") ? "actor " + params.get("actor_id")
    : "worker " + (params.get("pid") || params.get("worker_id") || "?");
  document.getElementById("log-title").textContent = "Log of " + who + " (" + stream + ")";
  link("show-stdout", "stdout");
  link("show-stderr", "stderr");
  document.getElementById("follow").addEventListener("change", (event) => {
    if (event.target.checked) tick();
  });
  tick();
});
