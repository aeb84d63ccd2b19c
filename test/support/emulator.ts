import { IVSRealTimeClient } from "@aws-sdk/client-ivs-realtime";
import { afterAll, beforeAll } from "vitest";
import { LOCAL_CREDENTIALS } from "../../emulator/credentials.ts";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../emulator/server.ts";
import { IvsClient, type IvsClientOptions } from "../../worker/ivs/client.ts";

/** A fresh emulator on a free loopback port for the tests of one file. */
export function useEmulator(options: EmulatorOptions = {}): { readonly emulator: Emulator; readonly url: string } {
  let emulator: Emulator | undefined;
  beforeAll(async () => {
    emulator = await startEmulator({ port: 0, ...options });
  });
  afterAll(async () => {
    await emulator?.close();
  });
  return {
    get emulator() {
      if (!emulator) throw new Error("emulator not started yet");
      return emulator;
    },
    get url() {
      return this.emulator.url;
    },
  };
}

export function sdkClient(url: string, credentials = LOCAL_CREDENTIALS): IVSRealTimeClient {
  // No SDK retries: a test should see the emulator's first answer.
  return new IVSRealTimeClient({ region: "us-east-1", endpoint: url, credentials, maxAttempts: 1 });
}

export function ivsClient(url: string, options: Partial<IvsClientOptions> = {}): IvsClient {
  return new IvsClient({ region: "us-east-1", endpoint: url, ...LOCAL_CREDENTIALS, retryBaseMs: 5, ...options });
}

export async function control(url: string, path: string, method: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${url}/_emulator/${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`control ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

export interface Participant {
  ws: WebSocket;
  /** Resolves with the hub's first answer to the join: `joined` or `error`. */
  joined: Promise<{ type: string; participantId?: string; code?: string; message?: string }>;
  closed: Promise<{ code: number; reason: string }>;
  publish(): Promise<{ type: string; code?: string }>;
  /** Swaps the token in place; resolves with `exchanged` or `error`. */
  exchange(token: string): Promise<{ type: string; code?: string; expiresAt?: string }>;
}

/** Connects to a stage's events endpoint as IVS clients do, presenting a token. */
export function join(eventsUrl: string, token: string): Participant {
  const ws = new WebSocket(eventsUrl);
  const queue: Array<(message: { type: string }) => void> = [];
  ws.addEventListener("message", (event) => queue.shift()?.(JSON.parse(String(event.data))));
  const next = () => new Promise<{ type: string; [key: string]: unknown }>((resolve) => queue.push(resolve));
  const joined = new Promise<Participant["joined"] extends Promise<infer T> ? T : never>((resolve, reject) => {
    ws.addEventListener("open", () => {
      void next().then((m) => resolve(m));
      ws.send(JSON.stringify({ type: "join", token }));
    });
    ws.addEventListener("error", () => reject(new Error("websocket error")));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason })),
  );
  return {
    ws,
    joined,
    closed,
    publish: () => {
      const answer = next();
      ws.send(JSON.stringify({ type: "publish" }));
      return answer;
    },
    exchange: (newToken: string) => {
      const answer = next();
      ws.send(JSON.stringify({ type: "exchange", token: newToken }));
      return answer;
    },
  };
}

/** A signed call on the wire, as any client would make it: status, AWS error type and JSON body. */
export async function signedCall(
  url: string,
  operation: string,
  body: unknown,
): Promise<{ status: number; type: string | null; json: Record<string, unknown> }> {
  const { AwsClient } = await import("aws4fetch");
  const aws = new AwsClient({ ...LOCAL_CREDENTIALS, service: "ivs", region: "us-east-1", retries: 0 });
  const response = await aws.fetch(`${url}/${operation}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    type: response.headers.get("x-amzn-ErrorType"),
    json: (await response.json()) as Record<string, unknown>,
  };
}
