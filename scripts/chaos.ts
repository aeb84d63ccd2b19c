import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as prettier from "prettier";
import { startDev, type DevServer } from "../test/support/dev-server.ts";
import { readDevVars } from "./dev-vars.ts";

/**
 * `npm run chaos`: a live broadcast through `npm run dev` while IVS misbehaves
 * (RELIABILITY.md has the method and the last figures, which this script writes).
 *
 * A publisher publishes; a few hundred viewers join over HTTP, heartbeat over
 * HTTP, and half of them also hold a viewer socket. Meanwhile the emulator
 * answers 20 % of calls with a 5xx, stalls some for 2 s, throttles at AWS's
 * documented TPS quotas, refuses CreateStage with 402 for 30 s while the crowd
 * is still arriving, and the Worker
 * process is restarted mid-broadcast. Then the broadcast ends while DeleteStage
 * fails for a minute, and the run waits two minutes past the end (two crons).
 * What it counts: viewers admitted, refused (by reason), lost (admitted, then
 * told they are not counted while they were heartbeating, without being told to
 * move); answers of 500 or more other than the documented 502 and 503-with-
 * Retry-After; duplicate stages (two stages with one request tag); IVS calls a
 * second against the quotas; and stages left in IVS two minutes after the end.
 */

const { values } = parseArgs({
  options: {
    viewers: { type: "string", default: "300" },
    // Every token from CreateParticipantToken (no token key): joins then call IVS, and meet its faults.
    "api-tokens": { type: "boolean", default: false },
    "no-write": { type: "boolean", default: false },
  },
});

const VIEWERS = Number(values.viewers);
const HEARTBEAT_S = 10;
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BROADCAST = `chaos-${Date.now().toString(36)}`;
const started = Date.now();
const t = () => ((Date.now() - started) / 1000).toFixed(0).padStart(4);
const log = (line: string) => console.log(`[chaos ${t()}s] ${line}`);

// ── what is counted ─────────────────────────────────────────────────────────

const counts = {
  admitted: new Set<string>(),
  refused: new Map<string, number>(),
  lost: new Set<string>(),
  moved: 0,
  undocumented5xx: [] as string[],
  documented5xx: 0,
  unreachable: 0,
  requests: 0,
};
const refuse = (reason: string) => counts.refused.set(reason, (counts.refused.get(reason) ?? 0) + 1);

let dev: DevServer;
let adminKey = "";
let ending = false;

