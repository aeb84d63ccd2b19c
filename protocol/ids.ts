/**
 * The identifiers Fanout passes around, and their patterns, defined once for
 * the Worker, the pages and the emulator: broadcast ids (they name a Durable
 * Object and a share link), IVS stage ARNs and the stage id at their end.
 */

/** Lowercase letters, digits and dashes, 1 to 64: safe in a URL path and as a Durable Object name. */
export const BROADCAST_ID_PATTERN = /^[a-z0-9-]{1,64}$/;
export const BROADCAST_ID_RULE = "A broadcast id is 1 to 64 lowercase letters, digits or dashes.";
/** The broadcast the unprefixed routes (`/api/token/viewer`, ...) act on. */
export const DEFAULT_BROADCAST = "main";

export const isBroadcastId = (id: string): boolean => BROADCAST_ID_PATTERN.test(id);

/**
 * Whether an endpoint is Amazon IVS's own (`*.live-video.net`) rather than the
 * emulator's: the pages choose the IVS SDK by it, the Worker AWS's WHIP endpoint.
 */
export function isIvsEndpoint(url: string): boolean {
  const host = new URL(url).hostname;
  return host === "live-video.net" || host.endsWith(".live-video.net");
}

const STAGE_ARN_PREFIX = String.raw`arn:aws:ivs:[a-z0-9-]+:[0-9]+:stage\/`;
const STAGE_ID = "[a-zA-Z0-9-]+";

/** The AWS service model's StageArn pattern. */
export const STAGE_ARN_PATTERN = new RegExp(`^${STAGE_ARN_PREFIX}${STAGE_ID}$`);
/** A stage named in a path: its full ARN or just its id. */
export const STAGE_ARN_OR_ID_PATTERN = new RegExp(`^(${STAGE_ARN_PREFIX})?${STAGE_ID}$`);

/** The stage id: the last segment of a stage ARN (the `topic` claim of a participant token). */
export function stageIdOf(stageArn: string): string {
  return stageArn.slice(stageArn.lastIndexOf("/") + 1);
}

/** IVS's participant id (the AWS service model's ParticipantId pattern; no underscore), at least one character. */
export const PARTICIPANT_ID_PATTERN = /^[a-zA-Z0-9-]{1,64}$/;

/** IVS takes any text up to 128 characters as a user id; control characters (newlines, NUL, escapes) are refused here. */
export const USER_ID_MAX = 128;
export const USER_ID_RULE = "A user id is 1 to 128 characters of text, without control characters.";
export function isUserId(id: string): boolean {
  const length = [...id].length;
  return length >= 1 && length <= USER_ID_MAX && id.isWellFormed() && !/\p{Cc}/u.test(id);
}
