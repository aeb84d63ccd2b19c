import { LRUCache } from "lru-cache";
import { failureOf, type RoutingStage } from "../broadcast/contract.ts";
import type { Config } from "../config.ts";
import { ApiError, apiError } from "../errors.ts";
import { IvsClient } from "../ivs/client.ts";
import { issueParticipantToken, tokenIssuerFor, type IssuedToken } from "../tokens/participant-token.ts";
import { grantOf } from "../tokens/proof.ts";
import type { AsParticipant } from "../shard/stage-shard.ts";
import { newParticipantIdWhere } from "../tokens/claims.ts";
import { shardName, shardOf } from "../shard/admission.ts";
import { viewerShard } from "../shard/route.ts";
import { chooseShard, chooseStage, shardRefused } from "./choose-stage.ts";
import { cachedRoutingTable, onceHere } from "./cached-table.ts";
import { CAPACITY_ASK_AFTER_MS, CAPACITY_REQUEST_MS, WAIT_FOR_CAPACITY_MS, WAITING_POLL_MS } from "./waiting.ts";

/**
 * A viewer joins (docs/design.md, "The join path"): the routing table from the per-isolate cache, a
 * stage by power-of-two-choices among ready stages, one of its shards at random, admission there
 * (a full shard refuses; another shard, then another stage, is tried), and the token minted
 * here, for a participant id that falls on that shard. No AWS call with self-signed tokens, and no write to the Broadcast DO.
 * When every stage is full the broadcast is asked for capacity, and the join
 * waits a few seconds for a stage being created before it answers STAGE_FULL.
 */

export interface Joined {
  token: IssuedToken;
  stageArn: string;
  viewers: number;
}

const RETRY_AFTER_SECONDS = 5;
/** Per broadcast, bounded like every per-isolate map (the least recently used goes first). */
const capacityRequestedAt = new LRUCache<string, number>({ max: 1_000 });

