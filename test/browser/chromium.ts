import { existsSync } from "node:fs";

/**
 * The browser to drive: CHROMIUM_PATH when set, else the system Chromium or
 * Chrome (Debian's /usr/bin/chromium in CI, installed by .ci/run), else
 * Playwright's own download if a developer has one. No browser is a failure
 * at launch, never a skipped test.
 */
export function chromiumPath(): string | undefined {
  const candidates = [
    process.env.CHROMIUM_PATH,
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
  ];
  return candidates.find((path): path is string => !!path && existsSync(path));
}

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // A 640x480 moving test pattern and a beep, allowed without a prompt.
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  // Local media between tabs over 127.0.0.1 only (see loopbackFirst in app/src/lib/media/local-stage.ts).
  "--allow-loopback-in-peer-connection",
  // No name resolves but loopback's: the IVS SDK's endpoints (*.live-video.net) fail here at once, and
  // nothing a page loads can reach past this machine.
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  // Background tabs keep playing at full rate (three viewers in one browser).
  "--disable-background-timer-throttling",
  "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows",
];
