/**
 * What the studio publishes through the IVS Web Broadcast SDK. With one layer
 * (the SDK's default) every viewer receives up to 2.5 Mbps whatever its link;
 * with simulcast ("layered encoding") the SDK encodes three and IVS forwards
 * each viewer the best its connection carries, switching as it changes.
 * AWS supports layered encoding on Chrome and Edge desktop (Web SDK 1.12+);
 * other browsers send the top layer alone. Limits are the SDK's own
 * (STAGE_MAX_BITRATE 2500 kbps, STAGE_MAX_FRAMERATE 30, STAGE_MAX_RESOLUTION
 * 1280, STAGE_MIN_FRAMERATE 10, audio 12–128 kbps), checked by
 * test/unit/encoding.test.ts against the installed SDK's declarations.
 */

export interface Layer {
  label: string;
  width: number;
  height: number;
  maxBitrateKbps: number;
  maxFramerate: number;
}

/** The SDK's own presets DEFAULT_720, DEFAULT_360 and DEFAULT_180: one per kind of link. */
export const SIMULCAST_LAYERS: readonly Layer[] = [
  { label: "720p", width: 1280, height: 720, maxBitrateKbps: 2500, maxFramerate: 30 },
  { label: "360p", width: 640, height: 360, maxBitrateKbps: 600, maxFramerate: 15 },
  { label: "180p", width: 320, height: 180, maxBitrateKbps: 150, maxFramerate: 15 },
];

/** The camera or screen: the top layer's limits, and the layers under it. */
export const VIDEO = {
  maxVideoBitrateKbps: 2500,
  maxFramerate: 30,
  simulcast: {
    enabled: true,
    layers: SIMULCAST_LAYERS.map(({ width, height, maxBitrateKbps, maxFramerate }) => ({
      width,
      height,
      maxBitrateKbps,
      maxFramerate,
    })),
  },
};

/** Opus, mono (stereo would need the microphone's echo cancellation off): 96 kbps carries music as well as speech. */
export const AUDIO = { maxAudioBitrateKbps: 96, stereo: false };

/** One line per layer, for the studio's encoding panel. */
export function describeEncoding(): string[] {
  return [
    ...SIMULCAST_LAYERS.map((l) => `${l.label} · ${l.maxFramerate} fps · up to ${formatKbps(l.maxBitrateKbps)}`),
    `Audio · Opus · ${AUDIO.maxAudioBitrateKbps} kbps ${AUDIO.stereo ? "stereo" : "mono"}`,
  ];
}

const formatKbps = (kbps: number) => (kbps >= 1000 ? `${kbps / 1000} Mbps` : `${kbps} kbps`);
