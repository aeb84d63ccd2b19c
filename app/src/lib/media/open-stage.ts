import { isIvsEndpoint } from "#protocol/ids.ts";
import { tokenInfo, type OpenStage } from "./stage.ts";

/**
 * The one place that chooses a transport: the IVS Web Broadcast SDK for
 * tokens of real IVS, the local WebRTC transport for the emulator's. Each is
 * loaded on demand, so the SDK (which touches `window` as it loads) is never
 * imported on a page that does not need it. Kept apart from stage.ts so that
 * the transports, which import stage.ts, are not imported back by it.
 */

/**
 * IVS tokens point at AWS's events service (`*.live-video.net`); the
 * emulator's point at its own signalling hub. That is the whole switch.
 */
export function transportFor(token: string): "ivs" | "local" {
  const events = tokenInfo(token).eventsUrl;
  return !events || isIvsEndpoint(events) ? "ivs" : "local";
}

export const openStage: OpenStage = async (token, strategy) => {
  if (transportFor(token) === "local") {
    const { LocalStage } = await import("./local-stage.ts");
    return new LocalStage(token, strategy);
  }
  // The SDK touches `window` when it loads: only ever imported here, in the browser.
  const { ivsStage } = await import("./ivs-stage.ts");
  return ivsStage(token, strategy);
};
