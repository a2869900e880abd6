/**
 * Facts the UI reads from the generated contract (ui/src/gen, from protos/) instead of
 * re-typing them: the label set, the job states and the upload cap. A label or state added
 * to the protos shows up in the filters after `make ui-gen`, with no HTML to edit.
 */
import { Limit } from "./gen/weather/v1/defaults_pb.js";
import { JobState, Label } from "./gen/weather/v1/job_pb.js";

export const MAX_UPLOAD_BYTES: number = Limit.MAX_UPLOAD_BYTES;

/** The named values of a generated numeric enum, without its UNSPECIFIED zero. */
function namedValues(enumeration: Record<string, string | number>): [string, number][] {
  return Object.entries(enumeration).flatMap(([name, value]) =>
    typeof value === "number" && value !== 0 ? [[name, value] as [string, number]] : [],
  );
}

/** The labels as they travel on the wire: `Label.CLOUDY` is "cloudy" (see job.proto). */
export const LABELS: string[] = namedValues(Label).map(([name]) => name.toLowerCase());

/** Every job state a job can be in, in the contract's order. */
export const JOB_STATES: JobState[] = namedValues(JobState).map(([, value]) => value as JobState);

/** "Queued", "Succeeded", "Failed": the state's name in the contract, for people. */
export function stateName(state: JobState): string {
  const name = JobState[state] as string | undefined;
  if (name === undefined || state === JobState.UNSPECIFIED) return "Unknown";
  return name.charAt(0) + name.slice(1).toLowerCase();
}
