import {
  SELF,
  createExecutionContext,
  createScheduledController,
  env,
  runDurableObjectAlarm,
  waitOnExecutionContext,
} from "cloudflare:test";
import { expect, vi } from "vitest";
import worker from "../../worker/index.ts";
import { IvsClient } from "../../worker/ivs/client.ts";
import { TEST_ADMIN_KEY } from "../support/test-keys.ts";

/** Helpers for the control-plane tests: a fresh broadcast each, the API as a client calls it. */

export const ADMIN = TEST_ADMIN_KEY;
export const ORIGIN = "https://fanout.test";

export function newBroadcastId(): string {
  return `t-${crypto.randomUUID().slice(0, 12)}`;
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body:
    | { success: true; data: T }
    | { success: false; error: { code: string; message: string; details?: Record<string, unknown> } };
}

export async function call<T = Record<string, unknown>>(
  path: string,
  init: { method?: string; body?: unknown; key?: string | null; raw?: string } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (init.key !== null) headers["x-api-key"] = init.key ?? ADMIN;
  const response = await SELF.fetch(`${ORIGIN}${path}`, {
    method: init.method ?? (init.body !== undefined || init.raw !== undefined ? "POST" : "GET"),
    headers,
    body: init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body)),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Answer<T>["body"] };
}

/** The data of a successful answer; fails the test with the error otherwise. */
export function data<T>(answer: Answer<T>): T {
  expect(answer.body, JSON.stringify(answer.body)).toMatchObject({ success: true });
  return (answer.body as { data: T }).data;
}

export const api = (broadcastId: string, path: string) => `/api/broadcasts/${broadcastId}${path}`;

export interface Socket {
  ws: WebSocket;
  messages: { type: string; data?: Record<string, unknown> }[];
  next(type: string, timeout?: number): Promise<{ type: string; data?: Record<string, unknown> }>;
  close(): void;
}

/** Opens a WebSocket through the Worker, as a browser or integrator would. */
export async function socket(path: string, headers: Record<string, string> = {}): Promise<Socket> {
  const response = await SELF.fetch(`${ORIGIN}${path}`, { headers: { Upgrade: "websocket", ...headers } });
  if (response.status !== 101)
    throw new Error(`expected a WebSocket, got ${response.status}: ${await response.text()}`);
  return accept(response.webSocket!);
}

export function accept(ws: WebSocket): Socket {
  ws.accept();
  const messages: Socket["messages"] = [];
  ws.addEventListener("message", (event) => {
    const text = typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data as ArrayBuffer);
    try {
      messages.push(JSON.parse(text) as Socket["messages"][number]);
    } catch {
      messages.push({ type: text });
    }
  });
  let seen = 0;
  return {
    ws,
    messages,
    async next(type, timeout = 5000) {
      return vi.waitFor(
        () => {
          const index = messages.findIndex((m, i) => i >= seen && m.type === type);
          if (index < 0) throw new Error(`no ${type} yet; got ${messages.map((m) => m.type).join(", ")}`);
          seen = index + 1;
          return messages[index]!;
        },
        { timeout, interval: 50 },
      );
    },
    close: () => ws.close(1000, "done"),
  };
}

/** A publisher connected to its stage's events endpoint at the emulator, publishing when told. */
export async function connectPublisher(token: string): Promise<Socket & { publish(): Promise<void> }> {
  const { decodeJwt } = await import("jose");
  const eventsUrl = String(decodeJwt(token).events_url);
  const response = await fetch(eventsUrl.replace(/^ws/, "http"), { headers: { Upgrade: "websocket" } });
  const sock = accept(response.webSocket!);
  sock.ws.send(JSON.stringify({ type: "join", token }));
  await sock.next("joined");
  return {
    ...sock,
    async publish() {
      sock.ws.send(JSON.stringify({ type: "publish" }));
      await sock.next("published");
    },
  };
}

/** The emulator's control API and signed IVS calls, for assertions about what IVS has. */
export const emulator = {
  url: () => env.IVS_ENDPOINT,
  async faults(faults: object) {
    const response = await fetch(`${env.IVS_ENDPOINT}/_emulator/faults`, {
      method: "PUT",
      body: JSON.stringify(faults),
    });
    expect(response.ok).toBe(true);
  },
  async clearFaults() {
    await fetch(`${env.IVS_ENDPOINT}/_emulator/faults`, { method: "DELETE" });
  },
  async state(): Promise<{
    stages: { arn: string; tags: Record<string, string> }[];
    replications: { destinationStageArn: string; replicationState: string; participantId: string }[];
  }> {
    return (await fetch(`${env.IVS_ENDPOINT}/_emulator/state`)).json();
  },
  async stagesOf(broadcastId: string) {
    return (await this.state()).stages.filter((s) => s.tags["fanout:broadcast"] === broadcastId);
  },
};

