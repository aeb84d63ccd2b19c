import { serve, upgradeWebSocket, type ServerType } from "@hono/node-server";
import { Hono, type Context } from "hono";
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { z } from "zod";
import { AwsError, isModelledError } from "./errors.ts";
import { Faults, RateLimiter, applyFaults, awsRateQuotas, installFaults, noFaults } from "./faults.ts";
import { Metrics } from "./metrics.ts";
import { describeIssues, inputs, isOperation, type OperationName } from "./schemas.ts";
import { IvsService, defaultQuotas, type Connection, type Quotas } from "./service.ts";
import { type Credentials, verifySigV4 } from "./sigv4.ts";
import { emptyState, loadState, saveState, type State } from "./state.ts";
import { TokenRejected, loadOrCreateSigningKey } from "./tokens.ts";
import { LocalClientMessage, type LocalServerMessage } from "../protocol/local-media.ts";
import { LOCAL_CREDENTIALS } from "./credentials.ts";

export { LOCAL_CREDENTIALS };

/**
 * The IVS Real-Time emulator as an HTTP service: the AWS operations at
 * `POST /<Operation>` (and the tag routes), SigV4-verified and validated; the
 * participant events hub at `/events` (WebSocket); and a control API under
 * `/_emulator/` for tests and development (faults, quotas, reset, state).
 */

export interface EmulatorOptions {
  port?: number;
  host?: string;
  region?: string;
  accountId?: string;
  credentials?: Credentials[];
  /** Where to keep state across restarts; in memory only when absent. */
  statePath?: string;
  quotas?: Partial<Quotas>;
  faults?: Partial<Faults>;
  /** Per-operation TPS limits; `"aws"` for the documented IVS quotas. */
  rateLimits?: Record<string, number> | "aws";
  /** Allowed clock skew for signatures, in ms (AWS: 5 minutes). */
  maxSkewMs?: number;
  log?: (line: string) => void;
}

export interface Emulator {
  url: string;
  port: number;
  service: IvsService;
  close(): Promise<void>;
}

