import { setupClassify } from "./classify.js";
import { createApi } from "./client.js";
import { setupHistory } from "./history.js";
import { setupStats } from "./stats.js";

const VIEWS = ["classify", "history", "stats"] as const;
type View = (typeof VIEWS)[number];

const api = createApi();
setupClassify(api);
const history = setupHistory(api);
const stats = setupStats(api);

function currentView(): View {
  const wanted = window.location.hash.slice(1);
  return (VIEWS as readonly string[]).includes(wanted) ? (wanted as View) : "classify";
}

/** Hash routing: each view is a link, so Back, bookmarks and the keyboard all work. */
function showView(moveFocus: boolean): void {
  const view = currentView();
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
