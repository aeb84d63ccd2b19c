import { isServing, type PublisherStats, type Stage, type Stats } from "../../protocol/api.ts";
import { stageIdOf } from "../../protocol/ids.ts";
import type { BroadcastContext } from "./context.ts";
import { notFound, type BroadcastStatus, type PublisherInfo, type RoutingTable } from "./contract.ts";
import { iso, isActive, isPlaceholder, type StageRow } from "./registry.ts";
import { RATE_FRESH_MS, relaysFor } from "./timing.ts";
import { usageView, warnings } from "./usage.ts";

/**
 * What the broadcast shows: the routing table for the join path, the stats
 * for the pages and the API, the stage views, history, snapshots and events.
 * Reads only.
 */
export class Views {
  readonly #c: BroadcastContext;

  constructor(context: BroadcastContext) {
    this.#c = context;
  }

  status(): BroadcastStatus {
    return this.#c.registry.state().status;
  }

  publisherLive(): boolean {
    return this.#c.registry.publisherLive();
  }

  totalViewers(): number {
    return this.#c.registry.stages().reduce((sum, s) => sum + (isActive(s) ? s.viewers : 0), 0);
  }

  routingTable(): RoutingTable {
    const { registry, config } = this.#c;
    const status = this.status();
    const active = registry.stages().filter(isActive);
    const now = Date.now();
    return {
      status,
      stages: active
        .filter((s) => !isPlaceholder(s))
        .map((s) => ({
          arn: s.arn,
          state: s.state,
          role: s.role,
          viewers: s.viewers,
          capacity: config.scaling.capacity,
          joinRate: now - s.load_reported_at <= RATE_FRESH_MS ? s.join_rate : 0,
          shards: s.shards,
          endpoints: { events: s.events_url, whip: s.whip_url },
        })),
      canGrow: status === "live" && active.length < config.scaling.maxStages,
      statsRelays: this.statsRelays(),
      fullRelays: registry
        .relays()
        .filter((r) => r.sockets >= config.limits.statsSocketsPerRelay)
        .map((r) => r.index),
      creating: active.filter((s) => s.state === "creating").length,
    };
  }

  /** How many relays new stats sockets spread over (relaysFor). */
  statsRelays(): number {
    const { registry, config } = this.#c;
    const { statsSocketsPerRelay, maxRelays } = config.limits;
    const now = Date.now();
    const { crowd_viewers, crowd_until } = registry.state();
    const fresh = registry.stages().filter((s) => isActive(s) && now - s.load_reported_at <= RATE_FRESH_MS);
    const load = {
      sockets: registry.relays().reduce((sum, r) => sum + r.sockets, 0),
      viewers: Math.max(this.totalViewers(), now < crowd_until ? crowd_viewers : 0),
      joinRate: fresh.reduce((sum, s) => sum + s.join_rate, 0),
      leadSeconds: config.scaling.leadSeconds,
    };
    return relaysFor(load, statsSocketsPerRelay, maxRelays);
  }

  stages(): Stage[] {
    return this.#c.registry.realStages().map((s) => this.#view(s));
  }

  stage(arn: string): Stage {
    const row = this.#c.registry.stage(arn);
    if (!row || isPlaceholder(row)) throw notFound(arn);
    return this.#view(row);
  }

  /** Accepts a full stage ARN or its id (the part after `stage/`). */
  resolveStage(arnOrId: string): string | undefined {
    return this.#c.registry.realStages().find((s) => s.arn === arnOrId || stageIdOf(s.arn) === arnOrId)?.arn;
  }

  stats(): Stats {
    const { registry } = this.#c;
    const stages = this.stages();
    const { started_at, ended_at } = registry.state();
    return {
      broadcastId: this.#c.id,
      status: this.status(),
      totalViewers: this.totalViewers(),
      activeStages: stages.filter(isServing).length,
      isPublisherLive: this.publisherLive(),
      publisher: this.publisher(),
      // The stats carry each stage without its endpoints and drain details (StatsSchema).
      stages: stages.map(({ replicationError: _e, endpoints: _p, drainingSince: _d, ...stage }) => stage),
      startedAt: started_at === null ? null : iso(started_at),
      endedAt: ended_at === null ? null : iso(ended_at),
      usage: usageView(this.#c, Date.now()),
      warnings: warnings(this.#c, Date.now()),
    };
  }

  publisher(): PublisherStats | null {
    const p = this.#c.registry.publisher();
    return p
      ? {
          participantId: p.participant_id,
          userId: p.user_id,
          stageArn: p.stage_arn,
          state: p.state,
          since: iso(p.since),
          expiresAt: iso(p.expires_at),
        }
      : null;
  }

  publisherInfo(): PublisherInfo {
    return {
      publisher: this.publisher(),
      originStageArn: this.#c.registry.origin()?.arn ?? null,
      isPublisherLive: this.publisherLive(),
    };
  }

  history(userId: string) {
    return this.#c.registry.sessionsOf(userId).map((s) => ({
      participantId: s.participant_id,
      stageArn: s.stage_arn,
      joinedAt: iso(s.joined_at),
      leftAt: iso(s.left_at),
      durationSeconds: Math.round((s.left_at - s.joined_at) / 1000),
      reason: s.reason,
    }));
  }

  stageStats(input: { stageArn: string; days: number }) {
    const since = Date.now() - input.days * 86_400_000;
    const sessions = this.#c.registry.stageSessionsSince(input.stageArn, since);
    const byDay = new Map<string, { sessions: number; users: Set<string>; seconds: number }>();
    for (const s of sessions) {
      const day = iso(s.left_at).slice(0, 10);
      const bucket = byDay.get(day) ?? { sessions: 0, users: new Set<string>(), seconds: 0 };
      bucket.sessions++;
      bucket.users.add(s.user_id);
      bucket.seconds += (s.left_at - s.joined_at) / 1000;
      byDay.set(day, bucket);
    }
    const totalSeconds = sessions.reduce((sum, s) => sum + (s.left_at - s.joined_at) / 1000, 0);
    return {
      stageArn: input.stageArn,
      days: input.days,
      currentViewers: this.#c.registry.stage(input.stageArn)?.viewers ?? 0,
      sessions: sessions.length,
      uniqueViewers: new Set(sessions.map((s) => s.user_id)).size,
      averageWatchSeconds: sessions.length ? Math.round(totalSeconds / sessions.length) : 0,
      daily: [...byDay].sort().map(([day, b]) => ({
        day,
        sessions: b.sessions,
        uniqueViewers: b.users.size,
        watchSeconds: Math.round(b.seconds),
      })),
    };
  }

  snapshots(input: { hours: number }) {
    return this.#c.registry.snapshots(Date.now() - input.hours * 3_600_000);
  }

  events(input: { limit: number }) {
    return this.#c.registry.events(input.limit);
  }

  #view(s: StageRow): Stage {
    return {
      stageArn: s.arn,
      stageId: stageIdOf(s.arn),
      role: s.role,
      state: s.state,
      feed: s.feed,
      viewers: s.viewers,
      capacity: this.#c.config.scaling.capacity,
      publishState: s.publish_state,
      replication: s.replication,
      replicationError: s.replication_error,
      endpoints: { events: s.events_url, whip: s.whip_url },
      createdAt: iso(s.created_at),
      drainingSince: s.draining_since ? iso(s.draining_since) : null,
    };
  }
}
