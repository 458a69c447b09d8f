// @ts-check
/**
 * The visit page's first step: camera and microphone with a preview, a level meter and the
 * device pickers (`#step-devices`). Opening the devices is callpage.js's; the stream it opens
 * is the one the call sends.
 */

import { byId } from "./callview.js";
import { LevelMeter, deviceIdOf, fillDevicePicker, listDevices } from "./devices.js";
import { t } from "./i18n.js";

/**
 * @typedef {import("./callpage.js").CallPage} CallPage
 * @typedef {{passed: boolean, audioDeviceId?: string, videoDeviceId?: string}} Progress
 */

/**
 * @param {object} options
 * @param {CallPage} options.page
 * @param {Progress} options.progress  the chosen devices are kept here
 * @param {HTMLElement} options.step  the step's section (the meter runs only while shown)
 * @param {() => void} options.onStream  a stream was opened (or failed to): show the previews
 * @param {() => void} options.onReady  camera and microphone have been asked for
 * @param {() => void} options.onContinue  the person pressed Continue
 */
export function mountDeviceCheck({ page, progress, step, onStream, onReady, onContinue }) {
  const el = {
    level: /** @type {HTMLMeterElement} */ (byId("mic-level")),
    cameraSelect: /** @type {HTMLSelectElement} */ (byId("camera-select")),
    microphoneSelect: /** @type {HTMLSelectElement} */ (byId("microphone-select")),
    problem: {
      box: byId("device-problem"),
      title: byId("device-problem-title"),
      help: byId("device-problem-help"),
    },
    retry: /** @type {HTMLButtonElement} */ (byId("devices-retry")),
    continue: /** @type {HTMLButtonElement} */ (byId("devices-continue")),
  };
  /** @type {LevelMeter | null} */
  let meter = null;

  /** Open (or reopen) the devices and show the preview and the level meter. */
  async function start() {
    meter?.stop();
    meter = null;
    await page.openLocalMedia(
      { audioDeviceId: progress.audioDeviceId, videoDeviceId: progress.videoDeviceId },
      el.problem,
      (missing) =>
        missing.includes("video")
          ? t("No camera was found: your therapist will hear you but not see you.")
          : t("No microphone was found: your therapist will see you but not hear you."),
    );
    onStream();
    await page.applyLocalStream();
    onReady();
    if (step.hidden) return; // the meter and pickers belong to the device check
    const stream = page.localStream;
    if (stream?.getAudioTracks().length) {
      meter = new LevelMeter(stream, (percent) => {
        el.level.value = percent;
      });
    } else {
      el.level.value = 0;
    }
    await refreshPickers();
  }

  async function refreshPickers() {
    const stream = page.localStream;
    try {
      const { cameras, microphones } = await listDevices();
      fillDevicePicker(el.cameraSelect, cameras, t("Camera"), deviceIdOf(stream, "video"));
      fillDevicePicker(el.microphoneSelect, microphones, t("Microphone"), deviceIdOf(stream, "audio"));
    } catch {
      // the pickers stay as they are
    }
  }

  el.cameraSelect.addEventListener("change", () => {
    progress.videoDeviceId = el.cameraSelect.value;
    void start();
  });
  el.microphoneSelect.addEventListener("change", () => {
    progress.audioDeviceId = el.microphoneSelect.value;
    void start();
  });
  el.retry.addEventListener("click", () => void start());
  el.continue.addEventListener("click", () => {
    meter?.resume();
    onContinue();
  });

  return {
    start,
    /** Resume the meter's audio after a user gesture (sound may need one). */
    resumeAudio() {
      meter?.resume();
    },
    /** Stop the level meter (the session is over). */
    stopMeter() {
      meter?.stop();
      meter = null;
    },
  };
}
