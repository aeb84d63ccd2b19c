import { SELF, createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";

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
