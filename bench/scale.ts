import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import type { RoutingTable } from "../worker/broadcast/contract.ts";
import {
  MAX_PUSHES_PER_SECOND,
  RATE_FRESH_MS,
  RELAY_FIRST_REPORT_WITHIN_MS,
  RELAY_REPORT_MS,
  relaysFor,
  relaysToTry,
  STATS_PUSH_MS,
  TICK_MS,
} from "../worker/broadcast/timing.ts";
import { loadConfig } from "../worker/config.ts";
import { chooseShard, chooseStage, shardRefused } from "../worker/join/choose-stage.ts";
import {
  CAPACITY_ASK_AFTER_MS,
  CAPACITY_REQUEST_MS,
  WAIT_FOR_CAPACITY_MS,
  WAITING_POLL_MS,
} from "../worker/join/waiting.ts";
import { COMING_RETRY_MS, COMING_TRIES, RoutingCache, type SharedTables } from "../worker/join/routing-cache.ts";
import { decideScaling, type ScalingSettings, type StageLoad } from "../worker/scaling/policy.ts";
import {
  reportAt,
  reportIsUrgent,
  seatFor,
  shardCapacity,
  shardName,
  shardsPerStage,
} from "../worker/shard/admission.ts";
import type { ShardState } from "../worker/shard/schema.ts";

/**
 * `npm run bench -- --scale`: crowds of 10,000 to 1,000,000 viewers replayed, in simulated time,
 * through Fanout's own code: the scaling policy (decideScaling), the stage choice (chooseStage),
 * the routing-table cache (RoutingCache, one per isolate, over a shared store per location), the
 * shard's seat and report rules (admission.ts) and the join loop's timings (join.ts), the push
 * budget and the relay spread (channels.ts). What it simulates around them is the deployment:
 * locations and their isolates, the latency of a read from the Broadcast object, IVS's
 * CreateStage latency and account rate, viewers and their stats sockets. It counts every request
 * each object receives and every message it sends, per second.
 *
 * Each scenario runs with every design change of issue 13 ("after") and without any ("before");
 * the million runs once more without each change in turn, to show what each one fixes.
 */

// ── what is assumed about the world (BENCHMARKS.md lists these) ──────────────

export const WORLD = {
  /** Cloudflare locations the audience comes through, weighted by a Zipf law (a few big cities, a long tail). */
  locations: 200,
  /** Joins a second one isolate serves before Cloudflare starts another in that location. */
  joinsPerIsolate: 20,
  /** From an isolate asking the Broadcast object for its table to the table being in the location's cache (a round trip to where the object lives). */
  readLatencyMs: 50,
  /** A write to the location's own cache, until the other isolates there see it. */
  cacheWriteMs: 2,
  /** IVS CreateStage, from request to answer. */
  createStageMs: 500,
  /** The share of viewers whose page opens a stats socket (`/ws`), a second after joining. */
  statsShare: 0.5,
  /** A drained stage's viewers move within this long (their socket says `migrate`). */
  migrateWithinMs: 5_000,
  /** Stages the account may have (IVS's default quota is 100 a region; a million viewers need it raised). */
  maxStages: 200,
  /** Simulation step. */
  stepMs: 10,
};

export interface Design {
  /** Routing tables shared per location (Cache API); otherwise per isolate. */
  locationCache: boolean;
  /** Stats sockets on relays; otherwise on the Broadcast object. */
  relays: boolean;
  /** A stage's seats over shards of SEATS_PER_SHARD; otherwise one shard a stage. */
  shards: boolean;
  /** The pool sized by arrivals (ADMISSIONS_PER_SHARD_PER_SECOND, SCALE_ARRIVAL_SECONDS) and the crowd-time stage choice. */
  arrivals: boolean;
  /** The Broadcast object's pushes within MAX_PUSHES_PER_SECOND; otherwise to every target every 250 ms. */
  batched: boolean;
}

export const AFTER: Design = { locationCache: true, relays: true, shards: true, arrivals: true, batched: true };
export const BEFORE: Design = { locationCache: false, relays: false, shards: false, arrivals: false, batched: false };

export interface Scenario {
  name: string;
  viewers: number;
  seconds: number;
  /** The operator announced the crowd (POST /crowd) this long before it starts; without it the pool learns of it from the shards. */
  announcedSeconds?: number;
}

export const SCENARIOS: Scenario[] = [
  { name: "10,000 in 60 s", viewers: 10_000, seconds: 60 },
  { name: "100,000 in 60 s", viewers: 100_000, seconds: 60 },
  { name: "1,000,000 in 60 s", viewers: 1_000_000, seconds: 60 },
  { name: "1,000,000 in 60 s, announced 2 min ahead", viewers: 1_000_000, seconds: 60, announcedSeconds: 120 },
  { name: "100,000 in 10 s", viewers: 100_000, seconds: 10 },
];

