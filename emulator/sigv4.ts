import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { AwsError } from "./errors.ts";

/**
 * AWS Signature Version 4 verification, as the IVS front door does it: the
 * credential scope must name this region and the signing name `ivs`, the
 * access key must be known, the date within five minutes of now, and the
 * signature must match the canonical request rebuilt from what arrived.
 */

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignedRequest {
  method: string;
  /** The path exactly as it arrived, still percent-encoded. */
  rawPath: string;
  /** The query string as it arrived, without the `?`. */
  rawQuery: string;
  headers: Headers;
  body: Uint8Array;
}

export interface VerifyOptions {
  region: string;
  service: string;
  credentials: readonly Credentials[];
  now: Date;
  maxSkewMs?: number;
}

const ALGORITHM = "AWS4-HMAC-SHA256";
const FIVE_MINUTES = 5 * 60 * 1000;

const signatureError = (message: string) => new AwsError("InvalidSignatureException", 403, message);
const incomplete = (message: string) => new AwsError("IncompleteSignatureException", 403, message);

/** Returns the access key id of the caller, or throws the error AWS would answer with. */
export function verifySigV4(request: SignedRequest, options: VerifyOptions): string {
  const authorization = request.headers.get("authorization");
  if (!authorization) {
    throw new AwsError("MissingAuthenticationTokenException", 403, "Missing Authentication Token");
  }
  if (!authorization.startsWith(`${ALGORITHM} `)) {
    throw incomplete(`Authorization header requires the ${ALGORITHM} algorithm.`);
  }
  const fields = parseAuthorization(authorization.slice(ALGORITHM.length + 1));
  const credential = fields.get("Credential");
  const signedHeadersField = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!credential || !signedHeadersField || !signature) {
    throw incomplete("Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.");
  }

  const [accessKeyId, scopeDate, scopeRegion, scopeService, terminator, ...rest] = credential.split("/");
  if (!accessKeyId || !scopeDate || !scopeRegion || !scopeService || terminator !== "aws4_request" || rest.length > 0) {
    throw incomplete(`Credential is malformed: expected '<key>/<date>/<region>/<service>/aws4_request'.`);
  }
  const known = options.credentials.find((c) => c.accessKeyId === accessKeyId);
  if (!known) {
    throw new AwsError("UnrecognizedClientException", 403, "The security token included in the request is invalid.");
  }
  if (scopeService !== options.service) {
    throw signatureError(`Credential should be scoped to correct service: '${options.service}'.`);
  }
  if (scopeRegion !== options.region) {
    throw signatureError(`Credential should be scoped to a valid region, not '${scopeRegion}'.`);
  }

  const amzDate = request.headers.get("x-amz-date");
  if (!amzDate || !/^\d{8}T\d{6}Z$/.test(amzDate)) {
    throw incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  if (amzDate.slice(0, 8) !== scopeDate) {
    throw signatureError(
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${amzDate.slice(0, 8)}'.`,
    );
  }
  const signedAt = Date.parse(
    `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
  );
  const skew = options.maxSkewMs ?? FIVE_MINUTES;
  if (Math.abs(options.now.getTime() - signedAt) > skew) {
    throw signatureError(
      `Signature expired: ${amzDate} is now earlier or later than the allowed window around ${toAmzDate(options.now)}.`,
    );
  }

  const signedHeaders = signedHeadersField.split(";");
  if (!signedHeaders.includes("host")) {
    throw signatureError("'Host' must be a signed header.");
  }
  if (known.sessionToken !== undefined && request.headers.get("x-amz-security-token") !== known.sessionToken) {
    throw new AwsError("UnrecognizedClientException", 403, "The security token included in the request is invalid.");
  }

  const canonical = canonicalRequest(request, signedHeaders);
  const scope = `${scopeDate}/${scopeRegion}/${scopeService}/aws4_request`;
  const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonical)].join("\n");
  let key = hmac(`AWS4${known.secretAccessKey}`, scopeDate);
  for (const part of [scopeRegion, scopeService, "aws4_request"]) key = hmac(key, part);
  const expected = createHmac("sha256", key).update(stringToSign).digest("hex");

  const matches =
    expected.length === signature.length && timingSafeEqual(Buffer.from(expected), Buffer.from(signature));
  if (!matches) {
    throw signatureError(
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
    );
  }
  return accessKeyId;
}

function parseAuthorization(value: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return fields;
}

function canonicalRequest(request: SignedRequest, signedHeaders: string[]): string {
  // Services other than S3 encode each path segment once more on top of what was sent.
  const canonicalUri = request.rawPath.split("/").map(rfc3986).join("/") || "/";
  const canonicalQuery = [...new URLSearchParams(request.rawQuery)]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([ak, av], [bk, bv]) => (ak === bk ? (av < bv ? -1 : av > bv ? 1 : 0) : ak < bk ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${(request.headers.get(name) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const payloadHash = request.headers.get("x-amz-content-sha256") ?? sha256Hex(request.body);
  return [
    request.method.toUpperCase(),
    canonicalUri,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
}

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

export function toAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}
