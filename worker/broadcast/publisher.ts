import type { PublishState } from "../../protocol/api.ts";
import { isIvsEndpoint } from "../../protocol/ids.ts";
import type { IssuedToken } from "../tokens/participant-token.ts";
import type { BroadcastContext } from "./context.ts";
import { conflict, type PublisherGrant, type PublishToken } from "./contract.ts";
import type { Lifecycle } from "./lifecycle.ts";
import type { StagePool } from "./pool.ts";
import { iso, isPublishedDirectly, type Encoder, type StageRow } from "./registry.ts";
import type { Replication } from "./replication.ts";
import { issueFor } from "./stage-tokens.ts";

/**
 * How often IVS is asked whether the publisher publishes: a broadcaster that never reports (OBS,
 * an integrator's own page) is seen within this. While EventBridge delivers IVS's events the
 * answer comes from them within a second or two, and the poll only backs them up (EventBridge is
 * best effort: an event may be late or lost).
 */
export const ENCODER_POLL_MS = 5_000;
export const ENCODER_POLL_WITH_EVENTS_MS = 60_000;
/** Events count as flowing while the last one is this recent. */
const EVENTS_FRESH_MS = 3_600_000;

/** One "IVS Stage Update" event from EventBridge, as the events route reads it. */
export interface IvsStageEvent {
  id: string;
  /** ms; EventBridge gives whole seconds. */
  at: number;
  stageArn: string;
  participantId: string;
  name: "Participant Published" | "Participant Unpublished" | "Participant Publish Error";
}

/** What became of an event: applied, or why not. */
export type IvsEventOutcome = "applied" | "duplicate" | "stale" | "ambiguous" | "not_the_publisher";

/**
 * Where OBS (or any WHIP encoder) publishes. On IVS that is AWS's global WHIP
 * endpoint, which redirects (307) to the stage's region, the client keeping
 * its bearer token (AWS, "IVS WHIP Publishing"); the emulator's own otherwise.
 */
export const IVS_WHIP_ENDPOINT = "https://global.whip.live-video.net";

