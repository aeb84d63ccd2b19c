import { SELF, createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { fetchWith } from "./support.ts";

describe("health", () => {
  it("GET /health answers ok without a key", async () => {
    const response = await SELF.fetch("https://fanout.test/health");
    expect(response.status).toBe(200);
    const body = await response.json<{ success: boolean; data: { status: string; tokens: string } }>();
    expect(body).toMatchObject({ success: true, data: { status: "ok", tokens: "self-signed" } });
  });

  it("GET /api/health answers the same", async () => {
    const response = await SELF.fetch("https://fanout.test/api/health");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ success: true, data: { status: "ok" } });
  });

  it("an unknown API route is a 404 in the envelope", async () => {
    const response = await SELF.fetch("https://fanout.test/api/nope");
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ success: false, error: { code: "NOT_FOUND" } });
  });
});

describe("configuration errors", () => {
  it("a missing secret fails the request with a message naming it, not the value", async () => {
    const { default: worker } = await import("../../worker/index.ts");
    const broken = { ...env, AWS_SECRET_ACCESS_KEY: undefined };
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request("https://fanout.test/health"), broken, ctx);
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(500);
    const body = await response.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("INTERNAL_ERROR");
    expect(body.error.message).toContain("AWS_SECRET_ACCESS_KEY");
    expect(JSON.stringify(body)).not.toContain(env.AWS_ACCESS_KEY_ID!);
  });
});

describe("the token key, checked by /health as IVS will check it", () => {
  const healthWith = async (vars: Record<string, string>) => {
    const response = await fetchWith(vars, "/health");
    return { status: response.status, body: await response.json<{ error?: { code: string; message: string } }>() };
  };

  it("a key that is not a P-384 private key fails /health naming TOKEN_PRIVATE_KEY, not quoting it", async () => {
    const { status, body } = await healthWith({ TOKEN_PRIVATE_KEY: "bm90IGEga2V5" });
    expect(status).toBe(500);
    expect(body.error!.message).toContain("TOKEN_PRIVATE_KEY");
    expect(JSON.stringify(body)).not.toContain("bm90IGEga2V5");
  });

  it("a key that is not the pair of TOKEN_KEY_ARN's public key fails /health: IVS would refuse every token", async () => {
    const { exportPKCS8, generateKeyPair } = await import("jose");
    const other = await generateKeyPair("ES384", { extractable: true });
    const { status, body } = await healthWith({ TOKEN_PRIVATE_KEY: await exportPKCS8(other.privateKey) });
    expect(status).toBe(500);
    expect(body.error!.message).toMatch(/TOKEN_PRIVATE_KEY does not match the public key IVS has/);
  });

  it("a TOKEN_KEY_ARN IVS does not have fails /health naming it", async () => {
    const { status, body } = await healthWith({
      TOKEN_KEY_ARN: "arn:aws:ivs:us-east-1:123456789012:public-key/doesNotExist1",
    });
    expect(status).toBe(500);
    expect(body.error!.message).toContain("TOKEN_KEY_ARN");
  });
});
