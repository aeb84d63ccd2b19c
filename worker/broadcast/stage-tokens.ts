import { IvsError } from "../ivs/error.ts";
import { issueParticipantToken, tokenIssuerFor, type IssuedToken } from "../tokens/participant-token.ts";
import type { BroadcastContext } from "./context.ts";
import { BroadcastFailure, ivsFailure } from "./contract.ts";
import { iso, type StageRow } from "./registry.ts";

/** A participant token for one of the broadcast's stages, self-signed or from IVS as configured. */
export function issueFor(
  c: BroadcastContext,
  stage: StageRow,
  capabilities: ("PUBLISH" | "SUBSCRIBE")[],
  options: { userId?: string; participantId?: string; durationMinutes?: number } = {},
): Promise<IssuedToken> {
  return issueParticipantToken(tokenIssuerFor(c.config, c.ivs), {
    stage: { arn: stage.arn, endpoints: { events: stage.events_url, whip: stage.whip_url } },
    capabilities,
    ...options,
    durationMinutes: options.durationMinutes ?? c.config.tokenMinutes.publisher,
  }).catch((error: unknown) => {
    if (!(error instanceof IvsError)) throw error;
    throw new BroadcastFailure(ivsFailure(error, "issue a token"), { cause: error });
  });
}

/**
 * Tells the studio about a new edge stage (`stage_created`). A direct-fed one
 * comes with its publish token: the studio joins it and publishes into it too.
 */
export async function announce(c: BroadcastContext, stage: StageRow): Promise<void> {
  const timestamp = iso(Date.now());
  if (stage.feed === "direct") {
    const token = await issueFor(c, stage, ["PUBLISH"]);
    c.channels.toBroadcasters({
      type: "stage_created",
      data: { stageArn: stage.arn, feed: "direct", token: token.token, participantId: token.participantId, timestamp },
    });
  } else {
    c.channels.toBroadcasters({ type: "stage_created", data: { stageArn: stage.arn, feed: "replica", timestamp } });
  }
}