export async function waitFor<T>(check: () => Promise<T> | T, timeout = 10_000): Promise<T> {
  return vi.waitFor(check, { timeout, interval: 100 });
}

/** A viewer's grant as the join path answers it. */
export interface ViewerGrant {
  token: string;
  participantId: string;
  stageArn: string;
  userId: string;
}

/** The body of a call as one viewer: its participant, proven by its token. */
export const asViewer = (v: ViewerGrant) => ({
  userId: v.userId,
  stageArn: v.stageArn,
  participantId: v.participantId,
  token: v.token,
});

/** A viewer's token, as an anonymous viewer asks for it. */
export async function joinAs(b: string, userId: string, stageArn?: string): Promise<ViewerGrant> {
  return data(
    await call<ViewerGrant>(api(b, "/token/viewer"), { body: { userId, ...(stageArn && { stageArn }) }, key: null }),
  );
}

/** The viewer socket of a viewer, proven with its token in the first message, as the viewer page opens it. */
export async function viewerSocket(b: string, v: ViewerGrant, token = v.token): Promise<Socket> {
  const sock = await socket(
    `${api(b, "/viewer/ws")}?stageArn=${encodeURIComponent(v.stageArn)}&participantId=${v.participantId}`,
  );
  sock.ws.send(JSON.stringify({ type: "hello", token }));
  return sock;
}

/** How a socket closed (the server's code and reason), waiting for it. */
export function closeOf(sock: Socket, timeout = 15_000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the socket did not close")), timeout);
    sock.ws.addEventListener("close", (event) => {
      clearTimeout(timer);
      resolve({ code: event.code, reason: event.reason });
    });
  });
}

/** Runs the Worker with some variables changed, as a deployment configured so would. */
export async function fetchWith(vars: Record<string, string>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...vars }, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

type StageView = { stageArn: string; role: string; state: string; replication: string; feed: string };

/** A live broadcast with its origin: the publisher's token. */
export async function live(b: string): Promise<ViewerGrant> {
  return data(await call<ViewerGrant>(api(b, "/token/publisher"), { body: { userId: "host" } }));
}

/**
 * A live broadcast with an audience on an edge stage: three viewers fill the origin (stages of 3),
 * the fourth waits for the edge the pool adds and sits on it, so the edge is never drained.
 */
export async function liveWithEdge(b: string): Promise<{ grant: ViewerGrant; edge: string }> {
  const grant = await live(b);
  for (let i = 0; i < 3; i++) await joinAs(b, `viewer-${i}`, grant.stageArn);
  const edge = await waitFor(async () => {
    const stages = data(await call<{ stages: StageView[] }>(api(b, "/stage/list"))).stages;
    const found = stages.find((s) => s.role === "edge" && s.state === "ready");
    expect(found).toBeDefined();
    return found!.stageArn;
  });
  await joinAs(b, "viewer-3", edge);
  return { grant, edge };
}

/** A signed IVS client of the test's own, for arranging what IVS has behind Fanout's back. */
export const ivs = () =>
  new IvsClient({
    region: "us-east-1",
    endpoint: env.IVS_ENDPOINT,
    accessKeyId: env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
  });

/** The cron, as Cloudflare runs it every minute. */
export async function runCron() {
  const ctx = createExecutionContext();
  await worker.scheduled(createScheduledController({ cron: "* * * * *", scheduledTime: Date.now() }), env, ctx);
  await waitOnExecutionContext(ctx);
}

/** Runs a broadcast's alarm now, as workerd would when it is due. */
export const tick = (b: string) => runDurableObjectAlarm(env.BROADCAST.getByName(b));

/** The publisher publishing at IVS with `grant`, and the studio saying so: the socket to close when done. */
export async function publishing(b: string, grant: { token: string; stageArn: string }) {
  const publisher = await connectPublisher(grant.token);
  await publisher.publish();
  await call(api(b, "/broadcaster/publish-state"), { body: { stageArn: grant.stageArn, state: "publishing" } });
  return publisher;
}

/** Waits until `edge` is fed by replication, started (the alarm retries it until the publisher publishes). */
export async function replicating(b: string, edge: string) {
  await waitFor(async () => {
    await tick(b);
    const stages = data(await call<{ stages: StageView[] }>(api(b, "/stage/list"))).stages;
    expect(stages.find((s) => s.stageArn === edge)).toMatchObject({ feed: "replica", replication: "active" });
  }, 25_000);
}
