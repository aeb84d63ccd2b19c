import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorCode, ErrorEnvelope } from "../protocol/api.ts";
import type { Failure, Result } from "./broadcast/contract.ts";

/**
 * The one error type of the API. Its `code` is the contract (README.md, the
 * error table); one place (`onError` in index.ts) turns it into the
 * `{ success: false }` envelope.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly details?: Record<string, unknown>;
  /** Seconds, for RATE_LIMITED, STAGE_FULL and throttled IVS answers. */
  readonly retryAfter?: number;

  constructor(
    code: ErrorCode,
    status: ContentfulStatusCode,
    message: string,
    options: { details?: Record<string, unknown>; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = status;
    this.details = options.details;
    this.retryAfter = options.retryAfter;
  }
}

export function errorEnvelope(error: ApiError): ErrorEnvelope {
  return {
    success: false,
    error: { code: error.code, message: error.message, ...(error.details && { details: error.details }) },
  };
}

/**
 * A Broadcast failure as the API answers it, in one place: NOT_FOUND 404,
 * CONFLICT 409, IVS throttling or quota 503 with Retry-After, any other IVS
 * refusal 502. Never a 500 for something IVS did.
 */
export function apiError(failure: Failure): ApiError {
  switch (failure.code) {
    case "NOT_FOUND":
      return new ApiError("NOT_FOUND", 404, failure.message);
    case "CONFLICT":
      return new ApiError("CONFLICT", 409, failure.message);
    case "IVS_BUSY":
      return new ApiError("TOKEN_GENERATION_FAILED", 503, failure.message, { retryAfter: failure.retryAfterSeconds });
    case "IVS_REFUSED":
      return new ApiError("TOKEN_GENERATION_FAILED", 502, failure.message);
    default:
      return failure.code satisfies never;
  }
}

/** A Broadcast RPC's value, or the API error its failure means. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw apiError(result.failure);
}
