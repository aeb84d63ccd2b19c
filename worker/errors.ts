import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ErrorCode, ErrorEnvelope } from "../protocol/api.ts";

/**
 * The one error type of the API. Its `code` is the contract (SPEC §7); one
 * place (`onError` in index.ts) turns it into the `{ success: false }` envelope.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  readonly details?: Record<string, unknown>;
  /** Seconds, for RATE_LIMITED and STAGE_FULL answers. */
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