export function whipEndpointFor(origin: Pick<StageRow, "whip_url">): string {
  return !origin.whip_url || isIvsEndpoint(origin.whip_url) ? IVS_WHIP_ENDPOINT : origin.whip_url;
}

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
  async token(input: { userId: string; participantId?: string; encoder?: Encoder }): Promise<PublisherGrant> {
    const encoder = input.encoder ?? "studio";
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
      previous.stage_arn === origin.arn &&
      previous.encoder === encoder
        ? input.participantId
        : undefined;
    // OBS gets a participant of its own (never the page's: the last connection with a token wins),
    // publish-only, lasting the broadcast: it cannot renew by itself.
    const issued = await issueFor(this.#c, origin, encoder === "obs" ? ["PUBLISH"] : ["PUBLISH", "SUBSCRIBE"], {
      userId: input.userId,
      participantId: renewing,
      durationMinutes: encoder === "obs" ? this.#c.config.tokenMinutes.obs : undefined,
    });
    // IVS's events name the stage, not the broadcast: the directory says whose origin it is.
    await this.#c.env.DIRECTORY.getByName("directory").setOrigin({ stageArn: origin.arn, broadcastId: this.#c.id });
    const now = Date.now();
    const kept = renewing !== undefined && previous ? previous : undefined;
    registry.setPublisher({
      participant_id: issued.participantId,
      user_id: input.userId,
      stage_arn: origin.arn,
      state: kept?.state ?? "idle",
      since: kept?.since ?? now,
      expires_at: Date.parse(issued.expiresAt),
      encoder,
      checked_at: 0,
      event_at: kept?.event_at ?? 0,
    });
    if (previous?.participant_id !== issued.participantId)
      this.#replication.followNewPublisher(now, previous?.state === "publishing");
    registry.event("publisher_token", { participantId: issued.participantId, userId: input.userId, encoder });
    await this.#c.arm(now);
    this.#c.channels.statsChanged();
    return { ...issued, whipEndpoint: whipEndpointFor(origin), userId: input.userId };
  }

  /**
   * The publisher publishes or not as IVS sees it — whatever the encoder, since a broadcaster
   * that never reports (OBS over WHIP, a seed integrator's page) is as live as the studio: its
   * participant's last publish event in the origin's session, asked at most every
   * ENCODER_POLL_MS (every ENCODER_POLL_WITH_EVENTS_MS while EventBridge delivers events), paced
   * with the account's other calls. Only publishing ↔ not: a studio's finer report
   * (connecting, failed) stands, and a report fresher than one poll interval is not overruled
   * by an answer that may predate it.
   */
  async followEncoder(now: number): Promise<void> {
    const { registry } = this.#c;
    const publisher = registry.publisher();
    const origin = registry.origin();
    if (!publisher || !origin || origin.arn !== publisher.stage_arn) return;
    const eventsFlowing = publisher.event_at > 0 && now - publisher.event_at < EVENTS_FRESH_MS;
    const interval = eventsFlowing ? ENCODER_POLL_WITH_EVENTS_MS : ENCODER_POLL_MS;
    if (now - publisher.checked_at < interval) return;
    registry.setPublisherChecked(now);
    const publishing = await this.#participantPublishing(origin.arn, publisher.participant_id);
    const current = registry.publisher();
    if (!current || current.participant_id !== publisher.participant_id) return;
    if (now - current.since < ENCODER_POLL_MS && current.since > publisher.checked_at) return;
    if (publishing && current.state !== "publishing")
      await this.setPublishState({ stageArn: origin.arn, state: "publishing" });
    else if (!publishing && current.state === "publishing")
      await this.setPublishState({ stageArn: origin.arn, state: "stopped" });
  }

  /**
   * An IVS event about a participant of the origin (EventBridge, via POST /api/ivs/events).
   * EventBridge delivers at least once, late and out of order, with times in whole seconds:
   * an event already applied is ignored, so is one older than the last applied; two of the same
   * second that disagree cannot be ordered, so IVS is asked at the next tick.
   */
  async ivsEvent(event: IvsStageEvent): Promise<IvsEventOutcome> {
    const { registry } = this.#c;
    const now = Date.now();
    if (!registry.rememberEvent(event.id, now)) return "duplicate";
    const publisher = registry.publisher();
    if (!publisher || publisher.participant_id !== event.participantId || publisher.stage_arn !== event.stageArn)
      return "not_the_publisher";
    const state: PublishState =
      event.name === "Participant Published"
        ? "publishing"
        : event.name === "Participant Publish Error"
          ? "failed"
          : "stopped";
    if (event.at < publisher.event_at) return "stale";
    if (event.at === publisher.event_at) {
      if (state === publisher.state) return "applied";
      registry.setPublisherChecked(0);
      await this.#c.arm(now);
      return "ambiguous";
    }
    registry.setPublisherEventAt(event.at);
    if (state !== publisher.state) await this.setPublishState({ stageArn: event.stageArn, state });
    return "applied";
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
      if (await this.#publishesNow(origin.arn, sessionId, p.participantId)) return true;
    }
    return false;
  }

  /** Whether one participant publishes on a stage now, at IVS. */
  async #participantPublishing(stageArn: string, participantId: string): Promise<boolean> {
    const { stage } = await this.#c.ivs.getStage(stageArn);
    if (!stage.activeSessionId) return false;
    return this.#publishesNow(stageArn, stage.activeSessionId, participantId);
  }

  /** A participant's last publish event in a session: PUBLISH_STARTED means it publishes (and is connected). */
  async #publishesNow(stageArn: string, sessionId: string, participantId: string): Promise<boolean> {
    const events = await this.#c.ivs.listAllParticipantEvents({ stageArn, sessionId, participantId });
    const last = events
      .filter((e) => ["PUBLISH_STARTED", "PUBLISH_STOPPED", "LEFT"].includes(e.name ?? ""))
      .sort((a, b) => Date.parse(a.eventTime ?? "") - Date.parse(b.eventTime ?? ""))
      .at(-1);
    return last?.name === "PUBLISH_STARTED";
  }
}
