import { exportSPKI, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { statusOfErrorType } from "../../emulator/errors.ts";
import { inputs } from "../../emulator/schemas.ts";
import { join, signedCall, useEmulator } from "../support/emulator.ts";
import { loadModel, shapeProblems, type Shape } from "../support/model.ts";

const model = loadModel();
const served = Object.keys(inputs);

/** Valid values for the constrained shapes that operations require. */
const samples: Record<string, unknown> = {
  StageArn: "arn:aws:ivs:us-east-1:123456789012:stage/abcdEFGH1234",
  PublicKeyArn: "arn:aws:ivs:us-east-1:123456789012:public-key/abcdEFGH1234",
  ResourceArn: "arn:aws:ivs:us-east-1:123456789012:stage/abcdEFGH1234",
  StageSessionId: "st-abcdefghijklm",
  ParticipantId: "abcdEFGH1234",
  ParticipantTokenId: "abcdEFGH1234",
  Tags: {},
  TagKeyList: ["k"],
};
const { publicKey } = await generateKeyPair("ES384", { extractable: true });
samples.PublicKeyMaterial = await exportSPKI(publicKey);

/** A value that breaks one constraint of a shape, or undefined when it has none we can break. */
function violation(shape: Shape): unknown {
  if (shape.type === "string") {
    if (shape.enum) return "NOT_A_MEMBER";
    if (shape.pattern) return "!! not matching";
    if (shape.max !== undefined) return "a".repeat(shape.max + 1);
  }
  if (shape.type === "integer") {
    if (shape.max !== undefined) return shape.max + 1;
    if (shape.min !== undefined) return shape.min - 1;
  }
  if (shape.type === "list" && shape.max !== undefined) return Array.from({ length: shape.max + 1 }, () => "PUBLISH");
  return undefined;
}

function validInput(operation: string): Record<string, unknown> {
  const shape = model.shapes[model.operations[operation]!.input!.shape]!;
  const input = Object.fromEntries((shape.required ?? []).map((name) => [name, samples[shape.members![name]!.shape]]));
  // Replication from a stage to itself is refused on its own merits.
  if ("destinationStageArn" in input)
    input.destinationStageArn = "arn:aws:ivs:us-east-1:123456789012:stage/otherSTAGE99";
  return input;
}

describe("the emulator against the IVS Real-Time service model", () => {
  const ctx = useEmulator();

  it("serves only operations of the model, at the model's method and URI", () => {
    for (const operation of served) {
      const modelled = model.operations[operation];
      expect(modelled, operation).toBeDefined();
      const uri = modelled!.http.requestUri;
      const route = operation.endsWith("Resource") ? "/tags/{resourceArn}" : `/${operation}`;
      expect(uri, operation).toBe(route);
    }
    expect(model.metadata.signingName).toBe("ivs");
  });

  it("knows every input member of the model, and requires exactly the ones it requires", () => {
    for (const operation of served) {
      const members = Object.keys(model.shapes[model.operations[operation]!.input!.shape]!.members ?? {});
      expect(Object.keys(inputs[operation as keyof typeof inputs].shape).sort(), operation).toEqual(members.sort());
      const required = model.shapes[model.operations[operation]!.input!.shape]!.required ?? [];
      const parsed = inputs[operation as keyof typeof inputs].safeParse({});
      const missing = parsed.success
        ? []
        : parsed.error.issues.filter((i) => i.input === undefined).map((i) => String(i.path[0]));
      expect(new Set(missing), operation).toEqual(new Set(required));
    }
  });

  it("answers each broken constraint of each member with a ValidationException naming it", async () => {
    let checked = 0;
    for (const operation of served.filter((op) => !op.endsWith("Resource"))) {
      const inputShape = model.shapes[model.operations[operation]!.input!.shape]!;
      const base = validInput(operation);
      const baseAnswer = await signedCall(ctx.url, operation, base);
      expect(baseAnswer.type, `${operation} with valid input`).not.toBe("ValidationException");
      for (const [member, ref] of Object.entries(inputShape.members ?? {})) {
        const bad = violation(model.shapes[ref.shape]!);
        if (bad === undefined) continue;
        const answer = await signedCall(ctx.url, operation, { ...base, [member]: bad });
        expect(answer, `${operation}.${member} = ${JSON.stringify(bad).slice(0, 40)}`).toMatchObject({
          status: 400,
          type: "ValidationException",
        });
        expect(String(answer.json.exceptionMessage)).toContain(member);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it("answers every modelled error with the model's status code", () => {
    for (const [type, status] of Object.entries(statusOfErrorType)) {
      const shape = model.shapes[type];
      if (shape?.error) expect(status, type).toBe(shape.error.httpStatusCode);
    }
    for (const operation of served) {
      for (const { shape } of model.operations[operation]!.errors ?? [])
        expect(statusOfErrorType[shape], shape).toBeDefined();
    }
  });

  it("answers with the model's output shapes", async () => {
    const call = async (operation: string, body: Record<string, unknown>) => {
      const answer = await signedCall(ctx.url, operation, body);
      expect(answer.status, `${operation}: ${JSON.stringify(answer.json)}`).toBe(200);
      expect(shapeProblems(model, model.operations[operation]!.output!.shape, answer.json), operation).toEqual([]);
      // Wire JSON, already checked against the model's shape above.
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      return answer.json as Record<string, any>;
    };
    const origin = (
      await call("CreateStage", {
        name: "shapes",
        tags: { a: "b" },
        participantTokenConfigurations: [{ userId: "u", capabilities: ["PUBLISH"] }],
      })
    ).stage;
    const edge = (await call("CreateStage", {})).stage;
    await call("GetStage", { arn: origin.arn });
    await call("ListStages", { maxResults: 1 });
    const { participantToken } = await call("CreateParticipantToken", {
      stageArn: origin.arn,
      attributes: { role: "host" },
    });
    const publisher = join(origin.endpoints.events, participantToken.token);
    await publisher.joined;
    await publisher.publish();
    await call("StartParticipantReplication", {
      sourceStageArn: origin.arn,
      destinationStageArn: edge.arn,
      participantId: participantToken.participantId,
    });
    await call("ListParticipantReplicas", {
      sourceStageArn: origin.arn,
      participantId: participantToken.participantId,
    });
    const { stageSessions } = await call("ListStageSessions", { stageArn: origin.arn });
    await call("GetStageSession", { stageArn: origin.arn, sessionId: stageSessions[0].sessionId });
    await call("ListParticipants", {
      stageArn: edge.arn,
      sessionId: (await call("GetStage", { arn: edge.arn })).stage.activeSessionId,
    });
    await call("GetParticipant", {
      stageArn: origin.arn,
      sessionId: stageSessions[0].sessionId,
      participantId: participantToken.participantId,
    });
    await call("StopParticipantReplication", {
      sourceStageArn: origin.arn,
      destinationStageArn: edge.arn,
      participantId: participantToken.participantId,
    });
    const fresh = await generateKeyPair("ES384", { extractable: true });
    const { publicKey: key } = await call("ImportPublicKey", {
      publicKeyMaterial: await exportSPKI(fresh.publicKey),
      name: "k",
    });
    await call("GetPublicKey", { arn: key.arn });
    await call("ListPublicKeys", {});
    await call("DeletePublicKey", { arn: key.arn });
    await call("DisconnectParticipant", { stageArn: origin.arn, participantId: participantToken.participantId });
    await publisher.closed;
    await call("DeleteStage", { arn: edge.arn });
    await call("DeleteStage", { arn: origin.arn });
  });
});
