// The actorcore dashboard: reads the JSON API every REFRESH_MS and redraws the visible tab.
// Every value is put in the page as text (textContent), never as HTML.
"use strict";

const REFRESH_MS = 2000;
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;
const TABS = ["overview", "actors", "supervision", "tasks", "objects"];

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    if (cell instanceof Node) {
      const td = document.createElement("td");
      td.appendChild(cell);
      tr.appendChild(td);
    } else if (cell && typeof cell === "object") {
      tr.appendChild(el("td", cell.text, cell.className));
    } else {
      tr.appendChild(el("td", cell === undefined || cell === null ? "-" : cell));
    }
  }
  return tr;
}

function fill(id, rows, columns, empty) {
  if (!rows.length) {
    const placeholder = row([{ text: empty, className: "note" }]);
    placeholder.firstChild.colSpan = columns;
    rows = [placeholder];
  }
  document.getElementById(id).replaceChildren(...rows);
}

function state(value) {
  return { text: value === undefined || value === null ? "-" : value, className: "state-" + String(value) };
}

function quantity(name, value) {
  return name === "memory" ? (value / GIB).toFixed(1) + " GiB" : (Math.round(value * 100) / 100).toString();
}

function usage(total, available) {
  return Object.keys(total).filter((name) => name !== "object_store_memory").sort((a, b) => {
    const rank = (n) => (n === "CPU" ? 0 : n === "GPU" ? 1 : 2);
    return rank(a) - rank(b) || a.localeCompare(b);
  }).map((name) => {
    const used = total[name] - (name in available ? available[name] : total[name]);
    return name + " " + quantity(name, used) + " / " + quantity(name, total[name]);
  }).join(", ") || "-";
}

function mib(bytes) {
  return (bytes / MIB).toFixed(1) + " MiB";
}

function card(label, value) {
  const box = el("div", null, "card");
  box.appendChild(el("div", label, "label"));
  box.appendChild(el("div", value, "value"));
  return box;
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname + window.location.hash));
    throw new Error("not logged in");
  }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function drawOverview(status) {
  document.getElementById("cluster-name").textContent = status.cluster;
  const alive = status.nodes.filter((node) => node.state === "ALIVE").length;
  const actors = Object.values(status.actors).reduce((a, b) => a + b, 0);
  const objects = status.objects;
  document.getElementById("totals").replaceChildren(
    card("Nodes", alive + " alive, " + (status.nodes.length - alive) + " dead"),
    card("Resources (used / total)", usage(status.resources.total, status.resources.available)),
    card("Object store", objects.count + " objects, " + mib(objects.bytes) + " / " + mib(objects.capacity)),
    card("Spilled", objects.spilled_count + " objects, " + mib(objects.spilled_bytes)),
    card("Actors", actors),
  );
  fill("nodes", status.nodes.map((node) => {
    const tr = row([
      { text: node.node_id, className: "mono" }, node.address, node.head ? "yes" : "", state(node.state),
      node.state === "ALIVE" ? usage(node.resources.total, node.resources.available) : "-",
      node.state === "ALIVE" ? node.objects + " (" + mib(node.object_bytes) + " / " + mib(node.object_store_capacity) + ")" : "-",
      node.spilled_objects ? node.spilled_objects + " (" + mib(node.spilled_bytes) + ")" : "0",
    ]);
    tr.dataset.nodeId = node.node_id;
    return tr;
  }), 7, "no nodes");
}

function drawActors(body) {
  const counts = {};
  for (const actor of body.actors) counts[actor.state] = (counts[actor.state] || 0) + 1;
  document.getElementById("actor-counts").textContent =
    body.actors.length + " actors" + (body.actors.length ? " (" + Object.entries(counts).map(([s, n]) => n + " " + s).join(", ") + ")" : "");
  fill("actor-rows", body.actors.map((actor) => {
    const logs = el("a", actor.actor_id, "mono");
    logs.href = "/logs?actor_id=" + encodeURIComponent(actor.actor_id);
    logs.title = "the actor's log";
    const tr = row([
      logs, actor.class_name, actor.name, actor.namespace, state(actor.state),
      { text: actor.node_id, className: "mono" }, actor.pid, actor.restarts ?? 0,
      { text: actor.death_cause ?? "", className: "cause" },
    ]);
    tr.dataset.actorId = actor.actor_id;
    return tr;
  }), 9, "no actors");
}