export async function joinAsViewer(
  env: Env,
  config: Config,
  input: {
    broadcastId: string;
    userId: string;
    stageArn?: string;
    /** A viewer moving off a stage that drains or went: seated like any join, but not an arrival (the policy's join rate). */
    moving?: boolean;
  },
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Joined> {
  const started = Date.now();
  const deadline = started + WAIT_FOR_CAPACITY_MS;
  const issuer = tokenIssuerFor(config, new IvsClient(config.ivs));
  let stale = false;
  for (;;) {
    const maxAge = stale ? 0 : undefined;
    const table = await cachedRoutingTable(env, input.broadcastId, maxAge);
    if (table.status !== "live" || table.stages.length === 0) {
      throw new ApiError("NOT_FOUND", 404, "The broadcast has not started yet.", {
        details: { broadcastId: input.broadcastId },
      });
    }
    let candidates = table.stages.filter((s) => s.state === "ready");
    if (input.stageArn) {
      if (!table.stages.some((s) => s.arn === input.stageArn)) {
        // A stage newer than this isolate's copy of the table: read it afresh once before saying no.
        if (maxAge !== 0) {
          stale = true;
          continue;
        }
        throw new ApiError("NOT_FOUND", 404, `Stage ${input.stageArn} is not part of this broadcast.`);
      }
      candidates = candidates.filter((s) => s.arn === input.stageArn);
    }
    const rate = config.scaling.admissionRate;
    for (let stage = chooseStage(candidates, rate); stage; stage = chooseStage(candidates, rate)) {
      const { shards } = stage;
      const wanted = chooseShard(stage) ?? 0;
      // A self-signed token's participant id is ours to draw: one that falls on the chosen shard.
      // IVS names an API token's participant: its shard is wherever that falls.
      const participantId =
        issuer.kind === "api" ? undefined : newParticipantIdWhere((id) => shardOf(id, shards) === wanted);
      const token = await mint(issuer, stage, config, input.userId, participantId);
      const shard = shardOf(token.participantId, shards);
      const admission = await env.STAGE_SHARD.getByName(shardName(stage.arn, shard)).admit({
        participantId: token.participantId,
        userId: input.userId,
        grant: await grantOf(token),
        moving: input.moving,
      });
      if (admission.admitted) {
        // One shard's count is the stage's only when it has one; otherwise one more than this copy knew.
        stage.viewers = shards === 1 ? admission.viewers : stage.viewers + 1;
        return { token, stageArn: stage.arn, viewers: stage.viewers };
      }
      // Full: that shard marked so in this isolate's copy (the stage too after a few); draining or
      // closed: the whole stage. Then another shard or stage.
      if (admission.reason === "full") shardRefused(stage, shard, input.stageArn ? shards : undefined);
      else stage.viewers = stage.capacity;
      if (stage.viewers >= stage.capacity) candidates = candidates.filter((c) => c !== stage);
      // A closed stage means this copy of the table is out of date (the stage is gone, or the broadcast ended).
      if (admission.reason === "closed" || admission.reason === "unknown") stale = true;
    }
    if (stale && maxAge !== 0) continue;
    stale = false;
    if (input.stageArn) {
      throw new ApiError("STAGE_FULL", 503, "That stage is full.", { retryAfter: RETRY_AFTER_SECONDS });
    }
    if (!table.canGrow && table.creating === 0) {
      throw new ApiError("STAGE_FULL", 503, "Every stage is full and no more can be added now.", {
        retryAfter: table.growBlockedForSeconds ?? RETRY_AFTER_SECONDS,
      });
    }
    const now = Date.now();
    // A stage on its way is the broadcast already at it: every isolate asking again would only queue behind it.
    if (
      table.creating === 0 &&
      now - started >= CAPACITY_ASK_AFTER_MS &&
      now - (capacityRequestedAt.get(input.broadcastId) ?? 0) >= CAPACITY_REQUEST_MS
    ) {
      capacityRequestedAt.set(input.broadcastId, now);
      // One isolate of the location asks; the others' joins wait for the same stage.
      if (await onceHere(`capacity/${input.broadcastId}`, CAPACITY_REQUEST_MS))
        waitUntil(env.BROADCAST.getByName(input.broadcastId).requestCapacity());
    }
    if (Date.now() >= deadline) {
      throw new ApiError("STAGE_FULL", 503, "Every stage is full; a new one is on its way.", {
        retryAfter: RETRY_AFTER_SECONDS,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, WAITING_POLL_MS));
  }
}

/**
 * A viewer's token is about to expire; the caller proves it is that viewer
 * with its current token (`proof`, the token's digest). With self-signed
 * tokens the viewer gets a token for the same participant and swaps it in
 * place (`exchangeToken`): no new admission, no interruption. With API tokens
 * IVS names a new participant, so this is a fresh join on the same stage and
 * the client rejoins; the proof is checked first, so no one burns the
 * account's CreateParticipantToken budget on a viewer they are not.
 */
export async function renewViewerToken(
  env: Env,
  config: Config,
  input: { broadcastId: string; stageArn: string } & AsParticipant,
  waitUntil: (promise: Promise<unknown>) => void,
): Promise<Joined> {
  const issuer = tokenIssuerFor(config, new IvsClient(config.ivs));
  const table = await cachedRoutingTable(env, input.broadcastId);
  const stage = table.stages.find((s) => s.arn === input.stageArn);
  if (!stage) throw new ApiError("NOT_FOUND", 404, `Stage ${input.stageArn} is not part of this broadcast.`);
  const shard = viewerShard(env, stage, input.participantId);
  const as = { participantId: input.participantId, userId: input.userId, proof: input.proof };
  if (issuer.kind === "api") {
    if (!(await shard.proves(as))) throw notThisParticipant();
    return joinAsViewer(env, config, input, waitUntil);
  }
  const token = await mint(issuer, stage, config, input.userId, input.participantId);
  const admission = await shard.renew({ ...as, grant: await grantOf(token) });
  if (!admission.admitted) {
    if (admission.reason === "unproven") throw notThisParticipant();
    throw new ApiError("NOT_FOUND", 404, "That stage no longer takes this viewer; ask for a new token.");
  }
  return { token, stageArn: stage.arn, viewers: admission.viewers };
}

/** A call as a participant whose token the caller does not hold. */
export const notThisParticipant = () =>
  new ApiError(
    "FORBIDDEN",
    403,
    "That token is not this participant's (or it has expired): ask for a new one with POST /api/token/viewer.",
  );

async function mint(
  issuer: ReturnType<typeof tokenIssuerFor>,
  stage: RoutingStage,
  config: Config,
  userId: string,
  participantId?: string,
): Promise<IssuedToken> {
  try {
    return await issueParticipantToken(issuer, {
      stage: { arn: stage.arn, endpoints: stage.endpoints },
      capabilities: ["SUBSCRIBE"],
      durationMinutes: config.tokenMinutes.viewer,
      userId,
      participantId,
    });
  } catch (error) {
    throw tokenError(error);
  }
}

/** IVS refusing a token answers as every IVS failure does (errors.ts); a token we could not sign ourselves is a 500. */
function tokenError(error: unknown): ApiError {
  const failure = failureOf(error, "issue a token");
  if (failure) return apiError(failure);
  return new ApiError("TOKEN_GENERATION_FAILED", 500, "The token could not be signed.", { cause: error });
}
