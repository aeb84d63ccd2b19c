import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Outcome } from "../broadcast/broadcast.ts";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";
import { ErrorSchema } from "./schemas.ts";

/** A router whose validation failures are 400 VALIDATION_ERROR in the envelope (seed 003's `details.missingFields`). */
export function router() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationError(result.error);
    },
  });
}

export function validationError(error: z.ZodError): ApiError {
  const missingFields = [
    ...new Set(
      error.issues.filter((i) => i.code === "invalid_type" && i.input === undefined).map((i) => i.path.join(".")),
    ),
  ];
  const issues = error.issues.map((i) => ({ field: i.path.join("."), message: i.message }));
  const message = missingFields.length
    ? `Missing required field${missingFields.length > 1 ? "s" : ""}: ${missingFields.join(", ")}.`
    : `Invalid request: ${issues.map((i) => `${i.field || "body"} ${i.message}`).join("; ")}.`;
  return new ApiError("VALIDATION_ERROR", 400, message, {
    details: { ...(missingFields.length && { missingFields }), issues },
  });
}

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});

export const ok = <T extends z.ZodType>(schema: T, description: string) => ({
  200: {
    content: { "application/json": { schema: z.object({ success: z.literal(true), data: schema }) } },
    description,
  },
});

/** The error answers every route can give, for the OpenAPI document. */
export const failures = (...statuses: (400 | 401 | 404 | 429 | 500 | 502 | 503)[]) =>
  Object.fromEntries(
    statuses.map((s) => [s, { content: { "application/json": { schema: ErrorSchema } }, description: errorText[s] }]),
  );

const errorText = {
  400: "VALIDATION_ERROR",
  401: "UNAUTHORIZED",
  404: "NOT_FOUND",
  429: "RATE_LIMITED",
  500: "INTERNAL_ERROR",
  502: "TOKEN_GENERATION_FAILED",
  503: "STAGE_FULL or TOKEN_GENERATION_FAILED (with Retry-After)",
};

export const adminSecurity = [{ apiKey: [] }];

/** Turns a Broadcast DO outcome into its value or the API error it means. */
export function unwrap<T>(outcome: Outcome<T>): T {
  if (outcome.ok) return outcome.value;
  switch (outcome.kind) {
    case "not_found":
      throw new ApiError("NOT_FOUND", 404, outcome.message);
    case "conflict":
      throw new ApiError("VALIDATION_ERROR", 409, outcome.message);
    case "ivs":
      throw new ApiError("TOKEN_GENERATION_FAILED", 502, outcome.message);
    default:
      throw outcome.kind satisfies never;
  }
}

export const secondsUntil = (iso: string) => Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