export interface Outcome {
  scenario: string;
  design: string;
  peak: { broadcast: number; shard: number; relay: number; broadcastSends: number; relaySends: number };
  /** The Broadcast object's busiest second for each kind of request it receives. */
  broadcastBySource: Record<string, number>;
  mostSocketsOnOneObject: number;
  /** Stats sockets refused because every relay tried was full (429). */
  socketsRefused: number;
  /** Seconds in which some shard took more requests than ADMISSIONS_PER_SHARD_PER_SECOND. */
  secondsAnyShardOver: number;
  refused: Record<string, number>;
  /** The longest a join waited for its seat, in seconds. */
  longestWaitSeconds: number;
  stagesAtPeak: number;
  /** Serving (ready or being created) and draining, five minutes after the last arrival. */
  stagesAfter: { serving: number; draining: number };
  /** What the final audience needs (at SCALE_UP_AT) plus one spare. */
  neededPlusOne: number;
}

/** Requests (or messages) per object per simulated second. */
class Meter {
  readonly #counts = new Map<string, Map<number, number>>();
  add(object: string, at: number, n = 1): void {
    const second = Math.floor(at / 1000);
    let perSecond = this.#counts.get(object);
    if (!perSecond) this.#counts.set(object, (perSecond = new Map()));
    perSecond.set(second, (perSecond.get(second) ?? 0) + n);
  }
  /** In how many seconds some object of a kind took more than `limit`. */
  secondsOver(kind: string, limit: number): number {
    const seconds = new Set<number>();
    for (const [object, perSecond] of this.#counts)
      if (object.startsWith(kind)) for (const [second, n] of perSecond) if (n > limit) seconds.add(second);
    return seconds.size;
  }
  /** The busiest second of the busiest object whose name starts with `kind`. */
  peak(kind: string): number {
    let most = 0;
    for (const [object, perSecond] of this.#counts)
      if (object.startsWith(kind)) for (const n of perSecond.values()) most = Math.max(most, n);
    return most;
  }
}

interface SimStage {
  arn: string;
  role: "origin" | "edge";
  state: "creating" | "ready" | "draining" | "deleting";
  viewers: number;
  joinRate: number;
  loadReportedAt: number;
  createdAt: number;
  drainingSince?: number;
}

interface Shard {
  /** Its object's name; `arn` is its stage's. */
  name: string;
  arn: string;
  index: number;
  capacity: number;
  state: ShardState;
  viewers: number;
  admitted: number;
  reportedAt: number;
  reportDue?: number;
  /** The head's: the other shards' last reports, and the stage's own report to the broadcast. */
  parts?: Map<number, { viewers: number; joinRate: number; at: number }>;
  stageReportDue?: number;
  stageReportedAt?: number;
}

interface Relay {
  name: string;
  sockets: number;
  /** The count the broadcast last heard. */
  reported: number;
  reportDue?: number;
  sentAt: number;
  pending: boolean;
}

interface Isolate {
  cache: RoutingCache;
  capacityAskedAt: number;
}

interface Join {
  isolate: Isolate;
  /** Times it found the table on its way from another isolate's read. */
  coming: number;
  arrivedAt: number;
  stale: boolean;
  from?: string;
}

/** The isolates of one location share this, as they share the Cache API there. */
class LocationTables implements SharedTables {
  /** Per broadcast, the table the location sees, and the one on its way (visible once its read is back). */
  readonly #entries = new Map<string, { seen?: Stored; coming?: Stored }>();
  readonly #claims = new Map<string, { at: number; visibleAt: number }>();
  readonly #clock: { now: number };
  constructor(clock: { now: number }) {
    this.#clock = clock;
  }
  async get(id: string) {
    const entry = this.#entries.get(id);
    if (entry?.coming && entry.coming.visibleAt <= this.#clock.now)
      [entry.seen, entry.coming] = [entry.coming, undefined];
    if (!entry?.seen) return undefined;
    return { at: entry.seen.at, table: JSON.parse(entry.seen.json) as RoutingTable };
  }
  async put(id: string, at: number, table: RoutingTable) {
    const entry = this.#entries.get(id) ?? {};
    entry.coming = { at, visibleAt: this.#clock.now + WORLD.readLatencyMs, json: JSON.stringify(table) };
    this.#entries.set(id, entry);
  }
  async claim(id: string, now: number, forMs: number) {
    const held = this.#claims.get(id);
    if (held && held.visibleAt <= this.#clock.now && now - held.at < forMs) return false;
    // A claim is a write to the location's own cache: visible to the others almost at once.
    this.#claims.set(id, { at: now, visibleAt: this.#clock.now + WORLD.cacheWriteMs });
    return true;
  }
}

interface Stored {
  at: number;
  visibleAt: number;
  json: string;
}

const BROADCAST = "broadcast";

/** The `[vars]` of wrangler.toml: the settings a deployment runs with (plain `NAME = "value"` lines). */
function deployedVars(): Record<string, string> {
  const toml = readFileSync(fileURLToPath(new URL("../wrangler.toml", import.meta.url)), "utf8");
  const section = toml.slice(toml.indexOf("[vars]"), toml.indexOf("\n[", toml.indexOf("[vars]") + 1));
  return Object.fromEntries([...section.matchAll(/^([A-Z_]+) = "(.*)"$/gm)].map((m) => [m[1]!, m[2]!]));
}

export async function simulate(scenario: Scenario, design: Design, designName: string): Promise<Outcome> {
  const config = loadConfig({
    ...deployedVars(),
    ADMIN_KEY: "simulation-admin-key",
    AWS_ACCESS_KEY_ID: "simulation",
    AWS_SECRET_ACCESS_KEY: "simulation",
    MAX_STAGES: String(WORLD.maxStages),
  });
  // A stage's shards, and what it admits a second (each of its shards at ADMISSIONS_PER_SHARD_PER_SECOND).
  const perStage = design.shards ? config.scaling.shardsPerStage : 1;
  const settings: ScalingSettings = {
    ...config.scaling,
    admissionRate: design.arrivals ? config.scaling.admissionsPerShard * perStage : Infinity,
    arrivalSeconds: design.arrivals ? config.scaling.arrivalSeconds : 0,
  };
  const { capacity, scaleUpAt } = settings;
  const { statsSocketsPerRelay, statsMessagesPerSecond, maxRelays } = config.limits;
  const clock = { now: 0 };
  const meter = new Meter();
  const sends = new Meter();
  /** The Broadcast object's requests by what sent them. */
  const sources = new Meter();
  let random = 20261122;
  const rand = () => (random = (random * 48_271) % 2_147_483_647) / 2_147_483_647;

  // ── the deployment: locations, isolates ─────────────────────────────────
  const weights = Array.from({ length: WORLD.locations }, (_, i) => 1 / (i + 1));
  const total = weights.reduce((a, b) => a + b);
  const shares = weights.map((w) => w / total);
  const cumulative = shares.map((_, i) => shares.slice(0, i + 1).reduce((a, b) => a + b));
  const rate = scenario.viewers / scenario.seconds;
  const locations = shares.map((share) => {
    const tables = design.locationCache ? new LocationTables(clock) : undefined;
    const count = Math.max(1, Math.ceil((rate * share) / WORLD.joinsPerIsolate));
    return Array.from({ length: count }, (): Isolate => ({ cache: new RoutingCache(tables), capacityAskedAt: -1e9 }));
  });
  const pickLocation = () => {
    const r = rand();
    const i = cumulative.findIndex((c) => c >= r);
    return i < 0 ? WORLD.locations - 1 : i;
  };

  // ── the broadcast, its stages and shards ────────────────────────────────
  const stages = new Map<string, SimStage>();
  const shards = new Map<string, Shard>();
  const stageShards = new Map<string, Shard[]>();
  const relays = new Map<string, Relay>();
  let made = 0;
  const addStage = (role: "origin" | "edge", state: SimStage["state"]) => {
    const arn = `stage-${made++}`;
    stages.set(arn, { arn, role, state, viewers: 0, joinRate: 0, loadReportedAt: 0, createdAt: clock.now });
    return arn;
  };
  const ready = (arn: string) => {
    stages.get(arn)!.state = "ready";
    const list = Array.from({ length: perStage }, (_, index): Shard => ({
      name: shardName(arn, index),
      arn,
      index,
      capacity: shardCapacity(capacity, perStage, index),
      state: "ready",
      viewers: 0,
      admitted: 0,
      reportedAt: clock.now,
      ...(index === 0 && { parts: new Map(), stageReportedAt: clock.now }),
    }));
    for (const shard of list) shards.set(shard.name, shard);
    stageShards.set(arn, list);
    statsChanged();
  };
  const active = () => [...stages.values()].filter((s) => s.state !== "deleting");
  const routingTable = (): RoutingTable => {
    const list = active();
    const socketsOnRelays = [...relays.values()].reduce((n, r) => n + r.sockets, 0);
    return {
      status: "live",
      stages: list
        .filter((s) => s.state !== "creating")
        .map((s) => ({
          arn: s.arn,
          state: s.state as "ready" | "draining",
          role: s.role,
          viewers: s.viewers,
          capacity,
          joinRate: clock.now - s.loadReportedAt <= RATE_FRESH_MS ? s.joinRate : 0,
          shards: perStage,
          endpoints: { events: "", whip: "" },
        })),
      canGrow: list.length < settings.maxStages,
      creating: list.filter((s) => s.state === "creating").length,
      fullRelays: [...relays.values()].filter((r) => r.reported >= statsSocketsPerRelay).map((r) => Number(r.name)),
      statsRelays: relaysFor(
        {
          sockets: socketsOnRelays,
          viewers: Math.max(
            list.reduce((n, s) => n + s.viewers, 0),
            clock.now < announcedUntil ? scenario.viewers : 0,
          ),
          joinRate: list.reduce((n, s) => n + (clock.now - s.loadReportedAt <= RATE_FRESH_MS ? s.joinRate : 0), 0),
          leadSeconds: settings.leadSeconds,
        },
        statsSocketsPerRelay,
        maxRelays,
      ),
    };
  };
  // The announcement (after only: it is one of the changes): counted from the start until the crowd is due to be in.
  const crowdStart = (design.arrivals ? (scenario.announcedSeconds ?? 0) : 0) * 1000;
  const announcedUntil = design.arrivals && scenario.announcedSeconds ? crowdStart + scenario.seconds * 1000 : 0;
  const announced = () =>
    clock.now < announcedUntil
      ? { joinRate: scenario.viewers / scenario.seconds, viewers: scenario.viewers }
      : undefined;
  const scaling = () => ({ now: clock.now, live: true, stages: loads(), announced: announced() });
  const loads = (): StageLoad[] =>
    [...stages.values()].map((s) => ({
      arn: s.arn,
      role: s.role,
      state: s.state,
      viewers: s.viewers,
      createdAt: s.createdAt,
      drainingSince: s.drainingSince,
      joinRate: clock.now - s.loadReportedAt <= RATE_FRESH_MS ? s.joinRate : 0,
    }));

  // The object's serial queue: one evaluation at a time; CreateStage one after another, each on a paced turn.
  let busyUntil = 0;
  let evaluationQueued = false;
  let lastTurn = -1e9;
  const turnMs = 1000 / config.ivs.controlTps;
  const completions: { at: number; arn: string }[] = [];
  const evaluate = () => {
    if (clock.now < busyUntil) {
      evaluationQueued = true;
      return;
    }
    const decision = decideScaling(scaling(), settings);
    for (const arn of decision.revive) {
      stages.get(arn)!.state = "ready";
      toldStage(arn, "ready");
    }
    for (const arn of decision.drain) drain(arn);
    // As pool.ts's #createEdges: IVS_CONTROL_TPS requests in flight at most, each on its paced turn.
    const lanes = Array.from({ length: Math.max(1, Math.floor(config.ivs.controlTps)) }, () => clock.now);
    for (let i = 0; i < decision.create; i++) {
      const arn = addStage("edge", "creating");
      const lane = lanes.indexOf(Math.min(...lanes));
      const start = Math.max(lanes[lane]!, lastTurn + turnMs);
      lastTurn = start;
      lanes[lane] = start + WORLD.createStageMs;
      completions.push({ at: lanes[lane]!, arn });
    }
    busyUntil = Math.max(clock.now, ...(decision.create ? lanes : []));
    for (const arn of decision.delete) {
      stages.get(arn)!.state = "deleting";
      toldStage(arn, "closed");
    }
    if (decision.create || decision.drain.length || decision.delete.length) statsChanged();
  };
  const drain = (arn: string) => {
    const stage = stages.get(arn)!;
    stage.state = "draining";
    stage.drainingSince = clock.now;
    toldStage(arn, "draining");
    // Its viewers are told to move: each rejoins elsewhere within a few seconds, leaving this stage as it does.
    const seated = stageShards.get(arn)!.reduce((n, shard) => n + shard.viewers, 0);
    for (let i = 0; i < seated; i++) {
      const location = pickLocation();
      schedule(clock.now + rand() * WORLD.migrateWithinMs, {
        isolate: isolateIn(location),
        coming: 0,
        arrivedAt: -1,
        stale: false,
        from: arn,
      });
    }
  };
  /** The broadcast tells a stage's head, which tells the stage's other shards (one request each). */
  const toldStage = (arn: string, state: ShardState) => {
    for (const shard of stageShards.get(arn)!) {
      meter.add(`shard:${shard.name}`, clock.now);
      shard.state = state;
    }
  };
  const stageViewers = (head: Shard) => head.viewers + [...head.parts!.values()].reduce((n, p) => n + p.viewers, 0);
  /** The stage's count changed at its head: reported to the broadcast at once across a threshold, else within a second. */
  const stageChanged = (head: Shard, before: number, after: number) => {
    const due = reportAt(reportIsUrgent(before, after, capacity, scaleUpAt), clock.now, head.stageReportedAt!);
    head.stageReportDue = Math.min(head.stageReportDue ?? Infinity, due);
  };
  const reportLoad = (arn: string, viewers: number, joinRate: number) => {
    meter.add(BROADCAST, clock.now);
    sources.add("shard load reports", clock.now);
    const stage = stages.get(arn);
    if (stage) Object.assign(stage, { viewers, joinRate, loadReportedAt: clock.now });
    statsChanged();
    const d = decideScaling(scaling(), settings);
    if (d.create || d.revive.length || d.drain.length || d.delete.length) evaluate();
  };

  // ── pushes: the stats to the relays (or sockets), the audience to the shards ──
  let pushAt: number | undefined;
  let pushedAt = -1e9;
  let lastAudience = -1;
  const queue = new Map<string, () => void>();
  let sentSecond = -1;
  let sentThisSecond = 0;
  let socketsOnBroadcast = 0;
  let mostSockets = 0;
  /** As the Broadcast object does: the relays that reported sockets. */
  const relaysToPush = () => [...relays.values()].filter((r) => r.reported > 0);
  const targetsNow = () =>
    (design.relays ? relaysToPush().length : 0) +
    active().filter((s) => s.state === "ready" || s.state === "draining").length;
  function statsChanged() {
    if (pushAt !== undefined) return;
    const interval = design.batched
      ? Math.max(STATS_PUSH_MS, 1000 * Math.ceil(targetsNow() / MAX_PUSHES_PER_SECOND))
      : STATS_PUSH_MS;
    pushAt = clock.now + Math.max(STATS_PUSH_MS, pushedAt + interval - clock.now);
  }
  const push = () => {
    pushAt = undefined;
    pushedAt = clock.now;
    if (design.relays) {
      for (const relay of relaysToPush()) queue.set(relay.name, () => relayPush(relay));
    } else {
      // Every socket on the object gets the update from it.
      sends.add(BROADCAST, clock.now, socketsOnBroadcast);
    }
    const audience = [...stages.values()].reduce((n, s) => n + (s.state === "deleting" ? 0 : s.viewers), 0);
    if (audience !== lastAudience) {
      lastAudience = audience;
      for (const s of stages.values())
        if (s.state === "ready" || s.state === "draining")
          // To the head, which passes it on to the stage's other shards.
          queue.set(s.arn, () => {
            for (const shard of stageShards.get(s.arn)!) meter.add(`shard:${shard.name}`, clock.now);
          });
    }
    dispatch();
  };
  const dispatch = () => {
    const second = Math.floor(clock.now / 1000);
    if (second !== sentSecond) [sentSecond, sentThisSecond] = [second, 0];
    for (const [target, send] of queue) {
      if (design.batched && sentThisSecond >= MAX_PUSHES_PER_SECOND) break;
      queue.delete(target);
      sentThisSecond++;
      sends.add(BROADCAST, clock.now);
      send();
    }
  };
  const relayPush = (relay: Relay) => {
    meter.add(`relay:${relay.name}`, clock.now);
    relay.pending = true;
  };
  const relayFanOut = (relay: Relay) => {
    if (!relay.pending) return;
    const interval = Math.max(STATS_PUSH_MS, (1000 * relay.sockets) / statsMessagesPerSecond);
    if (clock.now < relay.sentAt + interval) return;
    relay.pending = false;
    relay.sentAt = clock.now;
    sends.add(`relay:${relay.name}`, clock.now, relay.sockets);
  };

  // ── stats sockets ───────────────────────────────────────────────────────
  const openStatsSocket = async (join: Join) => {
    if (!design.relays) {
      meter.add(BROADCAST, clock.now);
      socketsOnBroadcast++;
      mostSockets = Math.max(mostSockets, socketsOnBroadcast);
      return;
    }
    const table = (await join.isolate.cache.get(BROADCAST, read, undefined, clock.now)) ?? routingTable();
    const spread = Math.min(maxRelays, Math.max(1, table.statsRelays));
    for (const index of relaysToTry(spread, table.fullRelays ?? [], 3, rand)) {
      const name = String(index);
      let relay = relays.get(name);
      if (!relay) relays.set(name, (relay = { name, sockets: 0, reported: 0, sentAt: -1e9, pending: false }));
      meter.add(`relay:${name}`, clock.now);
      if (relay.sockets >= statsSocketsPerRelay) continue;
      relay.sockets++;
      mostSockets = Math.max(mostSockets, relay.sockets);
      // The first socket soon (the broadcast pushes to the relays that reported), the others at most once an interval.
      const wait = relay.sockets === 1 ? rand() * RELAY_FIRST_REPORT_WITHIN_MS : RELAY_REPORT_MS;
      relay.reportDue = Math.min(relay.reportDue ?? Infinity, clock.now + wait);
      return;
    }
    socketsRefused++;
  };

  // ── the join path (join.ts's loop) ──────────────────────────────────────
  const read = async () => {
    meter.add(BROADCAST, clock.now);
    sources.add("routing table reads", clock.now);
    return routingTable();
  };
  const refused: Record<string, number> = {};
  let socketsRefused = 0;
  let longestWait = 0;
  const buckets = new Map<number, Join[]>();
  const schedule = (at: number, join: Join) => {
    const step = Math.ceil(at / WORLD.stepMs);
    let list = buckets.get(step);
    if (!list) buckets.set(step, (list = []));
    list.push(join);
  };
  const isolateIn = (location: number) => {
    const isolates = locations[location]!;
    return isolates[Math.floor(rand() * isolates.length)]!;
  };
  /** A seat on the shard; a viewer moving off a drained stage is not an arrival (stage-shard.ts). */
  const admit = (shard: Shard, moving: boolean) => {
    meter.add(`shard:${shard.name}`, clock.now);
    const refusal = seatFor(shard.state, shard.viewers, shard.capacity);
    if (refusal) return refusal;
    changeViewers(shard, +1);
    if (!moving) shard.admitted++;
    return undefined;
  };
  /** As stage-shard.ts: the head's own change is the stage's; another shard reports to the head. */
  const changeViewers = (shard: Shard, delta: number) => {
    if (shard.index === 0) {
      const total = stageViewers(shard);
      shard.viewers += delta;
      stageChanged(shard, total, total + delta);
      return;
    }
    shard.viewers += delta;
    // Within a second, urgent or not: the head tells what is urgent for the stage.
    shard.reportDue = Math.min(shard.reportDue ?? Infinity, reportAt(false, clock.now, shard.reportedAt));
  };

  const attempt = async (join: Join): Promise<void> => {
    if (join.arrivedAt < 0) {
      // A viewer moving off a drained stage: it leaves there as it joins here.
      join.arrivedAt = clock.now;
      const old = stageShards.get(join.from!)?.find((shard) => shard.viewers > 0);
      if (old) changeViewers(old, -1);
    }
    const maxAge = join.stale ? 0 : undefined;
    const table = await join.isolate.cache.get(BROADCAST, read, join.coming >= COMING_TRIES ? 0 : maxAge, clock.now);
    if (!table) {
      // Another isolate of the location is reading it (cached-table.ts): look again shortly.
      schedule(clock.now + COMING_RETRY_MS, { ...join, coming: join.coming + 1 });
      return;
    }
    let candidates = table.stages.filter((s) => s.state === "ready");
    let stale = false;
    const rateLimit = settings.admissionRate;
    for (
      let stage = chooseStage(candidates, rateLimit, rand);
      stage;
      stage = chooseStage(candidates, rateLimit, rand)
    ) {
      const index = chooseShard(stage, rand)!;
      const refusal = admit(shards.get(shardName(stage.arn, index))!, join.from !== undefined);
      if (!refusal) {
        stage.viewers++;
        longestWait = Math.max(longestWait, clock.now - join.arrivedAt);
        if (join.from === undefined && rand() < WORLD.statsShare)
          schedule(clock.now + 1000, { ...join, from: "socket" });
        return;
      }
      if (refusal === "full") shardRefused(stage, index);
      else stage.viewers = stage.capacity;
      if (stage.viewers >= stage.capacity) candidates = candidates.filter((c) => c !== stage);
      if (refusal === "closed") stale = true;
    }
    if (stale && maxAge !== 0) return attempt({ ...join, stale: true });
    if (!table.canGrow && table.creating === 0) {
      refused["503 STAGE_FULL: no more stages"] = (refused["503 STAGE_FULL: no more stages"] ?? 0) + 1;
      return;
    }
    if (
      table.creating === 0 &&
      clock.now - join.arrivedAt >= CAPACITY_ASK_AFTER_MS &&
      clock.now - join.isolate.capacityAskedAt >= CAPACITY_REQUEST_MS
    ) {
      join.isolate.capacityAskedAt = clock.now;
      if (await join.isolate.cache.claim(`capacity/${BROADCAST}`, clock.now, CAPACITY_REQUEST_MS)) {
        meter.add(BROADCAST, clock.now);
        sources.add("capacity requests", clock.now);
        evaluate();
      }
    }
    if (clock.now - join.arrivedAt >= WAIT_FOR_CAPACITY_MS) {
      refused["503 STAGE_FULL after waiting"] = (refused["503 STAGE_FULL after waiting"] ?? 0) + 1;
      return;
    }
    schedule(clock.now + WAITING_POLL_MS, { ...join, stale: false });
  };

  // ── the clock ───────────────────────────────────────────────────────────
  // The broadcast is live on its origin when the crowd starts.
  ready(addStage("origin", "ready"));
  const end = crowdStart + (scenario.seconds + 300) * 1000;
  let arrived = 0;
  let stagesAtPeak = 0;
  let nextTick = TICK_MS;
  for (let step = 0; step * WORLD.stepMs <= end; step++) {
    clock.now = step * WORLD.stepMs;
    // Arrivals, evenly over the crowd's seconds.
    const since = Math.max(0, clock.now - crowdStart);
    const due = Math.min(scenario.viewers, Math.round((since / 1000 / scenario.seconds) * scenario.viewers));
    for (; arrived < due; arrived++) {
      const location = pickLocation();
      schedule(clock.now, {
        isolate: isolateIn(location),
        coming: 0,
        arrivedAt: clock.now,
        stale: false,
      });
    }
    for (const join of buckets.get(step) ?? []) {
      if (join.from === "socket") await openStatsSocket(join);
      else await attempt(join);
    }
    buckets.delete(step);
    // CreateStage answers: the stage is ready (its shard set up) and the object free for the next evaluation.
    for (let i = completions.length - 1; i >= 0; i--)
      if (completions[i]!.at <= clock.now) {
        ready(completions[i]!.arn);
        completions.splice(i, 1);
      }
    if (evaluationQueued && clock.now >= busyUntil) {
      evaluationQueued = false;
      evaluate();
    }
    // Load reports: a shard's to its stage's head, a head's (the stage's) to the broadcast.
    for (const shard of shards.values()) {
      if (shard.state === "closed") continue;
      if (shard.reportDue !== undefined && shard.reportDue <= clock.now) {
        const joinRate = shard.admitted / Math.max(1, (clock.now - shard.reportedAt) / 1000);
        shard.admitted = 0;
        shard.reportedAt = clock.now;
        shard.reportDue = undefined;
        const head = stageShards.get(shard.arn)![0]!;
        meter.add(`shard:${head.name}`, clock.now);
        const before = stageViewers(head);
        head.parts!.set(shard.index, { viewers: shard.viewers, joinRate, at: clock.now });
        stageChanged(head, before, stageViewers(head));
      }
      if (shard.stageReportDue !== undefined && shard.stageReportDue <= clock.now) {
        const since = shard.stageReportedAt!;
        let joinRate = shard.admitted / Math.max(1, (clock.now - since) / 1000);
        for (const part of shard.parts!.values()) if (clock.now - part.at <= RATE_FRESH_MS) joinRate += part.joinRate;
        shard.admitted = 0;
        shard.stageReportedAt = clock.now;
        shard.stageReportDue = undefined;
        reportLoad(shard.arn, stageViewers(shard), joinRate);
      }
    }
    // Relay reports and fan-outs.
    for (const relay of relays.values()) {
      if (relay.reportDue !== undefined && relay.reportDue <= clock.now) {
        relay.reportDue = undefined;
        relay.reported = relay.sockets;
        meter.add(BROADCAST, clock.now);
        sources.add("relay reports", clock.now);
      }
      relayFanOut(relay);
    }
    if (pushAt !== undefined && clock.now >= pushAt) push();
    if (queue.size > 0 && Math.floor(clock.now / 1000) !== sentSecond) dispatch();
    if (clock.now >= nextTick) {
      nextTick += TICK_MS;
      evaluate();
    }
    stagesAtPeak = Math.max(stagesAtPeak, active().length);
  }

  const audience = [...stages.values()].reduce((n, s) => n + (s.state === "deleting" ? 0 : s.viewers), 0);
  const after = active();
  return {
    scenario: scenario.name,
    design: designName,
    peak: {
      broadcast: meter.peak(BROADCAST),
      shard: meter.peak("shard:"),
      relay: meter.peak("relay:"),
      broadcastSends: sends.peak(BROADCAST),
      relaySends: sends.peak("relay:"),
    },
    broadcastBySource: Object.fromEntries(
      ["routing table reads", "shard load reports", "relay reports", "capacity requests"].map((k) => [
        k,
        sources.peak(k),
      ]),
    ),
    mostSocketsOnOneObject: mostSockets,
    socketsRefused,
    secondsAnyShardOver: meter.secondsOver("shard:", config.scaling.admissionsPerShard),
    refused,
    longestWaitSeconds: longestWait / 1000,
    stagesAtPeak,
    stagesAfter: {
      serving: after.filter((s) => s.state !== "draining").length,
      draining: after.filter((s) => s.state === "draining").length,
    },
    neededPlusOne: Math.max(1, Math.ceil(audience / (capacity * scaleUpAt))) + 1,
  };
}

// ── the report ─────────────────────────────────────────────────────────────

const fmt = (n: number) => n.toLocaleString("en");

function row(o: Outcome): string {
  const refused = Object.values(o.refused).reduce((a, b) => a + b, 0);
  const after = `${o.stagesAfter.serving}${o.stagesAfter.draining ? ` + ${o.stagesAfter.draining} draining` : ""}`;
  return `| ${o.scenario} | ${o.design} | ${fmt(o.peak.broadcast)} | ${fmt(o.peak.shard)} | ${o.secondsAnyShardOver} | ${o.peak.relay ? fmt(o.peak.relay) : "–"} | ${fmt(o.peak.broadcastSends)} | ${o.peak.relaySends ? fmt(o.peak.relaySends) : "–"} | ${fmt(o.mostSocketsOnOneObject)} | ${fmt(refused)} | ${fmt(o.socketsRefused)} | ${o.longestWaitSeconds} | ${o.stagesAtPeak} | ${after} (${o.neededPlusOne}) |`;
}

const HEADER = `| scenario | design | Broadcast req/s | busiest shard req/s | seconds a shard was over 500/s | busiest relay req/s | Broadcast sends/s | busiest relay sends/s | most sockets on one object | joins refused | stats sockets refused | longest wait (s) | stages at peak | stages 5 min after (needed + 1) |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`;

/** Every scenario before and after, the announced million without each change in turn: the section of BENCHMARKS.md. */
export async function scaleReport(log: (line: string) => void = console.log): Promise<string> {
  const outcomes: Outcome[] = [];
  for (const scenario of SCENARIOS)
    for (const [name, design] of [
      ["before", BEFORE],
      ["after", AFTER],
    ] as const) {
      const started = performance.now();
      outcomes.push(await simulate(scenario, design, name));
      log(`${scenario.name}, ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  const million = SCENARIOS.find((s) => s.viewers === 1_000_000 && !s.announcedSeconds)!;
  const ablations: Outcome[] = [];
  for (const change of Object.keys(CHANGES) as (keyof typeof CHANGES)[]) {
    ablations.push(await simulate(million, { ...AFTER, [change]: false }, `after, without ${CHANGES[change]}`));
    log(`${million.name}, without ${change}: done`);
  }
  const unannounced = outcomes.find((o) => o.scenario === million.name && o.design === "after")!;
  const announced = outcomes.find(
    (o) => o.scenario.startsWith("1,000,000") && o !== unannounced && o.design === "after",
  )!;
  const busiest = (o: Outcome) => Math.max(o.peak.broadcast, o.peak.shard, o.peak.relay);
  const refusals = (o: Outcome) =>
    Object.entries(o.refused)
      .map(([reason, n]) => `${fmt(n)} × ${reason}`)
      .join("; ") || "none";
  return `## Internet scale (simulation)

Run by \`npm run bench -- --scale\` (\`bench/scale.ts\`, a few minutes, no network): crowds replayed in
simulated time through Fanout's own code — the scaling policy (\`decideScaling\`), the stage choice
(\`chooseStage\`), the routing-table cache (\`RoutingCache\`, one per isolate, over a shared store per
location, with its claim rule), the shard's seat and report rules (\`shard/admission.ts\`), the join
loop's waits (\`join/waiting.ts\`), the push budget and the relay spread (\`broadcast/timing.ts\`), with
the settings of \`wrangler.toml\` (stages of ${fmt(Number(deployedVars().STAGE_CAPACITY))} over shards of ${deployedVars().SEATS_PER_SHARD} seats, scale-up at ${Number(deployedVars().SCALE_UP_AT) * 100} %,
${deployedVars().ADMISSIONS_PER_SHARD_PER_SECOND} admissions a second per shard, ${deployedVars().SCALE_ARRIVAL_SECONDS} s of arrivals seated ahead). Around them it simulates the
deployment, with these assumptions:

- ${WORLD.locations} Cloudflare locations, the audience spread over them by a Zipf law; one isolate per
  ${WORLD.joinsPerIsolate} joins a second in a location (about ${fmt(Math.ceil(1_000_000 / 60 / WORLD.joinsPerIsolate))} isolates for a million in a minute).
- A read of the Broadcast object takes ${WORLD.readLatencyMs} ms to come back to a location; a write to the
  location's cache is seen there after ${WORLD.cacheWriteMs} ms.
- IVS: CreateStage answers in ${WORLD.createStageMs} ms; a broadcast has up to \`IVS_CONTROL_TPS\` (4)
  in flight, at most 4 a second per account; the account may have ${WORLD.maxStages} stages (IVS's
  default is 100 a region: a million viewers need 125 stages of 10,000 at 80 %, so the quota must be
  raised first).
- Viewers arrive evenly over the crowd's seconds and stay; ${WORLD.statsShare * 100} % of them open a stats
  socket a second after joining (a seed-style page); a drained stage's viewers move within
  ${WORLD.migrateWithinMs / 1000} s.

It counts every request each object receives and every message it sends, per simulated second.
"Before" is the design before issue 13: tables cached per isolate only, stats sockets on the Broadcast
object, one shard a stage, the pool sized by the audience alone, pushes to every target every 250 ms.
"After" has every change. The announced scenario is the operator calling \`POST /crowd\` two minutes
ahead (before has no such call). A shard's requests are joins, refusals, the head's reports from the
other shards and the broadcast's pushes passed on; the Broadcast object's are table reads, load and
relay reports and capacity requests.

${HEADER}
${outcomes.map(row).join("\n")}

Each change, shown by taking it away from the million at full speed from its first second (unannounced):

${HEADER}
${[unannounced, ...ablations].map(row).join("\n")}

Where the Broadcast object's requests come from (each kind at its busiest second), after:
${outcomes
  .filter((o) => o.design === "after")
  .map(
    (o) =>
      `- ${o.scenario}: ${Object.entries(o.broadcastBySource)
        .map(([k, n]) => `${k} ${fmt(n)}`)
        .join(", ")}`,
  )
  .join("\n")}

Refusals: ${
    outcomes
      .filter((o) => Object.keys(o.refused).length)
      .map((o) => `${o.scenario} (${o.design}): ${refusals(o)}`)
      .join("; ") || "none"
  }.

**Reading it.** A million viewers arriving at full speed from their first second (16,667 joins a
second, nobody warned) are seated with no object above ${fmt(busiest(unannounced))} requests a second and ${
    Object.keys(unannounced.refused).length ? refusals(unannounced) + " refused" : "no join refused"
  }: each of the first stage's ${shardsPerStage(Number(deployedVars().STAGE_CAPACITY), Number(deployedVars().SEATS_PER_SHARD))} shards admits its ${deployedVars().SEATS_PER_SHARD} seats at most, the joins beyond wait
in the Worker (${unannounced.longestWaitSeconds} s at most) while stages are created as fast as IVS allows, and five minutes later the
pool is ${unannounced.stagesAfter.serving} stages for an audience that needs ${unannounced.neededPlusOne - 1} plus one spare. Announced two minutes ahead, the pool is
ready before the crowd: no join waits more than ${announced.longestWaitSeconds} s and no object takes more than ${fmt(busiest(announced))} requests a second.
Without shards per stage the first stages' single shards take thousands a second; without the
arrival rule stages come one at a time behind the crowd and joins give up waiting.
`;
}

const CHANGES = {
  locationCache: "the per-location table",
  relays: "relays",
  shards: "shards per stage",
  arrivals: "the arrival rule",
  batched: "the push budget",
} as const;
