import { IvsError } from "../ivs/error.ts";
import type { StageSummary } from "../ivs/types.ts";
import type { BroadcastContext } from "./context.ts";
import type { StagePool } from "./pool.ts";
import { isPlaceholder } from "./registry.ts";
import { TAG } from "../ivs/tags.ts";
import type { Views } from "./views.ts";

/**
 * The cron's pass over one broadcast: the registry against what IVS lists
 * with this broadcast's tags. Orphans (tagged, not registered) are adopted for
 * deletion and deleted like any stage (retried until IVS confirms); registered
 * stages that IVS no longer has are dropped, once GetStage confirms. Deletions
 * that are due are tried, then the snapshot and retention. Idempotent. Without
 * a listing (ListStages failed) only the deletions and housekeeping run.
 */

export interface ReconcileInput {
  /** The stages IVS lists with this broadcast's tags; null when the listing failed. */
  stages: StageSummary[] | null;
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
  const now = Date.now();
  const dropped: string[] = [];
  const orphans: string[] = [];
  if (input.stages) {
    const registered = new Set(registry.stages().map((s) => s.arn));
    // A stage made by a request still awaiting resolution is the placeholder's to deal with.
    const requests = new Set(
      registry
        .stages()
        .filter(isPlaceholder)
        .map((s) => s.arn),
    );
    for (const stage of input.stages) {
      if (registered.has(stage.arn) || requests.has(stage.tags?.[TAG.request] ?? "")) continue;
      pool.adoptForDeletion(stage.arn, now);
      orphans.push(stage.arn);
    }
    const listed = new Set(input.stages.map((s) => s.arn));
    for (const row of registry.stages()) {
      // Only what IVS should already have listed, and only once IVS confirms it is gone.
      if (isPlaceholder(row) || row.state === "deleting" || listed.has(row.arn)) continue;
      if (row.created_at >= input.listedAt || !row.owned) continue;
      const gone = await ivs.getStage(row.arn).then(
        () => false,
        (error: unknown) => ignoreNotFound(error) ?? true,
      );
      if (!gone) continue;
      await pool.forget(row.arn);
      dropped.push(row.arn);
    }
  }
  const deleted = new Set(await pool.deleteDue(now));
  housekeeping(c, views, Date.now());
  if (orphans.length || dropped.length || deleted.size) c.channels.statsChanged();
  return { orphansDeleted: orphans.filter((arn) => deleted.has(arn)), dropped };
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
