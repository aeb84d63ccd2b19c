import createClient from "openapi-fetch";
import type { ErrorEnvelope } from "#protocol/api.ts";
import type { paths as DeploymentPaths } from "./deployment.d.ts";
import type { paths } from "./schema.d.ts";

/**
 * The pages' one way to the API: openapi-fetch typed by the files that
 * `npm run api:types` generates from the Worker's route schemas: a broadcast's
 * routes (`/api/broadcasts/<id>/...`, schema.d.ts) and the deployment's
 * (`/api/health`, `/api/broadcasts`, deployment.d.ts).
 */

export type BroadcastApi = ReturnType<typeof broadcastApi>;

export function broadcastApi(
  broadcastId: string,
  options: { key?: () => string | undefined; origin?: string; fetch?: typeof fetch } = {},
) {
  const origin = options.origin ?? location.origin;
  const client = createClient<paths>({
    baseUrl: `${origin}/api/broadcasts/${encodeURIComponent(broadcastId)}`,
    fetch: options.fetch,
  });
  client.use({
    onRequest({ request }) {
      // A key (admin, or viewer) goes in a header, never in a URL: secrets never go in URLs or logs.
      const key = options.key?.();
      if (key) request.headers.set("x-api-key", key);
      return request;
    },
  });
  return client;
}

/** The deployment's routes, which belong to no broadcast; the list of broadcasts needs the admin key. */
export function deploymentApi(options: { key?: () => string | undefined; origin?: string; fetch?: typeof fetch } = {}) {
  const client = createClient<DeploymentPaths>({
    baseUrl: `${options.origin ?? location.origin}/api`,
    fetch: options.fetch,
  });
  client.use({
    onRequest({ request }) {
      const key = options.key?.();
      if (key) request.headers.set("x-api-key", key);
      return request;
    },
  });
  return client;
}

/** An API error answer (or no answer at all), with what a page shows and whether to retry. */
export class ApiFailure extends Error {
  readonly code: string;
  readonly status: number;
  readonly retryAfterSeconds?: number;
  constructor(code: string, status: number, message: string, retryAfterSeconds?: number) {
    super(message);
    this.code = code;
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/** The `data` of a success envelope, or an ApiFailure with the envelope's code and message. */
export async function unwrap<T>(
  call: Promise<{ data?: { success: true; data: T }; error?: unknown; response: Response }>,
): Promise<T> {
  let answer: Awaited<typeof call>;
  try {
    answer = await call;
  } catch {
    throw new ApiFailure("NETWORK", 0, "The Fanout API is not reachable. Check your connection.");
  }
  if (answer.data) return answer.data.data;
  const retryAfter = Number(answer.response.headers.get("Retry-After")) || undefined;
  const envelope = answer.error as Partial<ErrorEnvelope> | undefined;
  const error = envelope?.error;
  throw new ApiFailure(
    error?.code ?? "HTTP_ERROR",
    answer.response.status,
    error?.message ?? `The API answered ${answer.response.status}.`,
    retryAfter,
  );
}

/** The WebSocket endpoints (not part of the OpenAPI document), on this origin. */
export function socketUrl(
  broadcastId: string,
  path: "/ws" | "/viewer/ws",
  query: Record<string, string>,
  origin: string = location.origin,
): string {
  const url = new URL(`/api/broadcasts/${encodeURIComponent(broadcastId)}${path}`, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
  return url.toString();
}
