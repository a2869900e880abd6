import { setupClassify } from "./classify.js";
import { createApi } from "./client.js";
import { setupHistory } from "./history.js";
import { setupSession } from "./sign_in.js";
import { mayOpen, type Role } from "./session.js";
import { setupStats } from "./stats.js";

const VIEWS = ["classify", "history", "stats"] as const;
type View = (typeof VIEWS)[number];
/** The least role that may open each view (the RPC it calls: Submit, ListJobs, GetStats). */
const NEEDS: Record<View, Role> = { classify: "anonymous", history: "viewer", stats: "operator" };

const api = createApi();
setupClassify(api);
const history = setupHistory(api);
const stats = setupStats(api);
const session = setupSession(() => showView(false));

function currentView(): View {
  const wanted = window.location.hash.slice(1);
  const view = (VIEWS as readonly string[]).includes(wanted) ? (wanted as View) : "classify";
  return mayOpen(session.who(), NEEDS[view]) ? view : "classify";
}

/** Hash routing: each view is a link, so Back, bookmarks and the keyboard all work. */
function showView(moveFocus: boolean): void {
  const view = currentView();
  // What the role may not do is not offered at all (the services refuse it anyway).
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-view]")) {
    link.hidden = !mayOpen(session.who(), NEEDS[link.dataset.view as View]);
  }
  for (const panel of document.querySelectorAll<HTMLElement>("[data-view-panel]")) {
    panel.hidden = panel.dataset.viewPanel !== view;
  }
  for (const link of document.querySelectorAll<HTMLAnchorElement>("nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (view === "history") void history.load();
  if (view === "stats") void stats.load();
  if (moveFocus) document.getElementById(`${view}-title`)?.focus();
}

for (const view of VIEWS) document.getElementById(`${view}-title`)?.setAttribute("tabindex", "-1");
window.addEventListener("hashchange", () => showView(true));
showView(false);
