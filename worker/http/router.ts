import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.ts";
import type { AppEnv } from "./context.ts";
import { ErrorSchema } from "./schemas.ts";

/** A router whose validation failures are 400 VALIDATION_ERROR in the envelope (with `details.missingFields`, as integrators expect). */
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
export const failures = (...statuses: (400 | 401 | 403 | 404 | 409 | 429 | 500 | 502 | 503)[]) =>
  Object.fromEntries(
    statuses.map((s) => [s, { content: { "application/json": { schema: ErrorSchema } }, description: errorText[s] }]),
  );

const errorText = {
  400: "VALIDATION_ERROR",
  401: "UNAUTHORIZED",
  403: "FORBIDDEN: the token given does not prove that participant",
  404: "NOT_FOUND",
  409: "CONFLICT",
  429: "RATE_LIMITED",
  500: "INTERNAL_ERROR",
  502: "TOKEN_GENERATION_FAILED",
  503: "STAGE_FULL, or TOKEN_GENERATION_FAILED when IVS throttles or a quota is used up (with Retry-After)",
};

export const adminSecurity = [{ apiKey: [] }];

export const secondsUntil = (iso: string) => Math.max(0, Math.round((Date.parse(iso) - Date.now()) / 1000));
