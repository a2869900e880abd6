import type { Api } from "./client.js";
import { JobState } from "./gen/weather/v1/job_pb.js";
import type { GetStatsResponse, ModelQuality } from "./gen/weather/v1/reporting_pb.js";
import { byId, describeError, formatPercent, hide, show } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const BAR_HEIGHT = 28;
const BAR_GAP = 10;
const LABEL_WIDTH = 80;
const CHART_WIDTH = 360;

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/** A horizontal bar chart in plain SVG: one bar per label, scaled to the largest count. */
export function barChart(counts: { label: string; count: number }[], title: string): SVGSVGElement {
  const height = Math.max(1, counts.length) * (BAR_HEIGHT + BAR_GAP);
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${height}`,
    role: "img",
    "aria-label": `${title}: ${counts.map((c) => `${c.label} ${c.count}`).join(", ") || "no jobs yet"}`,
    class: "bar-chart",
  });
  const largest = Math.max(1, ...counts.map((c) => c.count));
  const barSpace = CHART_WIDTH - LABEL_WIDTH - 50;
  counts.forEach(({ label, count }, index) => {
    const y = index * (BAR_HEIGHT + BAR_GAP);
    const name = svg("text", { x: 0, y: y + BAR_HEIGHT * 0.68, class: "chart-label" });
    name.textContent = label;
    const width = Math.max(2, (count / largest) * barSpace);
    const bar = svg("rect", { x: LABEL_WIDTH, y, width, height: BAR_HEIGHT, rx: 4, class: "chart-bar" });
    const value = svg("text", { x: LABEL_WIDTH + width + 6, y: y + BAR_HEIGHT * 0.68, class: "chart-value" });
    value.textContent = String(count);
    chart.append(name, bar, value);
  });
  return chart;
}

/** One model version's quality: its headline figures and per-label F1 as bars (in %). */
function qualityCard(model: ModelQuality): HTMLElement {
  const card = document.createElement("figure");
  card.className = "chart quality";
  card.dataset.modelVersion = model.modelVersion;
  const caption = document.createElement("figcaption");
  const code = document.createElement("code");
  code.textContent = model.modelVersion || "unknown";
  caption.append(code);
  const figures = document.createElement("p");
  figures.className = "quality-figures";
  figures.textContent =
    model.judgedJobs === 0n
      ? `${model.answeredJobs} answers, none with feedback yet`
      : `accuracy ${formatPercent(model.accuracy)} · macro-F1 ${formatPercent(model.macroF1)} · ` +
        `ECE ${model.expectedCalibrationError.toFixed(3)} · ` +
        `${model.judgedJobs} of ${model.answeredJobs} answers with feedback`;
  const f1 = model.labels.map((label) => ({ label: label.label, count: Math.round(label.f1 * 100) }));
  card.append(caption, figures, barChart(f1, `F1 per label in % for ${model.modelVersion}`));
  return card;
}

function stateCount(stats: GetStatsResponse, state: JobState): string {
  const found = stats.stateCounts.find((entry) => entry.state === state);
  return String(found?.count ?? 0n);
}

/** The Stats view: GetStats over all jobs, with the per-label chart, and GetQuality a page of
 * model versions at a time (most answers first), "More model versions" fetching the next. */
export function setupStats(api: Api): { load: () => Promise<void> } {
  const error = byId("stats-error");
  const more = byId<HTMLButtonElement>("stats-quality-more");
  /** The token of the next quality page; "" when the last page is shown. */
  let qualityToken = "";

  async function loadQuality(pageToken: string): Promise<void> {
    const quality = await api.reporting.getQuality({ pageToken });
    const cards = quality.models.map(qualityCard);
    if (pageToken) byId("stats-quality").append(...cards);
    else byId("stats-quality").replaceChildren(...cards);
    byId("stats-quality-empty").hidden = byId("stats-quality").childElementCount > 0;
    qualityToken = quality.nextPageToken;
    more.hidden = !qualityToken;
  }

  async function load(): Promise<void> {
    hide(error);
    try {
      const stats = await api.reporting.getStats({});
      byId("stats-total").textContent = String(stats.totalJobs);
      byId("stats-succeeded").textContent = stateCount(stats, JobState.SUCCEEDED);
      byId("stats-failed").textContent = stateCount(stats, JobState.FAILED);
      byId("stats-queued").textContent = stateCount(stats, JobState.QUEUED);
      const latency = stats.latency;
      byId("stats-latency").textContent = latency
        ? `${latency.p50Ms.toFixed(0)} / ${latency.p95Ms.toFixed(0)} / ${latency.p99Ms.toFixed(0)} ms`
        : "–";
      const counts = stats.labelCounts.map((entry) => ({ label: entry.label, count: Number(entry.count) }));
      byId("stats-chart").replaceChildren(barChart(counts, "Jobs per label"));
      byId("stats-models").replaceChildren(
        ...stats.modelVersionCounts.map((entry) => {
          const item = document.createElement("li");
          const code = document.createElement("code");
          code.textContent = entry.modelVersion || "unknown";
          item.append(code, ` — ${entry.count} ${entry.count === 1n ? "job" : "jobs"}`);
          return item;
        }),
      );
      await loadQuality("");
    } catch (failure) {
      show(error, describeError(failure, "load the stats"));
    }
  }

  async function loadMore(): Promise<void> {
    hide(error);
    more.disabled = true;
    try {
      await loadQuality(qualityToken);
    } catch (failure) {
      show(error, describeError(failure, "load more model versions"));
    } finally {
      more.disabled = false;
    }
  }

  byId("stats-refresh").addEventListener("click", () => void load());
  more.addEventListener("click", () => void loadMore());
  return { load };
}
