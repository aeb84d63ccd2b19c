import { ListStagesCommand } from "@aws-sdk/client-ivs-realtime";
import { AwsClient } from "aws4fetch";
import { describe, expect, it } from "vitest";
import { LOCAL_CREDENTIALS } from "../../emulator/credentials.ts";
import { sdkClient, useEmulator } from "../support/emulator.ts";

/** Signs as aws4fetch would with the given overrides, and answers status, error type and message. */
async function callSigned(
  url: string,
  overrides: { service?: string; region?: string; secretAccessKey?: string; accessKeyId?: string; datetime?: string },
) {
  const aws = new AwsClient({
    accessKeyId: overrides.accessKeyId ?? LOCAL_CREDENTIALS.accessKeyId,
    secretAccessKey: overrides.secretAccessKey ?? LOCAL_CREDENTIALS.secretAccessKey,
    service: overrides.service ?? "ivs",
    region: overrides.region ?? "us-east-1",
    retries: 0,
  });
  const request = await aws.sign(`${url}/ListStages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
    aws: overrides.datetime ? { datetime: overrides.datetime } : {},
  });
  const response = await fetch(request);
  const body = (await response.json()) as { message?: string; exceptionMessage?: string };
  return {
    status: response.status,
    type: response.headers.get("x-amzn-ErrorType"),
    message: body.message ?? body.exceptionMessage,
  };
}

const amzDate = (date: Date) =>
  date
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");

describe("SigV4 verification in the emulator", () => {
  const ctx = useEmulator();

  it("accepts a request signed with signing name ivs", async () => {
    expect((await callSigned(ctx.url, {})).status).toBe(200);
  });

  it("rejects a request signed for ivsrealtime, the name aws4fetch would guess", async () => {
    const answer = await callSigned(ctx.url, { service: "ivsrealtime" });
    expect(answer).toMatchObject({ status: 403, type: "InvalidSignatureException" });
    expect(answer.message).toMatch(/correct service: 'ivs'/);
  });

  it("rejects a signature made with the wrong secret", async () => {
    const answer = await callSigned(ctx.url, { secretAccessKey: "not-the-secret" });
    expect(answer).toMatchObject({ status: 403, type: "InvalidSignatureException" });
    expect(answer.message).toMatch(/does not match/);
  });

  it("rejects a request signed more than five minutes ago", async () => {
    const answer = await callSigned(ctx.url, { datetime: amzDate(new Date(Date.now() - 6 * 60_000)) });
    expect(answer).toMatchObject({ status: 403, type: "InvalidSignatureException" });
    expect(answer.message).toMatch(/Signature expired/);
  });

  it("rejects a credential scoped to another region", async () => {
    expect(await callSigned(ctx.url, { region: "eu-west-1" })).toMatchObject({
      status: 403,
      type: "InvalidSignatureException",
    });
  });

  it("rejects an unknown access key", async () => {
    expect(await callSigned(ctx.url, { accessKeyId: "AKIAUNKNOWN000000000" })).toMatchObject({
      status: 403,
      type: "UnrecognizedClientException",
    });
  });

  it("rejects an unsigned request", async () => {
    const response = await fetch(`${ctx.url}/ListStages`, { method: "POST", body: "{}" });
    expect(response.status).toBe(403);
    expect(response.headers.get("x-amzn-ErrorType")).toBe("MissingAuthenticationTokenException");
  });

  it("rejects a body changed after signing", async () => {
    const aws = new AwsClient({ ...LOCAL_CREDENTIALS, service: "ivs", region: "us-east-1", retries: 0 });
    const signed = await aws.sign(`${ctx.url}/ListStages`, { method: "POST", body: '{"maxResults":1}' });
    const tampered = await fetch(signed.url, { method: "POST", headers: signed.headers, body: '{"maxResults":2}' });
    expect(tampered.status).toBe(403);
  });

  it("the AWS SDK's own signing passes", async () => {
    const answer = await sdkClient(ctx.url).send(new ListStagesCommand({}));
    expect(answer.$metadata.httpStatusCode).toBe(200);
  });
});
