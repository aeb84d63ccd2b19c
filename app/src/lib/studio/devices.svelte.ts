import { meterLevel } from "./level-meter.ts";
import { describeMediaError } from "./media-errors.ts";

/**
 * The studio's camera, microphone and screen: device lists and choice,
 * mute and camera-off, screen share, the level meter and a clear message when
 * the browser refuses. Reactive (Svelte runes), so the page only binds to it.
 */
export class StudioDevices {
  cameras = $state<MediaDeviceInfo[]>([]);
  microphones = $state<MediaDeviceInfo[]>([]);
  cameraId = $state("");
  microphoneId = $state("");
  camera = $state<MediaStream>();
  screen = $state<MediaStream>();
  micMuted = $state(false);
  cameraOff = $state(false);
  error = $state<string>();
  level = $state(0);
  readonly supported = typeof RTCPeerConnection !== "undefined" && !!navigator.mediaDevices?.getUserMedia;
  /** Called when the tracks to publish change (camera switched, screen shared). */
  readonly #changed: () => void;
  #stopMeter = () => {};

  constructor(changed: () => void) {
    this.#changed = changed;
  }

  /** The tracks the studio publishes: the screen's video in place of the camera's while sharing. */
  tracks(): MediaStreamTrack[] {
    const video = (this.screen ?? this.camera)?.getVideoTracks()[0];
    const audio = this.camera?.getAudioTracks()[0];
    return [video, audio].filter((t): t is MediaStreamTrack => !!t);
  }

  /** Opens the chosen camera and microphone (the defaults at first), then lists the devices. */
  async open(): Promise<void> {
    if (!this.supported) return;
    this.error = undefined;
    try {
      const next = await navigator.mediaDevices.getUserMedia({
        video: { deviceId: this.cameraId ? { exact: this.cameraId } : undefined, width: 1280, height: 720 },
        audio: { deviceId: this.microphoneId ? { exact: this.microphoneId } : undefined },
      });
      this.camera?.getTracks().forEach((t) => t.stop());
      this.camera = next;
      next.getAudioTracks().forEach((t) => (t.enabled = !this.micMuted));
      next.getVideoTracks().forEach((t) => (t.enabled = !this.cameraOff));
      const devices = await navigator.mediaDevices.enumerateDevices();
      this.cameras = devices.filter((d) => d.kind === "videoinput");
      this.microphones = devices.filter((d) => d.kind === "audioinput");
      this.cameraId = next.getVideoTracks()[0]?.getSettings().deviceId ?? "";
      this.microphoneId = next.getAudioTracks()[0]?.getSettings().deviceId ?? "";
      this.#stopMeter();
      this.#stopMeter = meterLevel(next, (level) => (this.level = this.micMuted ? 0 : level));
      this.#changed();
    } catch (error) {
      this.error = describeMediaError(error);
    }
  }

  toggleMic(): void {
    this.micMuted = !this.micMuted;
    this.camera?.getAudioTracks().forEach((t) => (t.enabled = !this.micMuted));
  }

  toggleCamera(): void {
    this.cameraOff = !this.cameraOff;
    this.camera?.getVideoTracks().forEach((t) => (t.enabled = !this.cameraOff));
  }

  async toggleScreen(): Promise<void> {
    if (this.screen) return this.stopScreen();
    try {
      this.screen = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: false });
      this.screen.getVideoTracks()[0]?.addEventListener("ended", () => this.stopScreen());
      this.#changed();
    } catch (error) {
      // Cancelling the browser's picker is not an error worth a message.
      if ((error as DOMException).name !== "NotAllowedError") this.error = describeMediaError(error);
    }
  }

  stopScreen(): void {
    this.screen?.getTracks().forEach((t) => t.stop());
    this.screen = undefined;
    this.#changed();
  }

  dispose(): void {
    this.#stopMeter();
    this.camera?.getTracks().forEach((t) => t.stop());
    this.screen?.getTracks().forEach((t) => t.stop());
  }
}