/** One call to the Worker, counted; undefined when the Worker could not be reached (it is restarting). */
async function request(
  path: string,
  body?: unknown,
  admin = false,
): Promise<{ status: number; json: Envelope; retryAfter: number | undefined } | undefined> {
  counts.requests++;
  let response: Response;
  try {
    response = await fetch(`${dev.url}/api/broadcasts/${BROADCAST}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json", ...(admin && { "x-api-key": adminKey }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch {
    counts.unreachable++;
    return undefined;
  }
  const text = await response.text();
  let json: Envelope;
  try {
    json = JSON.parse(text) as Envelope;
  } catch {
    json = { success: false, error: { code: "NOT_JSON", message: text.slice(0, 200) } };
  }
  const retryAfter = response.headers.get("Retry-After") ? Number(response.headers.get("Retry-After")) : undefined;
  if (response.status >= 500) {
    const documented = response.status === 502 || (response.status === 503 && retryAfter !== undefined);
    if (documented) counts.documented5xx++;
    else counts.undocumented5xx.push(`${response.status} ${path}: ${text.slice(0, 160)}`);
  }
  return { status: response.status, json, retryAfter };
}

type Envelope = { success: boolean; data?: Record<string, unknown>; error?: { code: string; message: string } };

// ── the publisher ───────────────────────────────────────────────────────────

async function publish(): Promise<WebSocket> {
  for (;;) {
    const answer = await request("/token/publisher", { userId: "chaos-host" }, true);
    if (answer?.status === 200) {
      const grant = answer.json.data as { token: string; stageArn: string };
      const claims = JSON.parse(Buffer.from(grant.token.split(".")[1]!, "base64url").toString()) as {
        events_url: string;
      };
      const ws = new WebSocket(claims.events_url);
      await new Promise<void>((resolve, reject) => {
        ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "join", token: grant.token })));
        ws.addEventListener("message", (event) => {
          const message = JSON.parse(String(event.data)) as { type: string };
          if (message.type === "joined") ws.send(JSON.stringify({ type: "publish" }));
          if (message.type === "published") resolve();
          if (message.type === "error") reject(new Error(String(event.data)));
        });
      });
      await request("/broadcaster/publish-state", { stageArn: grant.stageArn, state: "publishing" }, true);
      return ws;
    }
    await sleep(1_000);
  }
}

// ── viewers ─────────────────────────────────────────────────────────────────

class Viewer {
  readonly userId: string;
  readonly withSocket: boolean;
  grant: { token: string; participantId: string; stageArn: string } | undefined;
  socket: WebSocket | undefined;
  done = false;

  constructor(index: number) {
    this.userId = `viewer-${index}`;
    this.withSocket = index % 2 === 0;
  }

  async run(): Promise<void> {
    while (!this.done && !ending) {
      if (!this.grant) await this.join();
      else await this.heartbeat();
      await sleep(this.grant ? HEARTBEAT_S * 1000 * (0.8 + Math.random() * 0.4) : 500);
    }
    this.socket?.close();
  }

  async join(stageArn?: string): Promise<void> {
    const answer = await request("/token/viewer", { userId: this.userId, ...(stageArn && { stageArn }) });
    if (!answer) return;
    if (answer.status === 200) {
      this.grant = answer.json.data as Viewer["grant"];
      counts.admitted.add(this.userId);
      if (this.withSocket) this.openSocket();
      return;
    }
    refuse(`${answer.status} ${answer.json.error?.code ?? "?"}`);
    if (answer.retryAfter) await sleep(answer.retryAfter * 1000);
  }

  async heartbeat(): Promise<void> {
    const g = this.grant!;
    const answer = await request("/viewer/heartbeat", { userId: this.userId, ...g });
    if (!answer) return;
    if (answer.status === 200) {
      const migrateTo = answer.json.data?.migrateTo as string | undefined;
      if (migrateTo) await this.move(migrateTo);
      return;
    }
    if (answer.status === 404 && !ending) {
      // Admitted, heartbeating, and yet no longer counted: lost. It joins again.
      counts.lost.add(this.userId);
      log(`lost ${this.userId}: ${answer.json.error?.message}`);
      this.grant = undefined;
    }
  }

  async move(stageArn: string): Promise<void> {
    counts.moved++;
    this.socket?.close();
    this.grant = undefined;
    await this.join(stageArn);
    if (!this.grant) await this.join();
  }

  openSocket(): void {
    const g = this.grant!;
    const url = `${dev.url.replace(/^http/, "ws")}/api/broadcasts/${BROADCAST}/viewer/ws?stageArn=${encodeURIComponent(g.stageArn)}&participantId=${g.participantId}`;
    const ws = new WebSocket(url);
    this.socket = ws;
    ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", token: g.token })));
    ws.addEventListener("message", (event) => {
      const message = JSON.parse(String(event.data)) as { type: string; data?: { stageArn?: string } };
      if (message.type === "migrate" && this.grant === g) void this.move(message.data?.stageArn ?? "");
      if (message.type === "ended") this.done = true;
    });
    ws.addEventListener("close", () => {
      // Dropped (a Worker restart): the socket comes back, proven again, as the viewer page does.
      if (this.socket === ws && !this.done && !ending && this.grant === g)
        setTimeout(() => this.grant === g && this.openSocket(), 1_000 + Math.random() * 2_000);
    });
    ws.addEventListener("error", () => undefined);
  }
}

// ── the emulator ────────────────────────────────────────────────────────────

const emulator = (path: string, method = "GET", body?: unknown) =>
  fetch(`${dev.emulatorUrl}/_emulator/${path}`, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then((r) => r.json() as Promise<Record<string, unknown>>);

/** Faults for the whole run: 20 % of calls fail with a 5xx, 5 % stall 2 s first; timed rules on top. */
const BASE_FAULTS = { errorRate: 0.2, errorType: "InternalServerException", spikeRate: 0.05, spikeMs: 2_000 };
const setFaults = (rules: object[] = []) => emulator("faults", "PUT", { ...BASE_FAULTS, rules });

interface Metrics {
  operations: Record<string, { calls: number; throttled: number; failed: number; peakPerSecond: number }>;
  stages: { arn: string; tags: Record<string, string>; createdAt: string; deletedAt: string | null }[];
}

// ── the run ─────────────────────────────────────────────────────────────────

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  log(`starting npm run dev (${VIEWERS} viewers, broadcast ${BROADCAST})`);
  dev = await startDev([
    ...(values["api-tokens"] ? ["--api-tokens"] : []),
    "--ivs-aws-rate-limits",
    "--var",
    "STAGE_CAPACITY=60",
    "--var",
    "MAX_STAGES=12",
    "--var",
    "RATE_LIMITING=off",
    "--var",
    "STAGE_WARMUP_SECONDS=20",
    "--var",
    "DRAIN_TIMEOUT_SECONDS=30",
    "--var",
    `HEARTBEAT_INTERVAL_SECONDS=${HEARTBEAT_S}`,
    "--var",
    "VIEWER_TTL_SECONDS=40",
    "--var",
    "PRICE_PER_PARTICIPANT_HOUR=0.01",
  ]);
  adminKey = readDevVars(`${ROOT}.dev.vars`).get("ADMIN_KEY") ?? "";
  await emulator("metrics", "DELETE");
  log(`dev at ${dev.url}, emulator at ${dev.emulatorUrl}`);

  await setFaults();
  log("faults on: 20 % 5xx, 5 % 2 s spikes, AWS TPS quotas");
  const publisher = await publish();
  log("publishing");

  const viewers = Array.from({ length: VIEWERS }, (_, i) => new Viewer(i));
  const running: Promise<void>[] = [];
  // A crowd over 30 s.
  for (const [i, v] of viewers.entries()) {
    setTimeout(() => running.push(v.run()), (i / VIEWERS) * 30_000);
  }

  // While the crowd is still arriving, so that the pool needs stages IVS will not give.
  await sleep(8_000);
  await setFaults([{ operation: "CreateStage", errorType: "ServiceQuotaExceededException", forMs: 30_000 }]);
  log("CreateStage refused with 402 for 30 s");
  await sleep(52_000);
  log("restarting the Worker process");
  dev.signal("SIGUSR2");
  await sleep(50_000);

  const atEnd = (await request("/stats", undefined, true))?.json.data as { totalViewers?: number } | undefined;
  log(`${atEnd?.totalViewers ?? "?"} viewers counted; DeleteStage failing for 60 s; ending the broadcast`);
  await setFaults([{ operation: "DeleteStage", errorType: "InternalServerException", forMs: 60_000 }]);
  ending = true;
  let ended: Envelope | undefined;
  for (let i = 0; i < 10 && !ended?.success; i++) {
    ended = (await request("/broadcast/end", {}, true))?.json;
    if (!ended?.success) await sleep(2_000);
  }
  const endedAt = Date.now();
  log(`ended: ${JSON.stringify(ended?.data ?? ended?.error)}`);
  publisher.close();
  await Promise.all(running);

  // Two minutes after the end: at least two crons have run (npm run dev runs it every minute).
  await sleep(Math.max(0, endedAt + 120_000 - Date.now()));
  const state = (await emulator("state")) as { stages: { arn: string; tags: Record<string, string> }[] };
  const left = state.stages.filter((s) => s.tags["fanout:broadcast"] === BROADCAST);
  const metrics = (await emulator("metrics")) as unknown as Metrics;
  const stats = (await request("/stats", undefined, true))?.json.data as
    { usage: { participantHours: { total: number }; stages: { peak: number } }; warnings: unknown[] } | undefined;
  await dev.stop();

  const requestTags = new Map<string, number>();
  for (const s of metrics.stages.filter((s) => s.tags["fanout:broadcast"] === BROADCAST)) {
    const tag = s.tags["fanout:request"] ?? s.arn;
    requestTags.set(tag, (requestTags.get(tag) ?? 0) + 1);
  }
  const duplicates = [...requestTags.values()].reduce((sum, n) => sum + (n - 1), 0);
  const created = metrics.stages.filter((s) => s.tags["fanout:broadcast"] === BROADCAST).length;

  const report = {
    date: new Date().toISOString().slice(0, 10),
    viewers: VIEWERS,
    admitted: counts.admitted.size,
    refused: Object.fromEntries(counts.refused),
    lost: counts.lost.size,
    moved: counts.moved,
    requests: counts.requests,
    documented5xx: counts.documented5xx,
    undocumented5xx: counts.undocumented5xx.length,
    unreachableDuringRestart: counts.unreachable,
    stagesCreated: created,
    stagesAtPeak: stats?.usage.stages.peak ?? null,
    duplicates,
    stagesLeftTwoMinutesAfterEnd: left.length,
    participantHours: stats?.usage.participantHours.total ?? null,
    ivs: Object.entries(metrics.operations)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([operation, m]) => ({ operation, ...m })),
  };
  console.log(JSON.stringify(report, null, 2));
  for (const line of counts.undocumented5xx.slice(0, 20)) console.log(`  undocumented: ${line}`);
  if (!values["no-write"]) await writeReliability(report);

  const ok = report.lost === 0 && report.undocumented5xx === 0 && duplicates === 0 && left.length === 0;
  log(ok ? "PASS: nothing lost, leaked or duplicated" : "FAIL: see the report");
  process.exit(ok ? 0 : 1);
}

const AWS_TPS: Record<string, number> = { CreateParticipantToken: 50 };
const limitOf = (operation: string) =>
  AWS_TPS[operation] ??
  ([
    "StartParticipantReplication",
    "StopParticipantReplication",
    "ListParticipantReplicas",
    "ImportPublicKey",
    "GetPublicKey",
    "ListPublicKeys",
    "DeletePublicKey",
  ].includes(operation)
    ? null
    : 5);

async function writeReliability(
  report: Record<string, unknown> & {
    ivs: { operation: string; calls: number; throttled: number; failed: number; peakPerSecond: number }[];
  },
) {
  const path = `${ROOT}RELIABILITY.md`;
  const text = readFileSync(path, "utf8");
  const rows = report.ivs
    .map((o) => {
      const limit = limitOf(o.operation);
      return `| ${o.operation} | ${o.calls} | ${o.peakPerSecond} | ${limit ?? "—"} | ${o.throttled} | ${o.failed} |`;
    })
    .join("\n");
  const figures = `<!-- chaos:begin (written by npm run chaos) -->
Last run: ${report.date}, ${report.viewers} viewers, ${values["api-tokens"] ? "API tokens (every join calls CreateParticipantToken)" : "self-signed tokens"}, this machine (2 cores).

| Figure | Value |
| --- | --- |
| Viewers admitted | ${report.admitted as number} of ${report.viewers as number} |
| Refusals (answers, a viewer may be refused and admitted later) | ${
    Object.entries(report.refused as Record<string, number>)
      .map(([k, v]) => `${v} × ${k}`)
      .join(", ") || "none"
  } |
| Viewers lost (admitted, then not counted while heartbeating) | **${report.lost as number}** |
| Viewers moved (told to move to another stage, and did) | ${report.moved as number} |
| Requests to the Worker | ${report.requests as number} |
| Answers ≥ 500, documented (502, or 503 with Retry-After) | ${report.documented5xx as number} |
| Answers ≥ 500, undocumented | **${report.undocumented5xx as number}** |
| Requests that found no Worker (during its restart) | ${report.unreachableDuringRestart as number} |
| Stages created / at peak | ${report.stagesCreated as number} / ${report.stagesAtPeak as number} |
| Duplicate stages (two stages for one request tag) | **${report.duplicates as number}** |
| Stages left in IVS two minutes after the end | **${report.stagesLeftTwoMinutesAfterEnd as number}** |
| Participant-hours counted | ${report.participantHours as number} |

IVS calls during the run (the emulator's count; peak = most calls that arrived in one second, throttled ones included):

| Operation | Calls | Peak/s | Limit/s | Throttled (429) | Failed (injected or refused) |
| --- | --- | --- | --- | --- | --- |
${rows}
<!-- chaos:end -->`;
  const updated = text.replace(/<!-- chaos:begin[\s\S]*<!-- chaos:end -->/, figures);
  // As `npm run check` wants it (aligned tables).
  writeFileSync(path, await prettier.format(updated, { ...(await prettier.resolveConfig(path)), filepath: path }));
  log("figures written to RELIABILITY.md");
}

main().catch(async (error: unknown) => {
  console.error(error);
  await dev?.stop();
  process.exit(2);
});