function drawSupervision(status) {
  const daemon = status.daemon;
  let line = "No supervise daemon has run on this cluster.";
  if (daemon.state) {
    line = "Daemon: " + daemon.state + (daemon.reason ? " (" + daemon.reason + ")" : "") + ", pid " + daemon.pid +
      " on " + daemon.host + ", spec " + daemon.spec;
    if (!daemon.leader && (daemon.state === "running" || daemon.state === "starting")) line += "; its leadership lapsed";
  }
  document.getElementById("daemon").textContent = line;
  document.getElementById("escalations").replaceChildren(...(daemon.escalations || []).map((e) =>
    el("li", "escalation: supervisor " + e.supervisor + " gave up after child " + e.child + " (" + e.exit + ")", "error")));
  const byName = new Map(status.services.map((service) => [service.name, service]));
  const rows = [];
  const serviceRow = (name, depth) => {
    const service = byName.get(name);
    byName.delete(name);
    const label = el("span", "\u00a0\u00a0".repeat(depth) + name);
    const tr = service
      ? row([label, state(service.state), { text: service.node, className: "mono" }, service.pid, service.restarts,
             service.uptime === null || service.uptime === undefined ? "-" : service.uptime.toFixed(1) + " s",
             failure(service.last_failure)])
      : row([label, state("NOT STARTED"), "", "", "", "", ""]);
    tr.dataset.service = name;
    tr.className = "service";
    rows.push(tr);
  };
  const drawGroup = (group, depth) => {
    const window_ = group.max_restarts < 0 ? "unlimited restarts" : "max " + group.max_restarts + " restarts in " + group.period + " s";
    const tr = row([el("span", "\u00a0\u00a0".repeat(depth) + group.group), group.strategy + ", " + window_, "", "", "", "", ""]);
    tr.className = "group";
    tr.dataset.group = group.group;
    rows.push(tr);
    for (const child of group.children) {
      if ("group" in child) drawGroup(child, depth + 1);
      else for (const name of child.names) serviceRow(name, depth + 1);
    }
  };
  if (daemon.tree) drawGroup(daemon.tree, 0);
  for (const name of [...byName.keys()].sort()) serviceRow(name, 0);
  fill("services", rows, 7, "no services");
  drawGroups(status.groups || []);
}

function restartWindow(maxRestarts, period) {
  if (maxRestarts < 0) return "unlimited restarts";
  return "max " + maxRestarts + " restarts" + (period === null || period === undefined ? "" : " in " + period + " s");
}

function failure(last, prefix) {
  if (!last) return "";
  const ago = Math.max(0, Date.now() / 1000 - last.time);
  return { text: (prefix || "") + last.exit + " (" + ago.toFixed(0) + " s ago)", className: "cause" };
}

// Users' supervision groups: a row per group (its policy, owner and total restarts), then its members.
function drawGroups(groups) {
  const rows = [];
  for (const group of groups) {
    const last = group.state === "DEAD" && group.cause ? { text: group.cause, className: "cause" }
      : failure(group.last_failure, group.last_failure ? "child " + group.last_failure.child + ": " : "");
    const owner = group.owner || {};
    const tr = row([el("span", group.name), state(group.state),
                    group.strategy + ", " + restartWindow(group.max_restarts, group.period),
                    { text: owner.node_id, className: "mono" }, owner.pid, group.restarts, last]);
    tr.className = "user-group";
    tr.dataset.groupId = group.group_id;
    rows.push(tr);
    (group.members || []).forEach((member, index) => {
      const branch = index === group.members.length - 1 ? "\u2514\u2500 " : "\u251c\u2500 ";
      const child = row([el("span", "\u00a0\u00a0" + branch + member.id), state(member.state), member.class_name,
                         { text: member.node_id, className: "mono" }, member.pid, member.restarts,
                         failure(member.last_failure)]);
      child.className = "member";
      child.dataset.member = group.name + "/" + member.id;
      rows.push(child);
    });
  }
  fill("groups", rows, 7, "no supervision groups");
}

function drawTasks(body) {
  document.getElementById("tasks-note").textContent = body.note || "";
  const counts = {};
  for (const task of body.tasks) counts[task.state] = (counts[task.state] || 0) + 1;
  document.getElementById("task-counts").textContent = Object.entries(counts).map(([s, n]) => n + " " + s).join(", ");
  fill("task-rows", body.tasks.map((task) => row([
    { text: task.task_id, className: "mono" }, task.name, state(task.state), { text: task.node_id, className: "mono" },
    { text: task.worker_id, className: "mono" }, { text: task.error_message ?? "", className: "cause" },
  ])), 6, "no tasks");
}

function drawObjects(body) {
  document.getElementById("objects-note").textContent = body.note || "";
  fill("object-rows", body.objects.map((object) => row([
    { text: object.object_id, className: "mono" }, object.object_size, object.reference_type,
    { text: object.node_ip_address ?? object.node_id, className: "mono" }, object.call_site,
  ])), 5, "no objects");
}

const VIEWS = {
  overview: ["/api/cluster", drawOverview],
  actors: ["/api/actors", drawActors],
  supervision: ["/api/supervision", drawSupervision],
  tasks: ["/api/tasks", drawTasks],
  objects: ["/api/objects", drawObjects],
};

function currentTab() {
  const tab = window.location.hash.slice(1);
  return TABS.includes(tab) ? tab : "overview";
}

async function refresh() {
  const tab = currentTab();
  for (const name of TABS) document.getElementById(name).hidden = name !== tab;
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("active", link.dataset.tab === tab);
  const [path, draw] = VIEWS[tab];
  const error = document.getElementById("error");
  try {
    draw(await api(path));
    error.hidden = true;
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (failure) {
    error.textContent = "Cannot refresh: " + failure.message;
    error.hidden = false;
  }
}

window.addEventListener("hashchange", refresh);
window.addEventListener("DOMContentLoaded", () => {
  refresh();
  setInterval(refresh, REFRESH_MS);
});
