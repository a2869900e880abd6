import { Code, ConnectError } from "@connectrpc/connect";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { MAX_UPLOAD_BYTES } from "./contract.js";

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatPercent(score: number): string {
  return `${(score * 100).toFixed(1)}%`;
}

export function formatTime(timestamp: Timestamp | undefined): string {
  return timestamp ? timestampDate(timestamp).toLocaleString() : "–";
}

/** Why a photo cannot be sent at all, checked before any bytes leave the browser. */
export function uploadProblem(file: File): string | null {
  if (file.size === 0) return `“${file.name}” is empty.`;
  if (file.size > MAX_UPLOAD_BYTES) {
    return `“${file.name}” is ${formatBytes(file.size)}; photos can be at most ${formatBytes(MAX_UPLOAD_BYTES)}. Choose a smaller one.`;
  }
  return null;
}

/** An RPC failure in words a person understands, with the server's own words when it gave some. */
export function describeError(error: unknown, action: string): string {
  const failure = ConnectError.from(error);
  const said = failure.rawMessage ? ` The service said: “${failure.rawMessage}”.` : "";
  switch (failure.code) {
    case Code.InvalidArgument:
      return `That file isn't a photo we can read. Use a JPEG, PNG, GIF, WebP or BMP image.${said}`;
    case Code.ResourceExhausted:
      return `The service is busy or the file is too large (the limit is ${formatBytes(MAX_UPLOAD_BYTES)}). Wait a moment and try again.${said}`;
    case Code.FailedPrecondition:
      return `The request conflicts with an earlier one.${said}`;
    case Code.NotFound:
      return `That job no longer exists.${said}`;
    case Code.Unavailable:
      return `The weather service can't be reached right now, so we could not ${action}. Check that it is running and try again.`;
    case Code.DeadlineExceeded:
      return `The service took too long to ${action}. Try again.`;
    case Code.Canceled:
      return `Cancelled before we could ${action}.`;
    case Code.Unimplemented:
      return `The service doesn't offer this yet, so we could not ${action}.`;
    case Code.Unauthenticated:
      return `Sign in (or sign in again) to ${action}.${said}`;
    case Code.PermissionDenied:
      return `Your role does not allow you to ${action}.${said}`;
    default:
      return `Something went wrong while trying to ${action}. Try again in a moment.${said}`;
  }
}

export function show(element: HTMLElement, text: string): void {
  element.textContent = text;
  element.hidden = false;
}

export function hide(element: HTMLElement): void {
  element.textContent = "";
  element.hidden = true;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from index.html`);
  return element as T;
}
