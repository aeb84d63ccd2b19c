import { z } from "zod";
import { STAGE_ARN_PATTERN } from "../protocol/ids.ts";

/**
 * Request shapes of the operations the emulator serves, written to the
 * constraints of the IVS Real-Time service model (ivs-realtime 2020-07-14).
 * test/emulator/model-conformance.test.ts checks them against the model itself.
 */

// The model's patterns are whole-value matches.
const pattern = (source: string) => new RegExp(`^(?:${source})$`);

export const StageArn = z.string().min(1).max(128).regex(STAGE_ARN_PATTERN);
export const PublicKeyArn = z
  .string()
  .min(1)
  .max(128)
  .regex(pattern("arn:aws:ivs:[a-z0-9-]+:[0-9]+:public-key/[a-zA-Z0-9-]+"));
// The model's generic ResourceArn pattern allows one character before the slash, which no real ARN
// has; this is the shape real resource ARNs take.
export const ResourceArn = z
  .string()
  .min(1)
  .max(128)
  .regex(pattern("arn:aws:ivs:[a-z0-9-]+:[0-9]+:[a-z-]+/[a-zA-Z0-9-]+"));
const Name = z.string().max(128).regex(pattern("[a-zA-Z0-9-_]*"));
const PaginationToken = z.string().max(1024).regex(pattern("[a-zA-Z0-9+/=_-]*"));
const maxResults = (max: number) => z.number().int().min(1).max(max);
const Tags = z
  .record(z.string().min(1).max(128), z.string().max(256))
  .refine((tags) => Object.keys(tags).length <= 50, "Member must have at most 50 entries");
const Attributes = z.record(z.string(), z.string());
const Capabilities = z.array(z.enum(["PUBLISH", "SUBSCRIBE"])).max(2);
const Duration = z.number().int().min(1).max(20160);
const UserId = z.string().max(128);
const ParticipantId = z.string().max(64).regex(pattern("[a-zA-Z0-9-]*"));
const ParticipantTokenId = z.string().max(64).regex(pattern("[a-zA-Z0-9-_]*"));
const StageSessionId = z.string().min(16).max(16).regex(pattern("st-[a-zA-Z0-9]+"));
const PublicKeyMaterial = z
  .string()
  .regex(/-----BEGIN PUBLIC KEY-----\r?\n([a-zA-Z0-9+/=\r\n]+)\r?\n-----END PUBLIC KEY-----(\r?\n)?/s);

// The emulator records nothing and has no storage configurations: only "" (recording off) is accepted.
const AutoParticipantRecordingConfiguration = z
  .object({ storageConfigurationArn: z.string().max(128) })
  .loose()
  .refine((c) => c.storageConfigurationArn === "", {
    message: "Storage configuration not found: the emulator does not record participants",
    path: ["storageConfigurationArn"],
  });

export const ParticipantTokenConfiguration = z.object({
  duration: Duration.optional(),
  userId: UserId.optional(),
  attributes: Attributes.optional(),
  capabilities: Capabilities.optional(),
});

export const inputs = {
  CreateStage: z.object({
    name: Name.optional(),
    participantTokenConfigurations: z.array(ParticipantTokenConfiguration).max(12).optional(),
    tags: Tags.optional(),
    autoParticipantRecordingConfiguration: AutoParticipantRecordingConfiguration.optional(),
  }),
  GetStage: z.object({ arn: StageArn }),
  UpdateStage: z.object({
    arn: StageArn,
    name: Name.optional(),
    autoParticipantRecordingConfiguration: AutoParticipantRecordingConfiguration.optional(),
  }),
  DeleteStage: z.object({ arn: StageArn }),
  ListStages: z.object({ nextToken: PaginationToken.optional(), maxResults: maxResults(100).optional() }),
  CreateParticipantToken: z.object({
    stageArn: StageArn,
    duration: Duration.optional(),
    userId: UserId.optional(),
    attributes: Attributes.optional(),
    capabilities: Capabilities.optional(),
  }),
  ListParticipants: z.object({
    stageArn: StageArn,
    sessionId: StageSessionId,
    filterByUserId: UserId.optional(),
    filterByPublished: z.boolean().optional(),
    filterByState: z.enum(["CONNECTED", "DISCONNECTED"]).optional(),
    nextToken: PaginationToken.optional(),
    maxResults: maxResults(100).optional(),
    filterByRecordingState: z.enum(["STARTING", "ACTIVE", "STOPPING", "STOPPED", "FAILED"]).optional(),
  }),
  GetParticipant: z.object({ stageArn: StageArn, sessionId: StageSessionId, participantId: ParticipantId }),
  ListParticipantEvents: z.object({
    stageArn: StageArn,
    sessionId: StageSessionId,
    participantId: ParticipantId,
    nextToken: PaginationToken.optional(),
    maxResults: maxResults(100).optional(),
  }),
  DisconnectParticipant: z.object({
    stageArn: StageArn,
    participantId: ParticipantTokenId,
    reason: z.string().max(128).optional(),
  }),
  ListStageSessions: z.object({
    stageArn: StageArn,
    nextToken: PaginationToken.optional(),
    maxResults: maxResults(100).optional(),
  }),
  GetStageSession: z.object({ stageArn: StageArn, sessionId: StageSessionId }),
  StartParticipantReplication: z.object({
    sourceStageArn: StageArn,
    destinationStageArn: StageArn,
    participantId: ParticipantId,
    reconnectWindowSeconds: z.number().int().min(0).max(300).optional(),
    attributes: Attributes.optional(),
  }),
  StopParticipantReplication: z.object({
    sourceStageArn: StageArn,
    destinationStageArn: StageArn,
    participantId: ParticipantId,
  }),
  ListParticipantReplicas: z.object({
    sourceStageArn: StageArn,
    participantId: ParticipantId,
    nextToken: PaginationToken.optional(),
    maxResults: maxResults(50).optional(),
  }),
  ImportPublicKey: z.object({ publicKeyMaterial: PublicKeyMaterial, name: Name.optional(), tags: Tags.optional() }),
  GetPublicKey: z.object({ arn: PublicKeyArn }),
  DeletePublicKey: z.object({ arn: PublicKeyArn }),
  ListPublicKeys: z.object({ nextToken: PaginationToken.optional(), maxResults: maxResults(100).optional() }),
  TagResource: z.object({ resourceArn: ResourceArn, tags: Tags }),
  UntagResource: z.object({ resourceArn: ResourceArn, tagKeys: z.array(z.string().min(1).max(128)).min(1).max(50) }),
  ListTagsForResource: z.object({ resourceArn: ResourceArn }),
} as const;

export type OperationName = keyof typeof inputs;
export type Input<O extends OperationName> = z.infer<(typeof inputs)[O]>;

export const isOperation = (name: string): name is OperationName => Object.hasOwn(inputs, name);

/** Zod issues in the words AWS uses for a ValidationException. */
export function describeIssues(error: z.ZodError): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.join(".") || "body";
    const constraint =
      issue.code === "invalid_type" && issue.input === undefined
        ? "Member must not be null"
        : issue.code === "invalid_format"
          ? "Member must satisfy regular expression pattern"
          : issue.message;
    return `Value at '${path}' failed to satisfy constraint: ${constraint}`;
  });
  const n = lines.length;
  return `${n} validation error${n === 1 ? "" : "s"} detected: ${lines.join("; ")}`;
}
