/**
 * The HTTP API's wire types (SPEC §7), shared by the Worker and the pages.
 * Types only: nothing here runs, so either side can import it.
 */

export type ErrorCode =
  | "VALIDATION_ERROR"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "RATE_LIMITED"
  | "STAGE_FULL"
  | "TOKEN_GENERATION_FAILED"
  | "INTERNAL_ERROR";

export interface SuccessEnvelope<T> {
  success: true;
  data: T;
}

export interface ErrorEnvelope {
  success: false;
  error: { code: ErrorCode; message: string; details?: Record<string, unknown> };
}

export type Envelope<T> = SuccessEnvelope<T> | ErrorEnvelope;

/** `GET /health`, `GET /api/health`. */
export interface Health {
  status: "ok";
  region: string;
  tokens: "self-signed" | "api";
  mode: "replica" | "direct";
  time: string;
}
