import { expect, test, type Page } from "@playwright/test";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { adminKey, expectPlaying, fanoutUrl, publishAsObs } from "./support.ts";

/**
 * An integrator's own front end: examples/viewer (plain HTML and JavaScript) served from another
 * origin, playing a broadcast through Fanout's HTTP API with CORS and HTTP heartbeats only. The
 * origin it is served from is the one CORS_ORIGINS allows (global-setup.ts); served from any
 * other, the browser refuses its calls.
 */

const url = fanoutUrl;
const broadcastId = `example-${Date.now().toString(36)}`;
const EXAMPLE = fileURLToPath(new URL("../../examples/viewer/", import.meta.url));

/** A static server for the example, as an integrator's own site would be. */
async function serveExample(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    const file = new URL(req.url!, "http://x").pathname === "/viewer.js" ? "viewer.js" : "index.html";
    res.setHeader("content-type", file.endsWith(".js") ? "text/javascript" : "text/html");
    res.end(readFileSync(`${EXAMPLE}${file}`));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return server;
}

/** A publisher with Fanout's OBS token: the broadcast is live without the studio. */
async function broadcasting(page: Page) {
  const response = await fetch(`${url()}/api/broadcasts/${broadcastId}/token/publisher`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": adminKey() },
    body: JSON.stringify({ userId: "host", encoder: "obs" }),
  });
  const { data } = await response.json();
  await page.goto(`${url()}/api/health`);
  await publishAsObs(page, data.token as string);
}

test.describe.configure({ mode: "serial" });

test.describe("the example viewer on another origin", () => {
  const servers: Server[] = [];
  test.afterAll(() => {
    for (const server of servers) server.close();
  });

  test("plays the broadcast through the HTTP API with CORS, heartbeating over HTTP only", async ({ browser }) => {
    const publisher = await browser.newPage();
    await broadcasting(publisher);
    servers.push(await serveExample(Number(process.env.FANOUT_EXAMPLE_PORT)));
    const page = await browser.newPage();
    const sockets: string[] = [];
    page.on("websocket", (ws) => sockets.push(ws.url()));
    const heartbeat = page.waitForRequest((r) => r.url().endsWith("/viewer/heartbeat") && r.method() === "POST", {
      timeout: 45_000,
    });
    const example = `http://127.0.0.1:${process.env.FANOUT_EXAMPLE_PORT}/`;
    await page.goto(`${example}?fanout=${encodeURIComponent(url())}&broadcast=${broadcastId}`);
    await expectPlaying(page.locator("#video"));
    await expect(page.locator("#status")).toHaveAttribute("data-status", "live");
    // Presence by HTTP heartbeats, answered across origins; no Fanout socket (only the media hub's).
    const answer = await (await heartbeat).response();
    expect(answer?.status()).toBe(200);
    expect(await answer?.headerValue("access-control-allow-origin")).toBe(example.slice(0, -1));
    expect(sockets.filter((s) => s.startsWith(url().replace(/^http/, "ws")))).toEqual([]);
    await page.close();
    await publisher.close();
  });

  test("served from an origin CORS_ORIGINS does not allow, its calls are refused by the browser", async ({
    browser,
  }) => {
    const other = await serveExample(0);
    servers.push(other);
    const page = await browser.newPage();
    const refused: string[] = [];
    page.on("requestfailed", (r) => refused.push(r.url()));
    const port = (other.address() as AddressInfo).port;
    await page.goto(`http://127.0.0.1:${port}/?fanout=${encodeURIComponent(url())}&broadcast=${broadcastId}`);
    await expect.poll(() => refused.some((u) => u.endsWith("/token/viewer")), { timeout: 15_000 }).toBe(true);
    await expect(page.locator("#status")).toHaveAttribute("data-status", "waiting");
    await expect(page.locator("#status")).toContainText(/fetch/i);
    await page.close();
  });
});
