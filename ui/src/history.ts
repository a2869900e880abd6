import type { Api } from "./client.js";
import { JobState } from "./gen/weather/v1/job_pb.js";
import { JOB_STATES, LABELS, stateName } from "./contract.js";
import { byId, describeError, formatPercent, formatTime, hide, show } from "./format.js";

const PAGE_SIZE = 10;

/** The History view: ListJobs newest first, paged with the server's opaque cursor. */
export function setupHistory(api: Api): { load: () => Promise<void> } {
  const rows = byId("history-rows");
  const empty = byId("history-empty");
  const error = byId("history-error");
  const newer = byId<HTMLButtonElement>("history-newer");
  const older = byId<HTMLButtonElement>("history-older");
  const pageLabel = byId("history-page");
  const labelFilter = byId<HTMLSelectElement>("history-label");
  const stateFilter = byId<HTMLSelectElement>("history-state");
  // The filters offer what the contract defines, after the "All …" option of index.html.
  labelFilter.append(...LABELS.map((label) => new Option(label, label)));
  stateFilter.append(...JOB_STATES.map((state) => new Option(stateName(state), String(state))));
  // tokens[i] fetches page i; the first page has the empty token.
  let tokens: string[] = [""];
  let page = 0;
  let nextToken = "";
  // Only the latest request may fill the table: an answer to an earlier filter that arrives
  // late must not overwrite the answer to the current one.
  let latest = 0;

  async function fetchPage(index: number): Promise<void> {
    hide(error);
    const request = ++latest;
    try {
      const response = await api.reporting.listJobs({
        pageSize: PAGE_SIZE,
        pageToken: tokens[index] ?? "",
        label: labelFilter.value,
        state: Number(stateFilter.value) as JobState,
      });
      if (request !== latest) return;
      page = index;
      nextToken = response.nextPageToken;
      if (nextToken) tokens[index + 1] = nextToken;
      rows.replaceChildren(
        ...response.jobs.map((job) => {
          const row = document.createElement("tr");
          const cells = [
            formatTime(job.submittedAt),
            job.filename || "–",
            job.state === JobState.FAILED && job.errorMessage
              ? `${stateName(job.state)}: ${job.errorMessage}`
              : stateName(job.state),
            job.classification?.label ?? "–",
            job.classification ? formatPercent(job.classification.confidence) : "–",
            !job.feedback ? "–" : job.feedback.right ? "right" : `wrong: ${job.feedback.actualLabel}`,
          ];
          for (const text of cells) {
            const cell = document.createElement("td");
            cell.textContent = text;
            row.append(cell);
          }
          row.dataset.jobId = job.id;
          return row;
        }),
      );
      empty.hidden = response.jobs.length > 0 || page > 0;
      pageLabel.textContent = `Page ${page + 1}`;
    } catch (failure) {
      show(error, describeError(failure, "load the history"));
    } finally {
      newer.disabled = page === 0;
      older.disabled = !nextToken;
    }
  }

  // A cursor belongs to the filters it was made with: any change starts again at page 1.
  const restart = (): void => {
    tokens = [""];
    void fetchPage(0);
  };
  byId("history-refresh").addEventListener("click", restart);
  labelFilter.addEventListener("change", restart);
  stateFilter.addEventListener("change", restart);
  newer.addEventListener("click", () => void fetchPage(Math.max(0, page - 1)));
  older.addEventListener("click", () => void fetchPage(page + 1));

  return {
    load: () => {
      tokens = [""];
      return fetchPage(0);
    },
  };
}
