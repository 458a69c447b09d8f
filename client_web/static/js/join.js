// @ts-check
/**
 * The client's page after the invite link (`/visit`): device check → connection check →
 * consent → safety check → waiting room → the call → a calm closing screen. This module only
 * sequences the steps; each step is its own module (join_devices, join_conncheck,
 * join_consent, join_safety, join_waiting, join_call) and the call is callpage.js's, shared
 * with the therapist's room.
 *
 * A tab that has passed the checks remembers it (sessionStorage), so a reload goes
 * straight back to the waiting room — or, with a resume token, straight back into the call.
 *
 * Quick exit (quick_exit.js): the button in the waiting room and the call, or Escape three
 * times, leaves at once for a neutral page.
 */

import { byId, playStream, showOnly } from "./callview.js";
import { deviceIdOf } from "./devices.js";
import { t } from "./i18n.js";
import { mountClientCall } from "./join_call.js";
import { mountConnectionCheck } from "./join_conncheck.js";
import { mountConsentStep } from "./join_consent.js";
import { mountDeviceCheck } from "./join_devices.js";
import { mountSafetyStep } from "./join_safety.js";
import { mountWaitingRoom } from "./join_waiting.js";
import { mountQuickExit, replaceWithNeutralPage } from "./quick_exit.js";

/** @typedef {import("./join_devices.js").Progress} Progress */

const root = byId("visit");
const sessionId = root.dataset.sessionId ?? "";
const csrfToken =
  document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
const progressKey = `attune.visit.${sessionId}`;
const quickExitUrl = root.dataset.quickExitUrl ?? "/weather";

const steps = {
  devices: byId("step-devices"),
  network: byId("step-network"),
  consent: byId("step-consent"),
  safety: byId("step-safety"),
  waiting: byId("step-waiting"),
  call: byId("step-call"),
  ended: byId("step-ended"),
  stopped: byId("step-stopped"),
};
const allSteps = Object.values(steps);
/** Check-in forms appear here in the waiting room and during the call. */
const checkinArea = byId("checkin-area");

const progress = readProgress();

const waiting = mountWaitingRoom({
  step: steps.waiting,
  show: () => show(steps.waiting),
  onJoinPressed: () => devices.resumeAudio(),
  statusAfterJoin: () => session.statusAfterJoin(),
});
const session = mountClientCall({
  guest: root.dataset.guest === "true",
  sessionId,
  step: steps.call,
  show: () => show(steps.call),
  waiting,
  checkinArea,
  onEnded: sessionEnded,
  onDenied: denied,
  onStopped: stop,
  onLeft: left,
  startsAtMs: Date.parse(root.dataset.startsAt ?? "") || undefined,
});
const page = session.page;
const devices = mountDeviceCheck({
  page,
  progress,
  step: steps.devices,
  onStream: attachPreview,
  onReady: () => session.mediaReady(),
  onContinue: () => void network.start(),
});
const network = mountConnectionCheck({
  show: () => show(steps.network),
  iceConfiguration: page.iceConfiguration,
  csrfToken,
  onDone: () => void consent.start(),
});
const linkGone = () =>
  stop(t("This link does not work any more"), t("Please ask your therapist for a new link."));
const consent = mountConsentStep({
  show: () => show(steps.consent),
  csrfToken,
  onAgreed: () => void safety.start(),
  onLinkGone: linkGone,
});
const safety = mountSafetyStep({
  enabled: root.dataset.safetyCheck !== "off",
  show: () => show(steps.safety),
  csrfToken,
  onDone: enterWaitingRoom,
  onLinkGone: linkGone,
});

// --- steps ----------------------------------------------------------------------------------

/** The own-camera preview of each step that has one (the call's is callpage.js's). */
const previews = new Map([
  [steps.devices, /** @type {HTMLVideoElement} */ (byId("device-preview"))],
  [steps.waiting, /** @type {HTMLVideoElement} */ (byId("waiting-preview"))],
]);

/**
 * Show one step; the camera preview plays only in the visible step (every playing <video>
 * costs the phone work).
 * @param {HTMLElement} step
 */
function show(step) {
  showOnly(allSteps, step);
  attachPreview();
  checkinArea.hidden = step !== steps.waiting && step !== steps.call;
}

function attachPreview() {
  for (const [step, video] of previews) {
    playStream(video, step.hidden ? null : page.localStream, { muted: true });
  }
  page.playSelf(!steps.call.hidden);
}

// --- remembered progress ------------------------------------------------------------------

/** @returns {Progress} */
function readProgress() {
  try {
    const parsed = JSON.parse(sessionStorage.getItem(progressKey) ?? "null");
    if (parsed && typeof parsed === "object" && parsed.passed === true) return parsed;
  } catch {
    // nothing usable stored
  }
  return { passed: false };
}

function saveProgress() {
  try {
    sessionStorage.setItem(progressKey, JSON.stringify(progress));
  } catch {
    // storage disabled: a reload simply starts over
  }
}

function forgetProgress() {
  try {
    sessionStorage.removeItem(progressKey);
  } catch {
    // ignore
  }
}

// --- into the waiting room -------------------------------------------------------------------

function enterWaitingRoom() {
  progress.passed = true;
  progress.audioDeviceId = deviceIdOf(page.localStream, "audio") || progress.audioDeviceId;
  progress.videoDeviceId = deviceIdOf(page.localStream, "video") || progress.videoDeviceId;
  saveProgress();
  waiting.show(t("Connecting…"));
  session.connect();
}

// --- the end ---------------------------------------------------------------------------------

function finish() {
  session.finish();
  devices.stopMeter();
  forgetProgress();
}

/** @param {string} reason */
function sessionEnded(reason) {
  if (page.finished) return;
  finish();
  byId("ended-text").textContent =
    reason === "consent-withdrawn"
      ? t("The session ended because the telehealth consent was withdrawn. You can close this page now.")
      : reason === "link-expired"
        ? t("The time for this session is over. Thank you. You can close this page now.")
        : t("Thank you for today. You can close this page now.");
  show(steps.ended);
}

/** The client chose to leave: the checks stay passed, so joining again goes straight in. */
function left() {
  if (page.finished) return;
  session.finish();
  devices.stopMeter();
  byId("stopped-title").textContent = t("You have left the session");
  byId("stopped-text").textContent = t("You can join again with the same link while the session lasts.");
  byId("stopped-rejoin").hidden = false;
  show(steps.stopped);
}

function denied() {
  if (page.finished) return;
  stop(
    t("Not admitted"),
    t(
      "Your therapist did not let this device into the session. This can happen when the link is " +
        "opened on a second device. If you think it is a mistake, please contact your therapist.",
    ),
  );
}

/**
 * @param {string} title
 * @param {string} text
 */
function stop(title, text) {
  if (!page.finished) finish();
  byId("stopped-title").textContent = title;
  byId("stopped-text").textContent = text;
  show(steps.stopped);
}

/**
 * Quick exit: tell the therapist it was a quick exit (not a dropped connection), release the
 * camera and microphone, and replace the page with the neutral one at once.
 */
function quickExit() {
  page.connection?.send({ type: "leave", reason: "quick-exit" });
  if (!page.finished) finish();
  replaceWithNeutralPage(quickExitUrl);
}

// --- start -----------------------------------------------------------------------------------

mountQuickExit({
  buttons: /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("[data-quick-exit]")),
  onExit: quickExit,
});

if (progress.passed) {
  // this tab already passed the checks: back to the waiting room (or the call, on resume),
  // knocking while the camera starts
  enterWaitingRoom();
}
void devices.start();
