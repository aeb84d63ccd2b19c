import type { Usage, Warning } from "../../protocol/api.ts";
import type { BroadcastContext } from "./context.ts";
import { iso, isActive, isPublishedDirectly, type StageRow } from "./registry.ts";

/**
 * What the broadcast costs, and what an operator must see (docs/design.md, "Cost").
 *
 * IVS bills participant-hours: every participant connected to a stage, by the hour. The
 * object knows, at any moment, how many participants it has connected: the viewers of
 * every stage (the shards' reports), the publisher once in every stage it publishes into
 * (the origin and any direct-fed stage), and one replica in every stage fed by replication.
 * Those counts change only at known points (a report, a publish state, a replication
 * started or stopped), so the time integral is kept exactly by accruing at each of them:
 * `accrue` adds count × elapsed time since the last accrual. Reads extrapolate from the last
 * accrual to now without writing.
 */

interface Participants {
  viewers: number;
  publisher: number;
  replicas: number;
}

function participantsNow(c: BroadcastContext): Participants {
  const { registry } = c;
  const stages = registry.realStages();
  const publishing = registry.publisher()?.state === "publishing";
  return {
    viewers: stages.reduce((sum, s) => sum + (isActive(s) ? s.viewers : 0), 0),
    publisher: publishing ? stages.filter(isPublishedDirectly).length : 0,
    replicas: stages.filter((s) => s.replication === "active").length,
  };
}

/** Stages that exist at IVS now (being deleted included: they count against the quota until gone). */
const stagesAtIvs = (c: BroadcastContext) => c.registry.realStages().length;

/** Adds the participant time since the last accrual, at the counts that held until now. Call before a count changes. */
export function accrue(c: BroadcastContext, now: number): void {
  const { registry } = c;
  const state = registry.state();
  const stages = stagesAtIvs(c);
  const peak = Math.max(state.peak_stages, stages);
  if (state.accrued_at === 0 || now <= state.accrued_at) {
    if (state.accrued_at === 0 || peak !== state.peak_stages)
      registry.setState({ accrued_at: Math.max(state.accrued_at, now), peak_stages: peak });
    return;
  }
  const elapsed = now - state.accrued_at;
  const p = participantsNow(c);
  registry.setState({
    viewer_ms: state.viewer_ms + p.viewers * elapsed,
    publisher_ms: state.publisher_ms + p.publisher * elapsed,
    replica_ms: state.replica_ms + p.replicas * elapsed,
    accrued_at: now,
    peak_stages: peak,
  });
}

const HOUR_MS = 3_600_000;
const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;

export function usageView(c: BroadcastContext, now: number): Usage {
  const state = c.registry.state();
  const elapsed = state.accrued_at > 0 ? Math.max(0, now - state.accrued_at) : 0;
  const p = participantsNow(c);
  const hours = {
    viewers: (state.viewer_ms + p.viewers * elapsed) / HOUR_MS,
    publisher: (state.publisher_ms + p.publisher * elapsed) / HOUR_MS,
    replicas: (state.replica_ms + p.replicas * elapsed) / HOUR_MS,
  };
  const total = hours.viewers + hours.publisher + hours.replicas;
  const price = c.config.pricePerParticipantHour;
  const stages = stagesAtIvs(c);
  return {
    participantHours: {
      viewers: round(hours.viewers, 4),
      publisher: round(hours.publisher, 4),
      replicas: round(hours.replicas, 4),
      total: round(total, 4),
    },
    pricePerParticipantHour: price ?? null,
    estimatedCost: price === undefined ? null : round(total * price, 6),
    stages: { now: stages, peak: Math.max(state.peak_stages, stages) },
  };
}

/** A refusal to create stays on the dashboard this long after creation was unblocked. */
const REFUSAL_SHOWN_MS = 300_000;

export function warnings(c: BroadcastContext, now: number): Warning[] {
  const { registry } = c;
  const state = registry.state();
  const list: Warning[] = [];
  if (state.create_refusal !== null && state.create_blocked_until + REFUSAL_SHOWN_MS > now) {
    const since = state.create_refused_since === null ? null : iso(state.create_refused_since);
    const retry = state.create_blocked_until > now ? ` Fanout asks again at ${iso(state.create_blocked_until)}.` : "";
    if (state.create_refusal === "quota")
      list.push({
        code: "STAGE_QUOTA",
        message: `IVS refused a new stage: the account's stage quota is used up. Viewers beyond the current stages are turned away until stages are freed or the quota is raised.${retry}`,
        since,
      });
    else if (state.create_refusal === "throttled")
      list.push({
        code: "IVS_THROTTLING",
        message: `IVS throttled stage creation (5 requests a second per account, shared with everything else in it).${retry}`,
        since,
      });
    else
      list.push({
        code: "STAGE_CREATE_FAILING",
        message: `IVS failed to create a stage (${state.create_refusal}).${retry}`,
        since,
      });
  }
  const stages = registry.realStages();
  // Once any deletion has failed, every stage still waiting for IVS is counted: all of them cost.
  const waiting = stages.filter((s) => s.state === "deleting" && !s.orphan);
  if (waiting.some((s) => s.delete_attempts > 0))
    list.push({
      code: "DELETE_FAILING",
      message: `${waiting.length} stage(s) IVS has not deleted yet (${lastError(waiting)}): they cost money and count against the quota. Fanout keeps retrying.`,
      since: null,
    });
  const orphans = stages.filter((s) => s.orphan);
  if (orphans.length > 0)
    list.push({
      code: "UNKNOWN_STAGES",
      message: `IVS has ${orphans.length} stage(s) with this broadcast's tags that Fanout had not registered (left by a failed or interrupted request). Fanout is deleting them.`,
      since: iso(Math.min(...orphans.map((s) => s.created_at))),
    });
  return list;
}

const lastError = (stages: StageRow[]) => stages.find((s) => s.delete_error)?.delete_error ?? "no answer yet";
