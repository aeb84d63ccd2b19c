import { loadConfig } from "./config.ts";
import { IvsClient } from "./ivs/client.ts";
import { readFanoutTags } from "./ivs/tags.ts";
import { accountPace } from "./account/budget.ts";
import type { StageSummary } from "./ivs/types.ts";

/**
 * Every minute (wrangler.toml `[triggers]`): one ListStages over the account
 * (5 TPS quota, paced by the account's budget), grouped by Fanout's broadcast
 * tag, and each broadcast that is live or has tagged stages reconciles its
 * registry with its group (orphans deleted, vanished stages dropped, deletions
 * retried), takes its snapshot and applies retention. Each broadcast on its own:
 * one that fails or throws is logged and the others go on. If the listing fails,
 * the live broadcasts still run their deletions and housekeeping.
 * Fast reactions come from load reports and alarms, not from here.
 */

/** Broadcasts reconciled at once: enough to finish in a minute, few enough for the 5 TPS budget to be fair. */
const CONCURRENCY = 4;

export async function reconcileAll(
  env: Env,
): Promise<{ broadcasts: number; orphansDeleted: number; dropped: number; failed: string[] }> {
  const config = loadConfig(env);
  const listedAt = Date.now();
  const ivs = new IvsClient({ ...config.ivs, pace: accountPace(env, config.ivs.controlTps) });
  const stages = await ivs.listAllStages().catch((error: unknown) => {
    console.error(`cron: ListStages failed, reconciling without it: ${(error as Error).message}`);
    return null;
  });
  const byBroadcast = new Map<string, StageSummary[]>();
  for (const stage of stages ?? []) {
    const owner = readFanoutTags(stage.tags, config.deployment);
    if (!owner) continue; // not Fanout's (or another deployment's): never touched
    byBroadcast.set(owner.broadcastId, [...(byBroadcast.get(owner.broadcastId) ?? []), stage]);
  }
  const live = await env.DIRECTORY.getByName("directory").live();
  const ids = [...new Set([...byBroadcast.keys(), ...live])];
  let orphansDeleted = 0;
  let dropped = 0;
  const failed: string[] = [];
  const one = async (id: string) => {
    try {
      const result = await env.BROADCAST.getByName(id).reconcile({
        stages: stages === null ? null : (byBroadcast.get(id) ?? []),
        listedAt,
      });
      if (!result.ok) throw new Error(result.failure.message);
      orphansDeleted += result.value.orphansDeleted.length;
      dropped += result.value.dropped.length;
    } catch (error) {
      // One broadcast that fails (IVS refused, or the object threw) is no reason to skip the others.
      failed.push(id);
      console.error(`cron: reconcile of ${id} failed: ${(error as Error).message}`);
    }
  };
  for (let i = 0; i < ids.length; i += CONCURRENCY) await Promise.all(ids.slice(i, i + CONCURRENCY).map(one));
  return { broadcasts: ids.length, orphansDeleted, dropped, failed };
}
