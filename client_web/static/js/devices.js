// @ts-check
/**
 * Camera and microphone: open them, list them, measure the microphone level, and say in plain
 * words what to do when the browser refuses. The page owns the elements; this module only
 * fills the ones it is given (a <video> for the preview, <select>s for the pickers).
 */

import { t } from "./i18n.js";

/** @typedef {{audioDeviceId?: string, videoDeviceId?: string}} DeviceChoice */

/**
 * @typedef {object} MediaProblem
 * @property {"denied" | "missing" | "busy" | "insecure" | "unsupported" | "other"} kind
 * @property {string} title  one short sentence
 * @property {string} help  what the person can do about it
 */

/** The camera size we ask for: enough for a face, light on a phone's uplink. */
const VIDEO_CONSTRAINTS = Object.freeze({ width: { ideal: 640 }, height: { ideal: 480 } });
const LEVEL_INTERVAL_MS = 100;

/**
 * getUserMedia constraints for a device choice ("" or undefined: the browser's default).
 * @param {DeviceChoice} choice
 * @param {{audio?: boolean, video?: boolean}} [want]
 * @returns {MediaStreamConstraints}
 */
export function constraintsFor(choice, want = { audio: true, video: true }) {
  return {
    audio: want.audio
      ? choice.audioDeviceId
        ? { deviceId: { exact: choice.audioDeviceId } }
        : true
      : false,
    video: want.video
      ? choice.videoDeviceId
        ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: choice.videoDeviceId } }
        : { ...VIDEO_CONSTRAINTS }
      : false,
  };
}

/**
 * Open camera and microphone. When one of them is missing, fall back to the other alone, so a
 * laptop without a camera still joins with sound.
 * @param {DeviceChoice} [choice]
 * @returns {Promise<{stream: MediaStream, missing: Array<"audio" | "video">}>}
 */
export async function openMedia(choice = {}) {
  const media = globalThis.navigator?.mediaDevices;
  if (!media?.getUserMedia) {
    const error = new Error("no mediaDevices (not a secure context, or an old browser)");
    error.name = globalThis.isSecureContext === false ? "SecurityError" : "NotSupportedError";
    throw error;
  }
  try {
    return { stream: await media.getUserMedia(constraintsFor(choice)), missing: [] };
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (name === "OverconstrainedError" && (choice.audioDeviceId || choice.videoDeviceId)) {
      return openMedia({}); // a remembered device is gone: use the defaults
    }
    if (name !== "NotFoundError" && name !== "OverconstrainedError") throw error;
    // one of the two may exist: try each alone
    for (const only of /** @type {const} */ (["audio", "video"])) {
      try {
        const stream = await media.getUserMedia(
          constraintsFor(choice, { audio: only === "audio", video: only === "video" }),
        );
        return { stream, missing: [only === "audio" ? "video" : "audio"] };
      } catch {
        // try the other one
      }
    }
    throw error;
  }
}

/**
 * Stop every track of a stream (the camera light goes off).
 * @param {MediaStream | null | undefined} stream
 */
export function stopMedia(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/**
 * What went wrong, in words for the person in front of the screen.
 * @param {unknown} error
 * @returns {MediaProblem}
 */
export function describeMediaError(error) {
  const name = error instanceof Error || (error && typeof error === "object" && "name" in error)
    ? String(/** @type {{name: unknown}} */ (error).name)
    : "";
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
      return {
        kind: "denied",
        title: t("The browser is not allowed to use your camera and microphone."),
        help: t(
          "Click the camera or lock icon next to the address bar, choose Allow for the camera " +
            "and the microphone, then press Try again. On a phone, check the browser's " +
            "permissions in the phone's settings.",
        ),
      };
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return {
        kind: "missing",
        title: t("No camera or microphone was found."),
        help: t(
          "Plug in a headset or webcam, or use a phone or laptop that has them, then press " +
            "Try again. You can still continue: your therapist can call you by phone.",
        ),
      };
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return {
        kind: "busy",
        title: t("Your camera or microphone is in use by another app."),
        help: t("Close other video apps (or other tabs with a call), then press Try again."),
      };
    case "SecurityError":
      return {
        kind: "insecure",
        title: t("This page cannot use the camera here."),
        help: t("Open the link from your invitation exactly as it was sent (it starts with https)."),
      };
    case "NotSupportedError":
      return {
        kind: "unsupported",
        title: t("This browser cannot make video calls."),
        help: t("Please use a recent Chrome, Firefox, Safari or Edge."),
      };
    default:
      return {
        kind: "other",
        title: t("Your camera or microphone could not be started."),
        help: t("Press Try again. If it keeps happening, restart the browser."),
      };
  }
}

