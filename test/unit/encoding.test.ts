import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { AUDIO, SIMULCAST_LAYERS, VIDEO, describeEncoding } from "../../app/src/lib/media/encoding.ts";

/** The installed SDK's limits, read from its own declarations (so an SDK upgrade that narrows them fails here). */
function sdkLimits(): Record<string, number> {
  const require = createRequire(import.meta.url);
  const entry = require.resolve("amazon-ivs-web-broadcast");
  const dts = readFileSync(join(dirname(entry), "amazon-ivs-web-broadcast.d.ts"), "utf8");
  return Object.fromEntries(
    [...dts.matchAll(/export declare const (STAGE_[A-Z_]+) = (\d+);/g)].map((m) => [m[1], Number(m[2])]),
  );
}

describe("the studio's encoding", () => {
  const limits = sdkLimits();

  it("publishes simulcast: at most three layers, the top one at the stream's limits, each within the SDK's bounds", () => {
    expect(VIDEO.simulcast.enabled).toBe(true);
    expect(SIMULCAST_LAYERS.length).toBeGreaterThanOrEqual(2);
    expect(SIMULCAST_LAYERS.length).toBeLessThanOrEqual(3);
    expect(VIDEO.maxVideoBitrateKbps).toBeLessThanOrEqual(limits.STAGE_MAX_BITRATE!);
    expect(VIDEO.maxFramerate).toBeLessThanOrEqual(limits.STAGE_MAX_FRAMERATE!);
    expect(SIMULCAST_LAYERS[0]).toMatchObject({
      maxBitrateKbps: VIDEO.maxVideoBitrateKbps,
      maxFramerate: VIDEO.maxFramerate,
    });
    for (const layer of SIMULCAST_LAYERS) {
      expect(layer.maxBitrateKbps).toBeGreaterThanOrEqual(limits.STAGE_MIN_BITRATE!);
      expect(layer.maxBitrateKbps).toBeLessThanOrEqual(VIDEO.maxVideoBitrateKbps);
      expect(layer.maxFramerate).toBeGreaterThanOrEqual(limits.STAGE_MIN_FRAMERATE!);
      expect(layer.maxFramerate).toBeLessThanOrEqual(VIDEO.maxFramerate);
      expect(Math.max(layer.width, layer.height)).toBeLessThanOrEqual(limits.STAGE_MAX_RESOLUTION!);
      expect(Math.min(layer.width, layer.height)).toBeGreaterThanOrEqual(limits.STAGE_MIN_RESOLUTION!);
      // The SDK refuses layers of mixed aspect ratios.
      expect(layer.width / layer.height).toBeCloseTo(16 / 9, 1);
    }
    const distinct = new Set(SIMULCAST_LAYERS.map((l) => `${l.width}x${l.height}`));
    expect(distinct.size).toBe(SIMULCAST_LAYERS.length);
    expect(VIDEO.simulcast.layers).toEqual(SIMULCAST_LAYERS.map(({ label: _label, ...layer }) => layer));
  });

  it("sends audio within the SDK's bounds, and the studio shows every layer", () => {
    expect(AUDIO.maxAudioBitrateKbps).toBeGreaterThanOrEqual(limits.STAGE_MIN_AUDIO_BITRATE_KBPS!);
    expect(AUDIO.maxAudioBitrateKbps).toBeLessThanOrEqual(limits.STAGE_MAX_AUDIO_BITRATE_KBPS!);
    expect(describeEncoding()).toEqual([
      "720p · 30 fps · up to 2.5 Mbps",
      "360p · 15 fps · up to 600 kbps",
      "180p · 15 fps · up to 150 kbps",
      "Audio · Opus · 96 kbps mono",
    ]);
  });
});
