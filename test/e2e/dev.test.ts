import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startDev, type DevServer } from "../support/dev-server.ts";

/** `npm run dev` as a new user runs it: one command, then a URL that answers. */
describe("npm run dev", () => {
  let dev: DevServer | undefined;
  afterAll(() => dev?.stop());

  it("prints a URL where /health answers and the landing page renders, with no AWS credentials", async () => {
    const env = { ...process.env };
    for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
      delete env[name];
    dev = await startDev([], env);
    expect(dev.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const health = await fetch(`${dev.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ success: true, data: { status: "ok", tokens: "self-signed" } });

    const page = await fetch(`${dev.url}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<!doctype html>");
    expect(html).toMatch(/\/_app\/immutable\/entry\/start\.[\w-]+\.js/);
    // The SPA fallback serves the app for any page path.
    expect((await fetch(`${dev.url}/watch/main`)).status).toBe(200);
    // Its state went where it was told, not into the developer's own .wrangler/.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(join(dev.scratch, "ivs.json"))).toBe(true);
    expect(existsSync(join(dev.scratch, "wrangler"))).toBe(true);
  });
});
