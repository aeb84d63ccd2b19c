import type { ShardState } from "./schema.ts";

/**
 * The shard's rules, apart from its storage: whether a viewer takes a seat, and when a change
 * is reported to the broadcast. The StageShard object applies them; the scale simulation
 * (bench/scale.ts) runs the same functions.
 */

export type SeatRefusal = "full" | "draining" | "closed";

/** A seat, if the stage takes viewers (`ready`) and has room. */
export function seatFor(state: ShardState, viewers: number, capacity: number): SeatRefusal | undefined {
  if (state !== "ready") return state;
  if (viewers >= capacity) return "full";
  return undefined;
}

/** Load reports: at most one a second, but at once when a change crosses a threshold the broadcast scales on. */
export const REPORT_INTERVAL_MS = 1000;

export function reportIsUrgent(before: number, after: number, capacity: number, scaleUpAt: number): boolean {
  const mark = capacity * scaleUpAt;
  return before < mark !== after < mark || after >= capacity || before >= capacity || after === 0;
}

/** When the next report goes: now if urgent, else a report interval after the last. */
export const reportAt = (urgent: boolean, now: number, lastReportedAt: number) =>
  urgent ? now : Math.max(now, lastReportedAt + REPORT_INTERVAL_MS);
