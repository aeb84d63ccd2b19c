/**
 * A failed IVS call. `type` is AWS's `x-amzn-ErrorType` (or `NetworkError` /
 * `TimeoutError` when no answer came); `kind` groups it for callers, who must
 * tell a quota (402) from throttling (429), not-found (404), conflict (409)
 * and bad input (400).
 */
export type IvsErrorKind =
  "validation" | "access_denied" | "not_found" | "conflict" | "quota" | "throttled" | "server" | "network" | "timeout";

export class IvsError extends Error {
  readonly operation: string;
  readonly type: string;
  /** HTTP status, or 0 when no answer came. */
  readonly status: number;
  readonly kind: IvsErrorKind;

  constructor(operation: string, type: string, status: number, message: string, options?: { cause?: unknown }) {
    super(`IVS ${operation} failed: ${type}${message ? `: ${message}` : ""}`, options);
    this.name = "IvsError";
    this.operation = operation;
    this.type = type;
    this.status = status;
    this.kind = kindOf(type, status);
  }

  /** Worth another try: throttling, a server-side failure, or no answer at all. */
  get retryable(): boolean {
    return this.kind === "throttled" || this.kind === "server" || this.kind === "network" || this.kind === "timeout";
  }
}

function kindOf(type: string, status: number): IvsErrorKind {
  if (type === "TimeoutError") return "timeout";
  if (status === 0) return "network";
  if (status === 402 || type === "ServiceQuotaExceededException") return "quota";
  if (status === 429 || type === "ThrottlingException") return "throttled";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 403) return "access_denied";
  if (status >= 500) return "server";
  return "validation";
}

/** AWS sends `Type:namespace` in some answers; callers compare the bare name. */
export function errorTypeFromHeader(header: string | null): string | undefined {
  return header?.split(":")[0]?.trim() || undefined;
}
