import { loadConfig } from "./config.ts";
import { IvsClient } from "./ivs/client.ts";
import { readFanoutTags } from "./ivs/tags.ts";
import type { StageSummary } from "./ivs/types.ts";

/**
 * Every minute (wrangler.toml `[triggers]`): one ListStages over the account
 * (5 TPS quota), grouped by Fanout's broadcast tag, and each broadcast that is
 * live or has tagged stages reconciles its registry with its group (orphans
 * deleted, vanished stages dropped), takes its snapshot and applies retention.
 * Fast reactions come from load reports and alarms, not from here.
 */
export async function reconcileAll(env: Env): Promise<{ broadcasts: number; orphansDeleted: number; dropped: number }> {
  const config = loadConfig(env);
  const listedAt = Date.now();
  const stages = await new IvsClient(config.ivs).listAllStages();
  const byBroadcast = new Map<string, StageSummary[]>();
  for (const stage of stages) {
    const owner = readFanoutTags(stage.tags, config.deployment);
    if (!owner) continue; // not Fanout's (or another deployment's): never touched
    byBroadcast.set(owner.broadcastId, [...(byBroadcast.get(owner.broadcastId) ?? []), stage]);
  }
  const live = await env.DIRECTORY.getByName("directory").live();
  const ids = new Set([...byBroadcast.keys(), ...live]);
  let orphansDeleted = 0;
  let dropped = 0;
  for (const id of ids) {
    const result = await env.BROADCAST.getByName(id).reconcile({ stages: byBroadcast.get(id) ?? [], listedAt });
    if (!result.ok) {
      // One broadcast IVS refused to reconcile is no reason to skip the others; the next run tries again.
      console.error(`reconcile of ${id} failed: ${result.failure.message}`);
      continue;
    }
    orphansDeleted += result.value.orphansDeleted.length;
    dropped += result.value.dropped.length;
  }
  return { broadcasts: ids.size, orphansDeleted, dropped };
}
