import { IvsError } from "../ivs/error.ts";
import type { StageSummary } from "../ivs/types.ts";
import type { BroadcastContext } from "./context.ts";
import type { StagePool } from "./pool.ts";
import { isPlaceholder } from "./registry.ts";
import type { Views } from "./views.ts";

/**
 * The cron's pass over one broadcast: the registry against what IVS lists
 * with this broadcast's tags. Orphans (tagged, not registered) are deleted;
 * registered stages that IVS no longer has are dropped, once GetStage confirms;
 * placeholders left by a restart mid-creation are dropped after a while. Then
 * the snapshot and retention. Idempotent.
 */

/** A placeholder older than this was left by a restart during CreateStage. */
const PLACEHOLDER_STALE_MS = 120_000;

export interface ReconcileInput {
  /** The stages IVS lists with this broadcast's tags. */
  stages: StageSummary[];
  /** When the listing began: stages registered after it could not have been listed. */
  listedAt: number;
}

export interface ReconcileOutcome {
  orphansDeleted: string[];
  dropped: string[];
}

export async function reconcile(
  c: BroadcastContext,
  pool: StagePool,
  views: Views,
  input: ReconcileInput,
): Promise<ReconcileOutcome> {
  const { registry, ivs } = c;
  const registered = new Set(registry.stages().map((s) => s.arn));
  const orphansDeleted: string[] = [];
  for (const stage of input.stages) {
    if (registered.has(stage.arn)) continue;
    await ivs.deleteStage(stage.arn).catch(ignoreNotFound);
    orphansDeleted.push(stage.arn);
    registry.event("orphan_deleted", { stageArn: stage.arn });
  }
  const listed = new Set(input.stages.map((s) => s.arn));
  const dropped: string[] = [];
  for (const row of registry.stages()) {
    if (isPlaceholder(row)) {
      if (Date.now() - row.created_at > PLACEHOLDER_STALE_MS) registry.removeStage(row.arn);
      continue;
    }
    // Only what IVS should already have listed, and only once IVS confirms it is gone.
    if (listed.has(row.arn) || row.created_at >= input.listedAt || !row.owned) continue;
    const gone = await ivs.getStage(row.arn).then(
      () => false,
      (error: unknown) => ignoreNotFound(error) ?? true,
    );
    if (!gone) continue;
    await pool.forget(row.arn);
    dropped.push(row.arn);
  }
  housekeeping(c, views, Date.now());
  if (orphansDeleted.length || dropped.length) c.channels.statsChanged();
  return { orphansDeleted, dropped };
}

/** A snapshot for the dashboard every SNAPSHOT_INTERVAL_MINUTES while live; history past retention dropped. */
function housekeeping(c: BroadcastContext, views: Views, now: number): void {
  const { registry, config } = c;
  if (registry.state().status === "live" && now - registry.lastSnapshotAt() >= config.snapshotIntervalMs) {
    const stats = views.stats();
    registry.snapshot(now, stats.totalViewers, stats.activeStages, stats.isPublisherLive);
  }
  registry.prune(now - config.retentionMs);
}

/** A stage IVS does not have is what we wanted; anything else is a failure. */
function ignoreNotFound(error: unknown): undefined {
  if (error instanceof IvsError && error.kind === "not_found") return undefined;
  throw error;
}