/**
 * The cameras and microphones the browser will name (names appear once permission is given).
 * @returns {Promise<{cameras: MediaDeviceInfo[], microphones: MediaDeviceInfo[]}>}
 */
export async function listDevices() {
  const media = globalThis.navigator?.mediaDevices;
  if (!media?.enumerateDevices) return { cameras: [], microphones: [] };
  const devices = await media.enumerateDevices();
  return {
    cameras: devices.filter((d) => d.kind === "videoinput" && d.deviceId),
    microphones: devices.filter((d) => d.kind === "audioinput" && d.deviceId),
  };
}

/**
 * Fill a <select> with devices, keeping `selectedId` chosen; option text is the device label
 * (or "Camera 1", "Microphone 2" while the browser hides labels; the name comes translated).
 * @param {HTMLSelectElement} select
 * @param {MediaDeviceInfo[]} devices
 * @param {string} fallbackName
 * @param {string | undefined} selectedId
 */
export function fillDevicePicker(select, devices, fallbackName, selectedId) {
  const options = devices.map((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${fallbackName} ${index + 1}`;
    option.selected = device.deviceId === selectedId;
    return option;
  });
  select.replaceChildren(...options);
  select.disabled = devices.length === 0;
}

/**
 * The device id a stream actually uses for a kind ("" if none).
 * @param {MediaStream | null} stream
 * @param {"audio" | "video"} kind
 */
export function deviceIdOf(stream, kind) {
  const track = stream?.getTracks().find((t) => t.kind === kind);
  return track?.getSettings().deviceId ?? "";
}

/**
 * The root mean square of a block of samples (pure): 0 in silence, ~0.04–0.2 in speech.
 * @param {Float32Array} samples
 */
export function rms(samples) {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  return Math.sqrt(sum / samples.length);
}

/**
 * RMS on a 0–100 scale that moves visibly for speech (about 0.2 RMS fills the bar).
 * @param {number} value
 */
export function levelPercent(value) {
  if (value <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round(100 * Math.sqrt(value / 0.2))));
}

/**
 * A live microphone level: an AnalyserNode's RMS, ten times a second.
 */
export class LevelMeter {
  /** @type {AudioContext | null} */
  #context = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  #timer = null;

  /**
   * @param {MediaStream} stream  must have an audio track
   * @param {(percent: number, rmsValue: number) => void} onLevel
   */
  constructor(stream, onLevel) {
    if (stream.getAudioTracks().length === 0) return;
    const context = new AudioContext();
    this.#context = context;
    const source = context.createMediaStreamSource(stream);
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser); // not to the speakers: no echo of one's own voice
    const samples = new Float32Array(analyser.fftSize);
    // Without a user gesture the context may start suspended; a gesture later resumes it.
    void context.resume().catch(() => {});
    this.#timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      const value = rms(samples);
      onLevel(levelPercent(value), value);
    }, LEVEL_INTERVAL_MS);
  }

  /** Resume after a user gesture, if the browser held the audio context back. */
  resume() {
    void this.#context?.resume().catch(() => {});
  }

  /** Stop measuring and release the audio context. */
  stop() {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    void this.#context?.close().catch(() => {});
    this.#context = null;
  }
}