const Control = {
  quotas: z
    .object({
      publishersPerStage: z.number().int().min(1),
      subscribersPerStage: z.number().int().min(1),
      stagesPerAccount: z.number().int().min(0),
      publicKeysPerAccount: z.number().int().min(0),
    })
    .partial(),
  rateLimits: z.record(z.string(), z.number().int().min(1)),
  paging: z.object({ maxPageSize: z.number().int().min(1).nullable() }),
  network: z.object({ down: z.boolean() }),
  endpoints: z.object({ events: z.url(), whip: z.url() }).nullable(),
  eventBridge: z.object({ url: z.url({ protocol: /^https?$/ }), apiKey: z.string().min(1) }).nullable(),
};

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const host = options.host ?? "127.0.0.1";
  const region = options.region ?? "us-east-1";
  const credentials = options.credentials ?? [LOCAL_CREDENTIALS];
  const log = options.log ?? (() => {});
  const state: State = options.statePath ? loadState(options.statePath) : emptyState();
  const signingKey = await loadOrCreateSigningKey(state.signingKey);
  state.signingKey = signingKey.jwk;

  let saveTimer: NodeJS.Timeout | undefined;
  const persist = () => {
    if (!options.statePath || saveTimer) return;
    saveTimer = setTimeout(() => {
      saveTimer = undefined;
      saveState(options.statePath!, state);
    }, 100);
  };

  let faults: Faults = installFaults(options.faults ?? {}).data ?? noFaults();
  const metrics = new Metrics();
  const rateLimiter = new RateLimiter(options.rateLimits === "aws" ? awsRateQuotas : options.rateLimits);
  const quotas: Quotas = { ...defaultQuotas, ...definedOnly(options.quotas) };
  // The public URL is known once the port is; the service reads it when it creates a stage.
  const service = new IvsService({
    region,
    accountId: options.accountId ?? "123456789012",
    publicUrl: "",
    quotas,
    state,
    signingKey,
    onChange: persist,
  });

  const app = new Hono();
  const sockets = new WebSocketServer({ noServer: true });
  /** The network between clients and the events hub is gone: connections drop without a word, new ones fail. */
  let networkDown = false;

  const awsError = (c: Context, error: AwsError) => {
    c.header("x-amzn-ErrorType", error.type);
    c.header("x-amzn-RequestId", randomUUID());
    // Modelled exceptions carry `exceptionMessage`; the front door's generic ones carry `message`.
    const body = isModelledError(error.type) ? { exceptionMessage: error.message } : { message: error.message };
    return c.json(body, error.status as 400);
  };

  async function handleOperation(c: Context, operation: OperationName, fromPath: Record<string, unknown> = {}) {
    const started = Date.now();
    try {
      const raw = new Uint8Array(await c.req.arrayBuffer());
      const url = new URL(c.req.url);
      verifySigV4(
        {
          method: c.req.method,
          rawPath: url.pathname,
          rawQuery: url.search.slice(1),
          headers: c.req.raw.headers,
          body: raw,
        },
        { region, service: "ivs", credentials, now: new Date(), maxSkewMs: options.maxSkewMs },
      );
      await applyFaults(faults, operation);
      rateLimiter.check(operation);
      let body: unknown = {};
      const text = new TextDecoder().decode(raw).trim();
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new AwsError("SerializationException", 400, "Request body is not valid JSON.");
        }
        if (typeof body !== "object" || body === null || Array.isArray(body)) {
          throw new AwsError("SerializationException", 400, "Request body must be a JSON object.");
        }
      }
      const parsed = inputs[operation].safeParse({ ...(body as object), ...fromPath });
      if (!parsed.success) throw new AwsError("ValidationException", 400, describeIssues(parsed.error));
      const output = await service.call(operation, parsed.data as never);
      log(`${operation} 200 ${Date.now() - started}ms`);
      metrics.record(operation, 200);
      if (operation === "CreateStage") {
        const stage = (output as { stage: { arn: string; tags?: Record<string, string> } }).stage;
        metrics.stageCreated(stage.arn, stage.tags ?? {});
      }
      if (operation === "DeleteStage") metrics.stageDeleted((parsed.data as { arn: string }).arn);
      c.header("x-amzn-RequestId", randomUUID());
      return c.json(output);
    } catch (error) {
      if (error instanceof AwsError) {
        log(`${operation} ${error.status} ${error.type} ${Date.now() - started}ms`);
        metrics.record(operation, error.status);
        return awsError(c, error);
      }
      log(`${operation} 500 ${(error as Error).message}`);
      metrics.record(operation, 500);
      return awsError(c, new AwsError("InternalServerException", 500, "Internal error in the emulator."));
    }
  }

  // ── control API (loopback only, never part of AWS) ───────────────────────
  app.get("/_emulator/health", (c) => c.json({ ok: true, region }));
  app.get("/_emulator/state", (c) =>
    c.json({ stages: state.stages, publicKeys: state.publicKeys, replications: state.replications }),
  );
  app.get("/_emulator/faults", (c) => c.json(faults));
  app.get("/_emulator/metrics", (c) => c.json(metrics.view()));
  app.delete("/_emulator/metrics", (c) => {
    metrics.reset();
    return c.json({ ok: true });
  });
  app.put("/_emulator/faults", async (c) => {
    const parsed = installFaults(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    faults = parsed.data;
    return c.json(faults);
  });
  app.delete("/_emulator/faults", (c) => {
    faults = noFaults();
    return c.json(faults);
  });
  app.put("/_emulator/quotas", async (c) => {
    const parsed = Control.quotas.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    Object.assign(quotas, parsed.data);
    return c.json(quotas);
  });
  app.put("/_emulator/rate-limits", async (c) => {
    const parsed = Control.rateLimits.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    rateLimiter.limits = parsed.data;
    return c.json(rateLimiter.limits);
  });
  app.put("/_emulator/paging", async (c) => {
    const parsed = Control.paging.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    service.options.maxPageSize = parsed.data.maxPageSize ?? undefined;
    return c.json({ maxPageSize: parsed.data.maxPageSize });
  });
  app.put("/_emulator/endpoints", async (c) => {
    const parsed = Control.endpoints.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    service.options.endpoints = parsed.data ?? undefined;
    return c.json({ endpoints: parsed.data });
  });
  app.put("/_emulator/eventbridge", async (c) => {
    const parsed = Control.eventBridge.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    service.options.eventBridge = parsed.data ?? undefined;
    return c.json({ eventBridge: parsed.data ? { url: parsed.data.url } : null });
  });
  app.put("/_emulator/network", async (c) => {
    const parsed = Control.network.safeParse(await c.req.json().catch(() => undefined));
    if (!parsed.success) return c.json({ error: z.prettifyError(parsed.error) }, 400);
    networkDown = parsed.data.down;
    // As a cable pulled out: no close frame, the clients see an abnormal closure (1006).
    if (networkDown) for (const socket of sockets.clients) socket.terminate();
    return c.json({ down: networkDown });
  });
  app.post("/_emulator/reset", (c) => {
    Object.assign(state, emptyState(), { signingKey: state.signingKey });
    Object.assign(quotas, defaultQuotas, definedOnly(options.quotas));
    faults = installFaults(options.faults ?? {}).data ?? noFaults();
    metrics.reset();
    service.options.maxPageSize = undefined;
    networkDown = false;
    service.options.endpoints = undefined;
    service.options.eventBridge = undefined;
    persist();
    return c.json({ ok: true });
  });

  // ── participant events hub ───────────────────────────────────────────────
  app.use("/events", async (c, next) => {
    if (networkDown) return c.text("network unreachable", 503);
    await next();
  });
  app.get(
    "/events",
    upgradeWebSocket(() => {
      let connection: Connection | undefined;
      return {
        onMessage: async (event, ws) => {
          const send = (message: LocalServerMessage) => ws.send(JSON.stringify(message));
          const parsed = LocalClientMessage.safeParse(safeJson(String(event.data)));
          if (!parsed.success) return send({ type: "error", code: "BAD_MESSAGE", message: "unrecognised message" });
          const message = parsed.data;
          try {
            if (message.type !== "join" && !connection)
              return send({ type: "error", code: "NOT_JOINED", message: "join first" });
            switch (message.type) {
              case "join": {
                if (connection) throw new AwsError("ConflictException", 409, "already joined");
                connection = await service.connect(message.token, {
                  kick: (reason, text) => {
                    send({ type: "disconnect", reason, message: text });
                    ws.close(4000, text.slice(0, 120));
                  },
                  send,
                });
                send({
                  type: "joined",
                  participantId: connection.participantId,
                  stageArn: connection.stageArn,
                  sessionId: connection.sessionId,
                  participants: service.participantsFor(connection),
                });
                break;
              }
              case "publish":
              case "unpublish":
                service.setPublished(connection!, message.type === "publish");
                send({ type: "published", published: message.type === "publish" });
                break;
              case "signal":
                service.relay(connection!, message.to, message.data);
                break;
              case "exchange":
                send({ type: "exchanged", expiresAt: await service.exchange(connection!, message.token) });
                break;
              default:
                message satisfies never;
            }
          } catch (error) {
            const code =
              error instanceof TokenRejected
                ? 4401
                : error instanceof AwsError
                  ? 4000 + Math.min(error.status - 400, 99)
                  : 4500;
            const reason =
              error instanceof TokenRejected ? error.reason : error instanceof AwsError ? error.type : "internal";
            send({ type: "error", code: reason, message: (error as Error).message });
            // A refused join or token exchange ends the connection, as IVS leaves the stage.
            if (message.type === "join" || message.type === "exchange") ws.close(code, reason);
          }
        },
        onClose: () => {
          if (connection) service.disconnect(connection);
        },
      };
    }),
  );

  // ── the AWS API ──────────────────────────────────────────────────────────
  app.post("/tags/:resourceArn", (c) => handleOperation(c, "TagResource", { resourceArn: c.req.param("resourceArn") }));
  app.delete("/tags/:resourceArn", (c) =>
    handleOperation(c, "UntagResource", {
      resourceArn: c.req.param("resourceArn"),
      tagKeys: c.req.queries("tagKeys") ?? [],
    }),
  );
  app.get("/tags/:resourceArn", (c) =>
    handleOperation(c, "ListTagsForResource", { resourceArn: c.req.param("resourceArn") }),
  );
  app.post("/:operation", (c) => {
    const operation = c.req.param("operation");
    if (
      !isOperation(operation) ||
      operation === "TagResource" ||
      operation === "UntagResource" ||
      operation === "ListTagsForResource"
    ) {
      return awsError(c, new AwsError("UnknownOperationException", 404, `Unknown operation ${operation}.`));
    }
    return handleOperation(c, operation);
  });
  app.notFound((c) => awsError(c, new AwsError("UnknownOperationException", 404, "No such route.")));

  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: options.port ?? 0, hostname: host, websocket: { server: sockets } }, () =>
      resolve(s),
    );
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host}:${port}`;
  service.options.publicUrl = url;

  return {
    url,
    port,
    service,
    close: () =>
      new Promise<void>((resolve) => {
        if (saveTimer) {
          clearTimeout(saveTimer);
          saveTimer = undefined;
          saveState(options.statePath!, state);
        }
        for (const socket of sockets.clients) socket.terminate();
        if ("closeAllConnections" in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Drops absent options so that they do not override defaults. */
function definedOnly<T extends object>(value: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(value ?? {}).filter(([, v]) => v !== undefined)) as Partial<T>;
}
