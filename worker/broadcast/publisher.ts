import type { PublishState } from "../../protocol/api.ts";
import type { IssuedToken } from "../tokens/participant-token.ts";
import type { BroadcastContext } from "./context.ts";
import { conflict, type PublisherGrant, type PublishToken } from "./contract.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { StagePool } from "./pool.ts";
import { iso, isPublishedDirectly } from "./registry.ts";
import type { Replication } from "./replication.ts";
import { issueFor } from "./stage-tokens.ts";

/**
 * The broadcaster: its token for the origin (which starts the broadcast), its
 * tokens for direct-fed stages, its publish state, and the idle end of a
 * broadcast whose publisher stopped and did not come back.
 */
export class PublisherSession {
  readonly #c: BroadcastContext;
  readonly #pool: StagePool;
  readonly #replication: Replication;
  readonly #lifecycle: Lifecycle;

  constructor(context: BroadcastContext, pool: StagePool, replication: Replication, lifecycle: Lifecycle) {
    this.#c = context;
    this.#pool = pool;
    this.#replication = replication;
    this.#lifecycle = lifecycle;
  }

  /**
   * The broadcaster's token for the origin. With `participantId` of the
   * current publisher this is a renewal: the same participant (self-signed
   * tokens), so the replicas keep following it.
   */
  async token(input: { userId: string; participantId?: string }): Promise<PublisherGrant> {
    const { registry } = this.#c;
    // A renewal keeps a session going; it never starts one. After the end only a new token (no participantId) does.
    if (input.participantId !== undefined && registry.state().status !== "live")
      throw conflict(
        "The broadcast is not live: a renewal does not start it again. Ask for a new publisher token (without participantId) to start a new session.",
      );
    await this.#lifecycle.begin(Date.now());
    const origin = await this.#pool.ensureOrigin();
    const previous = registry.publisher();
    const renewing =
      input.participantId !== undefined &&
      previous?.participant_id === input.participantId &&
      previous.stage_arn === origin.arn
        ? input.participantId
        : undefined;
    const issued = await issueFor(this.#c, origin, ["PUBLISH", "SUBSCRIBE"], {
      userId: input.userId,
      participantId: renewing,
    });
    const now = Date.now();
    registry.setPublisher({
      participant_id: issued.participantId,
      user_id: input.userId,
      stage_arn: origin.arn,
      state: "idle",
      since: now,
      expires_at: Date.parse(issued.expiresAt),
    });
    if (previous?.participant_id !== issued.participantId)
      this.#replication.followNewPublisher(now, previous?.state === "publishing");
    registry.event("publisher_token", { participantId: issued.participantId, userId: input.userId });
    await this.#c.arm(now);
    this.#c.channels.statsChanged();
    return { ...issued, whipEndpoint: origin.whip_url, userId: input.userId };
  }

  /** A publish token for one stage (the origin, or a direct-fed stage). */
  stageToken(input: { stageArn: string; userId?: string; participantId?: string }): Promise<IssuedToken> {
    const stage = this.#pool.require(input.stageArn);
    return issueFor(this.#c, stage, ["PUBLISH"], { userId: input.userId, participantId: input.participantId });
  }

  /** Publish tokens for every stage the studio must publish into itself: the origin and the direct-fed ones. */
  publishTokens(): Promise<PublishToken[]> {
    return Promise.all(
      this.#c.registry
        .stages()
        .filter(isPublishedDirectly)
        .map(async (s) => {
          const t = await issueFor(this.#c, s, ["PUBLISH"]);
          return {
            stageArn: s.arn,
            token: t.token,
            participantId: t.participantId,
            feed: s.role === "origin" ? ("replica" as const) : s.feed,
          };
        }),
    );
  }

  async setPublishState(input: { stageArn: string; state: PublishState }): Promise<void> {
    const { registry } = this.#c;
    const stage = this.#pool.require(input.stageArn, { deleting: true });
    registry.updateStage(stage.arn, { publish_state: input.state });
    const now = Date.now();
    const publisher = registry.publisher();
    if (stage.role === "origin" && publisher && publisher.state !== input.state) {
      registry.setPublisherState(input.state, now);
      registry.event("publish_state", { state: input.state });
      if (input.state === "publishing") {
        this.#replication.retryNow(now);
        await this.#c.arm(now);
      }
    }
    this.#c.channels.statsChanged();
  }

  /**
   * Whether a broadcast whose publisher stopped publishing long enough ago
   * should end (stages cost money). IVS has the last word first: an encoder
   * that never reports its state here (OBS over WHIP, an integrator's own
   * broadcaster) may be publishing all the same.
   */
  async idleTooLong(now: number): Promise<boolean> {
    const { registry } = this.#c;
    const publisher = registry.publisher();
    const started = registry.state().started_at ?? now;
    const idleSince = publisher ? (publisher.state === "publishing" ? now : publisher.since) : started;
    if (now - idleSince < this.#c.config.publisherIdleEndMs) return false;
    let publishing: boolean;
    try {
      publishing = await this.#publishingAtIvs();
    } catch (error) {
      // Never end a broadcast because IVS could not be asked; ask again at the next tick.
      console.error(`publisher check for ${this.#c.id} failed: ${(error as Error).message}`);
      return false;
    }
    if (publishing) {
      if (publisher) registry.setPublisherState("publishing", now);
      registry.event("publishing_seen_at_ivs", {});
      this.#c.channels.statsChanged();
      return false;
    }
    registry.event("idle_timeout", { idleSince: iso(idleSince) });
    return true;
  }

  /**
   * Whether a publisher participant publishes at IVS now. `published` (and `filterByPublished`)
   * means "published at some point in this session", so a studio that stays connected after it
   * stopped would count for ever: the participant's last publish event says whether it still does.
   */
  async #publishingAtIvs(): Promise<boolean> {
    const { registry, ivs } = this.#c;
    const origin = registry.origin();
    if (!origin) return false;
    const { stage } = await ivs.getStage(origin.arn);
    const sessionId = stage.activeSessionId;
    if (!sessionId) return false;
    const participants = await ivs.listAllParticipants({ stageArn: origin.arn, sessionId, filterByPublished: true });
    for (const p of participants) {
      if (p.state !== "CONNECTED" || p.replicationType === "REPLICA" || !p.participantId) continue;
      const events = await ivs.listAllParticipantEvents({
        stageArn: origin.arn,
        sessionId,
        participantId: p.participantId,
      });
      const last = events
        .filter((e) => e.name === "PUBLISH_STARTED" || e.name === "PUBLISH_STOPPED")
        .sort((a, b) => Date.parse(a.eventTime ?? "") - Date.parse(b.eventTime ?? ""))
        .at(-1);
      if (last?.name === "PUBLISH_STARTED") return true;
    }
    return false;
  }
}
