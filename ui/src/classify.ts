import { Code, ConnectError } from "@connectrpc/connect";
import type { Api } from "./client.js";
import { type Job, JobState } from "./gen/weather/v1/job_pb.js";
import {
  byId,
  describeError,
  formatBytes,
  formatPercent,
  hide,
  show,
  uploadProblem,
} from "./format.js";
import { LABELS, MAX_UPLOAD_BYTES, stateName } from "./contract.js";

const RETRY_DELAYS_MS = [500, 1000, 2000, 5000];

/** A fresh idempotency key; getRandomValues works on plain-http origins, randomUUID does not. */
function newIdempotencyKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function isTerminal(state: JobState): boolean {
  return state === JobState.SUCCEEDED || state === JobState.FAILED;
}

/** The Classify view: choose or drop a photo, submit it, follow its job live. */
export function setupClassify(api: Api): void {
  const form = byId<HTMLFormElement>("submit-form");
  const input = byId<HTMLInputElement>("photo-input");
  const dropZone = byId("drop-zone");
  const button = byId<HTMLButtonElement>("submit-button");
  const preview = byId("preview");
  const previewImage = byId<HTMLImageElement>("preview-image");
  const previewCaption = byId("preview-caption");
  const submitError = byId("submit-error");
  const jobSection = byId("job");
  const jobStatus = byId("job-status");
  const jobResult = byId("job-result");
  byId("upload-cap").textContent = formatBytes(MAX_UPLOAD_BYTES);
  const feedbackRight = byId<HTMLButtonElement>("feedback-right");
  const feedbackLabel = byId<HTMLSelectElement>("feedback-label");
  const feedbackStatus = byId("feedback-status");
  feedbackLabel.append(
    ...LABELS.map((label) => {
      const option = document.createElement("option");
      option.value = label;
      option.textContent = label;
      return option;
    }),
  );
  /** The job the answer on screen belongs to: the one feedback is about. */
  let shownJobId = "";

  let chosen: File | null = null;
  // One key per chosen file: a retried Submit (after a dropped reply) returns the same job.
  let idempotencyKey = "";
  let previewUrl: string | null = null;
  let watch: AbortController | null = null;

  function choose(file: File | undefined): void {
    hide(submitError);
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    chosen = null;
    button.disabled = true;
    if (!file) {
      preview.hidden = true;
      return;
    }
    previewUrl = URL.createObjectURL(file);
    previewImage.hidden = false;
    previewImage.src = previewUrl;
    previewCaption.textContent = `${file.name} · ${formatBytes(file.size)}`;
    preview.hidden = false;
    const problem = uploadProblem(file);
    if (problem) {
      show(submitError, problem);
      return;
    }
    chosen = file;
    idempotencyKey = newIdempotencyKey();
    button.disabled = false;
  }

  previewImage.addEventListener("error", () => {
    if (!previewImage.src) return;
    previewImage.hidden = true;
    previewCaption.textContent += " · no preview: the browser cannot show this file";
  });
  input.addEventListener("change", () => choose(input.files?.[0]));

  for (const type of ["dragenter", "dragover"] as const) {
    dropZone.addEventListener(type, (event) => {
      event.preventDefault();
      dropZone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"] as const) {
    dropZone.addEventListener(type, () => dropZone.classList.remove("dragging"));
  }
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    const file = event.dataTransfer?.files[0];
    if (file) choose(file);
  });

  /** GiveFeedback: "" means the answer was right; a label says what the photo really shows. */
  async function giveFeedback(actualLabel: string): Promise<void> {
    if (!shownJobId) return;
    feedbackRight.disabled = feedbackLabel.disabled = true;
    feedbackStatus.textContent = "Sending…";
    try {
      const response = await api.dispatcher.giveFeedback({ jobId: shownJobId, actualLabel });
      if (response.job) render(response.job);
    } catch (error) {
      feedbackStatus.textContent = describeError(error, "send your feedback");
    } finally {
      feedbackRight.disabled = feedbackLabel.disabled = false;
    }
  }
  feedbackRight.addEventListener("click", () => void giveFeedback(""));
  feedbackLabel.addEventListener("change", () => {
    if (feedbackLabel.value) void giveFeedback(feedbackLabel.value);
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (chosen) void submit(chosen);
  });

  async function submit(file: File): Promise<void> {
    watch?.abort();
    hide(submitError);
    jobSection.hidden = true;
    button.disabled = true;
    button.textContent = "Sending…";
    try {
      const image = new Uint8Array(await file.arrayBuffer());
      const response = await api.dispatcher.submit({
        image,
        filename: file.name,
        idempotencyKey,
      });
      if (!response.job) throw new Error("the dispatcher answered without a job");
      render(response.job);
      if (!isTerminal(response.job.state)) {
        watch = new AbortController();
        void follow(response.job.id, watch.signal);
      }
    } catch (error) {
      show(submitError, describeError(error, "send the photo"));
    } finally {
      button.textContent = "Classify";
      button.disabled = chosen === null;
    }
  }

  /** WatchJob until a terminal state; a dropped stream is re-opened (it restarts with the current state). */
  async function follow(jobId: string, signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      try {
        for await (const update of api.dispatcher.watchJob({ jobId }, { signal })) {
          attempt = 0;
          if (!update.job) continue;
          render(update.job);
          if (isTerminal(update.job.state)) return;
        }
      } catch (error) {
        if (signal.aborted) return;
        const failure = ConnectError.from(error);
        if (failure.code === Code.NotFound || failure.code === Code.InvalidArgument) {
          jobStatus.textContent = describeError(error, "follow the job");
          return;
        }
        jobStatus.textContent = `Lost the live connection; reconnecting… (${describeError(error, "follow the job")})`;
      }
      const delay = RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)] ?? 5000;
      attempt += 1;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  function renderFeedback(job: Job): void {
    const feedback = job.feedback;
    if (!feedback) {
      feedbackStatus.textContent = "";
      feedbackLabel.value = "";
      return;
    }
    feedbackStatus.textContent = feedback.right
      ? "Thanks: you said it was right."
      : `Thanks: you said it is ${feedback.actualLabel}.`;
    feedbackLabel.value = feedback.right ? "" : feedback.actualLabel;
  }

  function render(job: Job): void {
    jobSection.hidden = false;
    if (job.id !== shownJobId) feedbackStatus.textContent = "";
    shownJobId = job.id;
    jobSection.dataset.state = stateName(job.state).toLowerCase();
    byId("job-id").textContent = job.id;
    if (job.state === JobState.SUCCEEDED && job.classification) {
      const result = job.classification;
      jobStatus.textContent = `Done: ${job.filename || "your photo"} looks like ${result.label}.`;
      byId("job-label").textContent = result.label;
      byId("job-confidence").textContent = `${formatPercent(result.confidence)} sure`;
      byId("job-model").textContent = result.modelVersion || "unknown";
      const list = byId("job-scores");
      list.replaceChildren(
        ...result.scores.map((score) => {
          const item = document.createElement("li");
          const name = document.createElement("span");
          name.className = "bar-name";
          name.textContent = score.label;
          const track = document.createElement("span");
          track.className = "bar-track";
          track.setAttribute("role", "meter");
          track.setAttribute("aria-label", `${score.label} confidence`);
          track.setAttribute("aria-valuemin", "0");
          track.setAttribute("aria-valuemax", "100");
          track.setAttribute("aria-valuenow", (score.score * 100).toFixed(1));
          const fill = document.createElement("span");
          fill.className = "bar-fill";
          fill.style.width = `${Math.max(0, Math.min(1, score.score)) * 100}%`;
          track.append(fill);
          const value = document.createElement("span");
          value.className = "bar-value";
          value.textContent = formatPercent(score.score);
          item.append(name, track, value);
          return item;
        }),
      );
      renderFeedback(job);
      jobResult.hidden = false;
    } else if (job.state === JobState.FAILED) {
      jobResult.hidden = true;
      jobStatus.textContent = `We could not classify this photo: ${(job.errorMessage || "the service gave no reason").replace(/\.$/, "")}.`;
    } else {
      jobResult.hidden = true;
      jobStatus.textContent = "Queued — waiting for the classifier…";
    }
  }
}
