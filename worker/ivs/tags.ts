import type { Tags } from "./types.ts";

/**
 * Every stage Fanout creates carries these tags, so that the cron can find
 * its stages in the account (ListStages returns tags) and tell them from
 * stages that belong to anyone else.
 */
export const TAG = {
  broadcast: "fanout:broadcast",
  role: "fanout:role",
  creator: "fanout:creator",
  /**
   * A random id per CreateStage request. IVS takes no client token, so a call that timed out
   * may have created the stage: Fanout looks for this tag before it creates again, and a
   * restarted object finds what its unfinished request made (pool.ts).
   */
  request: "fanout:request",
} as const;

export type StageRole = "origin" | "edge";

export function fanoutTags(input: {
  broadcastId: string;
  role: StageRole;
  deployment: string;
  request?: string;
}): Tags {
  return {
    [TAG.broadcast]: input.broadcastId,
    [TAG.role]: input.role,
    [TAG.creator]: input.deployment,
    ...(input.request && { [TAG.request]: input.request }),
  };
}

/** The Fanout identity of a stage, or undefined for a stage Fanout did not create (or another deployment did). */
export function readFanoutTags(
  tags: Tags | undefined,
  deployment: string,
): { broadcastId: string; role: StageRole } | undefined {
  if (!tags || tags[TAG.creator] !== deployment) return undefined;
  const broadcastId = tags[TAG.broadcast];
  const role = tags[TAG.role];
  if (!broadcastId || (role !== "origin" && role !== "edge")) return undefined;
  return { broadcastId, role };
}

/** A stage name IVS accepts (`[a-zA-Z0-9-_]{0,128}`) that says what the stage is for. */
export function stageName(broadcastId: string, role: StageRole): string {
  return `fanout-${broadcastId}-${role}-${Date.now().toString(36)}`.slice(0, 128);
}
