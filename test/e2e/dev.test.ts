import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "../support/ports.ts";

/** `npm run dev` as a new user runs it: one command, then a URL that answers. */
describe("npm run dev", () => {
  let dev: ChildProcess | undefined;
  afterAll(async () => {
    if (!dev || dev.exitCode !== null) return;
    const exited = new Promise((resolve) => dev!.once("exit", resolve));
    dev.kill("SIGTERM");
    await exited;
  });

  it("prints a URL where /health answers and the landing page renders, with no AWS credentials", async () => {
    const [port, emulatorPort] = [await freePort(), await freePort()];
    const scratch = mkdtempSync(join(tmpdir(), "fanout-dev-"));
    const env = { ...process.env };
    for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
      delete env[name];
    dev = spawn(
      process.execPath,
      [
        "scripts/dev.ts",
        "--port",
        String(port),
        "--emulator-port",
        String(emulatorPort),
        "--emulator-state",
        join(scratch, "ivs.json"),
        "--persist-to",
        join(scratch, "wrangler"),
      ],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    dev.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      dev!.stdout!.on("data", (chunk: Buffer) => {
        output += chunk.toString();
        const match = /Fanout is running at (http:\/\/\S+)/.exec(output);
        if (match) resolve(match[1]!);
      });
      dev!.once("exit", (code) => reject(new Error(`npm run dev exited (${code}):\n${output}`)));
    });
    expect(url).toBe(`http://127.0.0.1:${port}`);

    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ success: true, data: { status: "ok", tokens: "self-signed" } });

    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<!doctype html>");
    expect(html).toMatch(/\/_app\/immutable\/entry\/start\.[\w-]+\.js/);
    // The SPA fallback serves the app for any page path.
    expect((await fetch(`${url}/watch/main`)).status).toBe(200);
    // Its state went where it was told, not into the developer's own .wrangler/.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(existsSync(join(scratch, "ivs.json"))).toBe(true);
    expect(existsSync(join(scratch, "wrangler"))).toBe(true);
  });
});
