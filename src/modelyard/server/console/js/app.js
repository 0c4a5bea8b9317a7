// Entry point: session (and login when the server asks for a token), hash routing and
// the views' lifecycle. A view is `async (el, params) => cleanup?`; the cleanup stops its
// timers and event streams when another view is shown.

import { currentSession, loadSession, login, onUnauthorized } from "./api.js";
import { clear, errorBox, h } from "./dom.js";
import * as jobs from "./jobs.js";
import * as runs from "./runs.js";
import * as models from "./models.js";
import * as deployments from "./deployments.js";
import * as playground from "./playground.js";
import * as tunes from "./tunes.js";
import * as monitor from "./monitor.js";

const ROUTES = [
  [/^#\/jobs\/?$/, jobs.listView, "jobs"],
  [/^#\/jobs\/([\w-]+)$/, jobs.detailView, "jobs"],
  [/^#\/runs\/?$/, runs.listView, "runs"],
  [/^#\/runs\/([\w-]+)$/, runs.detailView, "runs"],
  [/^#\/compare\/([\w,-]+)$/, runs.compareView, "runs"],
  [/^#\/models\/?$/, models.listView, "models"],
  [/^#\/models\/([\w.-]+)\/(\d+)$/, models.versionView, "models"],
  [/^#\/tunes\/?$/, tunes.listView, "tunes"],
  [/^#\/tunes\/([\w.-]+)$/, tunes.detailView, "tunes"],
  [/^#\/deployments\/?$/, deployments.listView, "deployments"],
  [/^#\/deployments\/([\w.-]+)$/, deployments.detailView, "deployments"],
  [/^#\/monitor\/?$/, monitor.pickView, "monitor"],
  [/^#\/monitor\/([\w.-]+)$/, monitor.view, "monitor"],
  [/^#\/playground\/?$/, playground.pickView, "playground"],
  [/^#\/playground\/([\w.-]+)$/, playground.view, "playground"],
];

let cleanup = null;
let generation = 0;

export function flash(message, kind = "info") {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = `flash ${kind}`;
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function show() {
  const hash = location.hash || "#/jobs";
  const view = document.getElementById("view");
  if (cleanup) { try { cleanup(); } catch (_) { /* view already gone */ } cleanup = null; }
  const mine = ++generation;
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", !!found && a.dataset.section === found[2]));
  clear(view);
  if (!found) {
    view.append(errorBox(`No page ${hash}`));
    return;
  }
  const [pattern, render] = found;
  const params = hash.match(pattern).slice(1).map(decodeURIComponent);
  try {
    const done = await render(view, ...params);
    if (mine === generation) cleanup = typeof done === "function" ? done : null;
    else if (typeof done === "function") done();
  } catch (error) {
    if (mine === generation) view.append(errorBox(error));
  }
}

function loginView() {
  const view = document.getElementById("view");
  clear(view);
  const input = h("input", { type: "password", id: "token", autocomplete: "off", placeholder: "token from `modelyard server token create`" });
  const status = h("div");
  const form = h("form", { class: "card narrow", id: "login-form", onsubmit: async (event) => {
    event.preventDefault();
    try {
      await login(input.value.trim());
      renderWho();
      show();
    } catch (error) {
      status.replaceChildren(errorBox(error));
    }
  } },
  h("h2", {}, "Sign in"),
  h("p", {}, "This server needs an access token."),
  h("label", {}, "Token ", input), " ", h("button", { type: "submit" }, "Sign in"), status);
  view.append(form);
}

function renderWho() {
  const s = currentSession();
  document.getElementById("who").textContent = s.auth ? `signed in (${s.role || "?"})` : "local, no sign-in";
}

async function start() {
  try {
    await loadSession();
  } catch (error) {
    document.getElementById("view").replaceChildren(errorBox(error));
    return;
  }
  renderWho();
  onUnauthorized(() => loginView());
  window.addEventListener("hashchange", show);
  const s = currentSession();
  if (s.auth && !s.role) loginView();
  else show();
}

window.modelyard = window.modelyard || {};
start();
