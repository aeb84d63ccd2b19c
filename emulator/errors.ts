/**
 * An error the emulator answers with, in the IVS wire format: status code, the
 * `x-amzn-ErrorType` header and a `{ exceptionMessage }` body, as the AWS service model says.
 */
export class AwsError extends Error {
  readonly type: string;
  readonly status: number;

  constructor(type: string, status: number, message: string) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

/** The modelled IVS Real-Time exceptions, with the model's status codes. */
export const modelled = {
  validation: (message: string) => new AwsError("ValidationException", 400, message),
  accessDenied: (message: string) => new AwsError("AccessDeniedException", 403, message),
  pendingVerification: (message: string) => new AwsError("PendingVerification", 403, message),
  notFound: (message: string) => new AwsError("ResourceNotFoundException", 404, message),
  conflict: (message: string) => new AwsError("ConflictException", 409, message),
  quota: (message: string) => new AwsError("ServiceQuotaExceededException", 402, message),
  internal: (message: string) => new AwsError("InternalServerException", 500, message),
};

/** The status code a modelled exception travels with (for injected faults). */
export const statusOfErrorType: Record<string, number> = {
  ValidationException: 400,
  AccessDeniedException: 403,
  PendingVerification: 403,
  ResourceNotFoundException: 404,
  ConflictException: 409,
  ServiceQuotaExceededException: 402,
  InternalServerException: 500,
  ThrottlingException: 429,
  ServiceUnavailableException: 503,
};

const MODELLED_ERRORS = new Set([
  "ValidationException",
  "AccessDeniedException",
  "PendingVerification",
  "ResourceNotFoundException",
  "ConflictException",
  "ServiceQuotaExceededException",
  "InternalServerException",
]);

export const isModelledError = (type: string) => MODELLED_ERRORS.has(type);
