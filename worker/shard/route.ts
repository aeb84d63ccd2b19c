import { shardName, shardOf } from "./admission.ts";
import type { ViewerSession } from "./stage-shard.ts";

/**
 * Reaching a stage's shards from the Worker (shard/admission.ts): a viewer's own, found from its
 * participant id, or all of them.
 */

export interface ShardedStage {
  arn: string;
  /** How many shards its seats are spread over (the routing table says; 1 for a stage from before shards). */
  shards: number;
}

/** The shard that holds this participant's seat on the stage. */
export const viewerShard = (env: Env, stage: ShardedStage, participantId: string) =>
  env.STAGE_SHARD.getByName(shardName(stage.arn, shardOf(participantId, stage.shards)));

/** Every viewer of the stage, over its shards, the earliest first. */
export async function stageViewers(env: Env, stage: ShardedStage): Promise<ViewerSession[]> {
  const shards = Array.from({ length: stage.shards }, (_, i) => env.STAGE_SHARD.getByName(shardName(stage.arn, i)));
  const lists = await Promise.all(shards.map((shard) => shard.viewers()));
  return lists.flat().sort((a, b) => a.joinedAt.localeCompare(b.joinedAt));
}
