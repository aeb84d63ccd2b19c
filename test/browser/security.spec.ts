import { expect, test } from "@playwright/test";

/**
 * The pages' security headers, as the real `npm run dev` (Workers Static Assets and
 * app/static/_headers) serves them, and what they do in a browser: the studio cannot be framed
 * by another site, the embed can, and the pages still run under their Content-Security-Policy.
 */

const url = () => process.env.FANOUT_URL!;

test("every page says nosniff and no-referrer; only /embed may be framed", async () => {
  for (const path of ["/", "/studio/sec", "/dashboard/sec", "/watch/sec", "/embed/sec"]) {
    const response = await fetch(`${url()}${path}`);
    expect(response.status, path).toBe(200);
    expect(response.headers.get("x-content-type-options"), path).toBe("nosniff");
    expect(response.headers.get("referrer-policy"), path).toBe("no-referrer");
    const csp = response.headers.get("content-security-policy") ?? "";
    if (path.startsWith("/embed")) {
      expect(csp).toContain("frame-ancestors *");
      expect(response.headers.get("x-frame-options")).toBeNull();
    } else {
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(response.headers.get("x-frame-options"), path).toBe("DENY");
    }
    // Scripts: only this origin and the hash of SvelteKit's bootstrap, no 'unsafe-inline'.
    const html = await response.text();
    const meta = /<meta http-equiv="content-security-policy" content="([^"]+)"/.exec(html)?.[1] ?? "";
    expect(meta, path).toMatch(/script-src 'self' 'sha256-[^']+'/);
    expect(meta, path).not.toMatch(/script-src[^;]*unsafe-inline/);
  }
});

test("another site can frame the player but not the studio", async ({ page }) => {
  // Another site: another origin on this machine (localhost, not 127.0.0.1; Chromium keeps public
  // pages from framing loopback ones), on a document without a policy of its own (a JSON answer).
  await page.goto(`${url().replace("127.0.0.1", "localhost")}/api/health`);
  await page.evaluate((origin) => {
    for (const name of ["studio", "embed"]) {
      const frame = document.createElement("iframe");
      frame.name = name;
      frame.src = `${origin}/${name}/sec`;
      document.body.append(frame);
    }
  }, url());
  // The player loads and runs (it says the broadcast has not started); the studio is refused (Chromium's error page).
  await expect(page.frameLocator('iframe[name="embed"]').getByTestId("player")).toHaveAttribute(
    "data-status",
    "offline",
  );
  await expect.poll(() => page.frame({ name: "studio" })?.url()).toMatch(/^chrome-error:/);
  expect(page.frame({ name: "embed" })?.url()).toBe(`${url()}/embed/sec`);
});
