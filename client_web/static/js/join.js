// @ts-check
/**
 * The client's page after the invite link (`/visit`): device check → connection check →
 * consent → waiting room → the call → a calm closing screen.
 *
 * A tab that has passed the three checks remembers it (sessionStorage), so a reload goes
 * straight back to the waiting room — or, with a resume token, straight back into the call.
 */

import { Call, fetchIceConfiguration } from "./call.js";
import {
  bindMediaToggles,
  byId,
  playStream,
  renderQuality,
  safetyCodeView,
  showOnly,
} from "./callview.js";
import {
  LevelMeter,
  describeMediaError,
  deviceIdOf,
  fillDevicePicker,
  listDevices,
  openMedia,
  stopMedia,
} from "./devices.js";
import { SessionConnection } from "./protocol.js";
import { mountClientExtras } from "./session_extras.js";

const QUALITY_INTERVAL_MS = 2000;
/** How long the client waits for the therapist's first offer before offering itself. */
const OFFER_FALLBACK_MS = 1500;
const UNAVAILABLE_CHECK = /answered (404|405|501|503)\b|Failed to fetch/;

const root = byId("visit");
const sessionId = root.dataset.sessionId ?? "";
const csrfToken =
  document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
const progressKey = `attune.visit.${sessionId}`;

const steps = {
  devices: byId("step-devices"),
  network: byId("step-network"),
  consent: byId("step-consent"),
  waiting: byId("step-waiting"),
  call: byId("step-call"),
  ended: byId("step-ended"),
  stopped: byId("step-stopped"),
};
const allSteps = Object.values(steps);
/** Check-in forms appear here in the waiting room and during the call. */
const checkinArea = byId("checkin-area");

const el = {
  preview: /** @type {HTMLVideoElement} */ (byId("device-preview")),
  level: /** @type {HTMLMeterElement} */ (byId("mic-level")),
  cameraSelect: /** @type {HTMLSelectElement} */ (byId("camera-select")),
  microphoneSelect: /** @type {HTMLSelectElement} */ (byId("microphone-select")),
  problem: byId("device-problem"),
  problemTitle: byId("device-problem-title"),
  problemHelp: byId("device-problem-help"),
  retry: /** @type {HTMLButtonElement} */ (byId("devices-retry")),
  devicesContinue: /** @type {HTMLButtonElement} */ (byId("devices-continue")),
  networkProgress: /** @type {HTMLProgressElement} */ (byId("network-progress")),
  networkResult: byId("network-result"),
  networkContinue: /** @type {HTMLButtonElement} */ (byId("network-continue")),
  networkSkip: /** @type {HTMLButtonElement} */ (byId("network-skip")),
  consentForm: /** @type {HTMLFormElement} */ (byId("consent-form")),
  consentParts: byId("consent-parts"),
  consentError: byId("consent-error"),
  waitingStatus: byId("waiting-status"),
  waitingPreview: /** @type {HTMLVideoElement} */ (byId("waiting-preview")),
  joinButton: /** @type {HTMLButtonElement} */ (byId("join-button")),
  joinHint: byId("join-hint"),
  callStatus: byId("call-status"),
  remoteVideo: /** @type {HTMLVideoElement} */ (byId("remote-video")),
  selfVideo: /** @type {HTMLVideoElement} */ (byId("self-video")),
  mute: /** @type {HTMLButtonElement} */ (byId("mute-button")),
  camera: /** @type {HTMLButtonElement} */ (byId("camera-button")),
  sound: /** @type {HTMLButtonElement} */ (byId("sound-button")),
  safetyCode: byId("safety-code"),
  codesMatch: /** @type {HTMLButtonElement} */ (byId("codes-match")),
  safetyNote: byId("safety-note"),
  qualityLevel: byId("quality-level"),
  qualityDetail: byId("quality-detail"),
  endedText: byId("ended-text"),
  stoppedTitle: byId("stopped-title"),
  stoppedText: byId("stopped-text"),
};

/** @type {{passed: boolean, audioDeviceId?: string, videoDeviceId?: string}} */
const progress = readProgress();
/** @type {MediaStream | null} */
let localStream = null;
/** @type {LevelMeter | null} */
let meter = null;
/** @type {RTCConfiguration | null} ICE servers and policy, once /api/v1/ice answered */
let configuration = null;
/** @type {Promise<RTCConfiguration>} */
const iceConfiguration = fetchIceConfiguration()
  .catch(() => /** @type {RTCConfiguration} */ ({ iceServers: [], iceTransportPolicy: "all" }))
  .then((ice) => {
    configuration = ice;
    callPrerequisiteReady();
    return ice;
  });
/** @type {SessionConnection | null} */
let connection = null;
/** @type {Call | null} */
let call = null;
/** The page's check-ins, cues and feature stream (see session_extras.js). */
/** @type {{refresh(): void, stop(): void} | null} */
let extras = null;
let admitted = false;
let therapistPresent = false;
/** Camera and microphone have been asked for (opened or refused): a call may start. */
let mediaReady = false;
/** The call should start as soon as the media is ready (set before that happens). */
let startWhenReady = false;
/** @type {import("./call.js").RelayPayload[]} signaling that arrived before the media */
const earlySignals = [];
/** @type {ReturnType<typeof setTimeout> | null} */
let offerFallback = null;
let finished = false;
/** @type {ReturnType<typeof setInterval> | null} */
let qualityTimer = null;

const safety = safetyCodeView({
  code: el.safetyCode,
  confirm: el.codesMatch,
  note: el.safetyNote,
  peerName: "Your therapist",
});
const toggles = bindMediaToggles({ mute: el.mute, camera: el.camera }, () => localStream);

// Diagnostics and tests: the live objects (same-origin scripts only, under the CSP).
Object.defineProperty(window, "__attune", {
  value: Object.freeze({
    role: "client",
    get connection() {
      return connection;
    },
    get call() {
      return call;
    },
    get pc() {
      return call?.pc ?? null;
    },
    get localStream() {
      return localStream;
    },
  }),
});

// --- steps ----------------------------------------------------------------------------------

/** The own-camera preview of each step that has one. */
const previews = new Map([
  [steps.devices, el.preview],
  [steps.waiting, el.waitingPreview],
  [steps.call, el.selfVideo],
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
    playStream(video, step.hidden ? null : localStream, { muted: true });
  }
}

// --- remembered progress ------------------------------------------------------------------

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

// --- step 1: camera and microphone -----------------------------------------------------------

/** Open (or reopen) the devices and show the preview and the level meter. */
async function startDevices() {
  meter?.stop();
  meter = null;
  stopMedia(localStream);
  localStream = null;
  el.problem.hidden = true;
  try {
    const { stream, missing } = await openMedia({
      audioDeviceId: progress.audioDeviceId,
      videoDeviceId: progress.videoDeviceId,
    });
    localStream = stream;
    if (missing.length) {
      showProblem({
        name: "NotFoundError",
      });
      el.problemTitle.textContent = missing.includes("video")
        ? "No camera was found: your therapist will hear you but not see you."
        : "No microphone was found: your therapist will see you but not hear you.";
    }
  } catch (error) {
    showProblem(error);
  }
  attachPreview();
  toggles.refresh();
  if (call && localStream) await call.replaceLocalStream(localStream);
  mediaReady = true;
  callPrerequisiteReady();
  if (steps.devices.hidden) return; // the meter and pickers belong to the device check
  if (localStream?.getAudioTracks().length) {
    meter = new LevelMeter(localStream, (percent) => {
      el.level.value = percent;
    });
  } else {
    el.level.value = 0;
  }
  await refreshPickers();
}

/** @param {unknown} error */
function showProblem(error) {
  const problem = describeMediaError(error);
  el.problemTitle.textContent = problem.title;
  el.problemHelp.textContent = problem.help;
  el.problem.hidden = false;
}

async function refreshPickers() {
  try {
    const { cameras, microphones } = await listDevices();
    fillDevicePicker(el.cameraSelect, cameras, "Camera", deviceIdOf(localStream, "video"));
    fillDevicePicker(
      el.microphoneSelect,
      microphones,
      "Microphone",
      deviceIdOf(localStream, "audio"),
    );
  } catch {
    // the pickers stay as they are
  }
}

el.cameraSelect.addEventListener("change", () => {
  progress.videoDeviceId = el.cameraSelect.value;
  void startDevices();
});
el.microphoneSelect.addEventListener("change", () => {
  progress.audioDeviceId = el.microphoneSelect.value;
  void startDevices();
});
el.retry.addEventListener("click", () => void startDevices());
el.devicesContinue.addEventListener("click", () => {
  meter?.resume();
  void showNetworkCheck();
});

// --- step 2: the connection check ------------------------------------------------------------

let networkStepDone = false;

async function showNetworkCheck() {
  show(steps.network);
  el.networkContinue.disabled = true;
  el.networkProgress.value = 0;
  el.networkResult.textContent = "Checking…";
  networkStepDone = false;
  /** @type {typeof import("./conncheck.js") | null} */
  let conncheck = null;
  try {
    conncheck = await import("./conncheck.js");
  } catch {
    conncheck = null;
  }
  if (networkStepDone) return;
  if (!conncheck) {
    checkUnavailable();
    return;
  }
  const ice = await iceConfiguration;
  const result = await conncheck.runConnectionCheck({
    csrfToken,
    iceServers: ice.iceServers ?? [],
    iceTransportPolicy: ice.iceTransportPolicy ?? "all",
    onProgress: ({ fraction }) => {
      if (!networkStepDone) el.networkProgress.value = Math.round(fraction * 100);
    },
  });
  if (networkStepDone) return; // skipped meanwhile
  el.networkProgress.value = 100;
  if (result.verdict === "failed" && UNAVAILABLE_CHECK.test(result.detail)) {
    checkUnavailable();
    return;
  }
  el.networkResult.textContent = result.message;
  el.networkContinue.disabled = false;
  el.networkContinue.focus();
}

function checkUnavailable() {
  el.networkProgress.value = 100;
  el.networkResult.textContent = "Connection check unavailable. You can continue.";
  el.networkContinue.disabled = false;
}

function leaveNetworkStep() {
  networkStepDone = true;
  void showConsent();
}
el.networkContinue.addEventListener("click", leaveNetworkStep);
el.networkSkip.addEventListener("click", leaveNetworkStep);

// --- step 3: consent -------------------------------------------------------------------------

/**
 * @typedef {object} ConsentItem
 * @property {string} purpose
 * @property {boolean} required
 * @property {string} state
 * @property {{version: number, title: string, blocks: NoticeBlock[]}} notice
 */

/**
 * A notice block rendered on the server (server/web/notice_blocks.py): text, never Markdown.
 * @typedef {{kind: "heading" | "paragraph", text: string} | {kind: "list", items: string[]}} NoticeBlock
 */

/** @type {ConsentItem[]} */
let consentItems = [];

async function showConsent() {
  try {
    const response = await fetch("/api/v1/visit/consents", { credentials: "same-origin" });
    if (response.status === 401) {
      stop("This link does not work any more", "Please ask your therapist for a new link.");
      return;
    }
    if (!response.ok) throw new Error(`consents: ${response.status}`);
    consentItems = (await response.json()).items ?? [];
  } catch {
    consentItems = [];
  }
  const settled =
    consentItems.length > 0 &&
    consentItems.every((item) => item.state !== "needs_reconsent") &&
    consentItems.some((item) => item.purpose === "telehealth" && item.state === "granted");
  if (settled) {
    enterWaitingRoom();
    return;
  }
  renderConsentForm();
  show(steps.consent);
}

function renderConsentForm() {
  if (consentItems.length === 0) {
    const failed = document.createElement("p");
    failed.className = "error";
    failed.textContent = "The consent text could not be loaded. Please reload the page.";
    el.consentParts.replaceChildren(failed);
    return;
  }
  el.consentParts.replaceChildren(...consentItems.map(consentPart));
}

/**
 * One purpose: its title, the full notice behind a disclosure, and its checkbox.
 * @param {ConsentItem} item
 */
function consentPart(item) {
  const fieldset = document.createElement("fieldset");
  fieldset.className = "consent-part";
  const legend = document.createElement("legend");
  legend.textContent = item.notice.title;
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = item.required ? " (needed for video)" : " (optional)";
  legend.append(hint);
  fieldset.append(legend);
  if (item.state === "needs_reconsent") {
    const changed = document.createElement("p");
    changed.className = "notice";
    changed.textContent = "This text has changed since you last agreed. Please read it again.";
    fieldset.append(changed);
  }
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "Read the full text";
  details.append(summary, ...item.notice.blocks.map(noticeBlock));
  fieldset.append(details);

  const row = document.createElement("div");
  row.className = "check-row";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `join-consent-${item.purpose}`;
  box.name = item.purpose;
  box.checked = item.state === "granted"; // optional purposes start unticked unless granted
  const label = document.createElement("label");
  label.htmlFor = box.id;
  label.textContent = item.required
    ? `I agree to the telehealth consent: ${item.notice.title}`
    : `Yes, I agree: ${item.notice.title}`;
  row.append(box, label);
  fieldset.append(row);
  return fieldset;
}

/**
 * One notice block as an element; its text is placed as text.
 * @param {NoticeBlock} block
 * @returns {HTMLElement}
 */
function noticeBlock(block) {
  if (block.kind === "list") {
    const list = document.createElement("ul");
    for (const text of block.items) {
      const item = document.createElement("li");
      item.textContent = text;
      list.append(item);
    }
    return list;
  }
  const element = document.createElement(block.kind === "heading" ? "h3" : "p");
  element.textContent = block.text;
  return element;
}

el.consentForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void saveConsent();
});

async function saveConsent() {
  el.consentError.hidden = true;
  const form = el.consentForm;
  const wanted = new Set(
    consentItems
      .filter((item) => /** @type {HTMLInputElement | null} */ (form.elements.namedItem(item.purpose))?.checked)
      .map((item) => item.purpose),
  );
  if (!wanted.has("telehealth")) {
    showConsentError(
      "To meet by video, please tick the telehealth consent. The other parts are optional.",
    );
    return;
  }
  try {
    for (const item of consentItems) {
      const want = wanted.has(item.purpose);
      const granted = item.state === "granted";
      if (want === granted) continue;
      if (!want && item.state === "never_asked") continue;
      const response = await fetch("/api/v1/visit/consents", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify({
          purpose: item.purpose,
          decision: want ? "granted" : "withdrawn",
          notice_version: item.notice.version,
        }),
      });
      if (!response.ok) throw new Error(`consent: ${response.status}`);
      item.state = want ? "granted" : "withdrawn";
    }
  } catch {
    showConsentError("Your choices could not be saved. Please try again.");
    return;
  }
  enterWaitingRoom();
}

/** @param {string} text */
function showConsentError(text) {
  el.consentError.textContent = text;
  el.consentError.hidden = false;
}

// --- step 4: the waiting room ----------------------------------------------------------------

function enterWaitingRoom() {
  progress.passed = true;
  progress.audioDeviceId = deviceIdOf(localStream, "audio") || progress.audioDeviceId;
  progress.videoDeviceId = deviceIdOf(localStream, "video") || progress.videoDeviceId;
  saveProgress();
  showWaiting("Connecting…");
  void connect();
}

/** @param {string} status */
function showWaiting(status) {
  el.waitingStatus.textContent = status;
  if (steps.waiting.hidden) show(steps.waiting);
  // Sound needs a user gesture in some browsers; after a reload there has been none.
  const activated = navigator.userActivation?.hasBeenActive ?? true;
  el.joinButton.hidden = activated;
  el.joinHint.hidden = activated;
}

el.joinButton.addEventListener("click", () => {
  meter?.resume();
  el.joinButton.hidden = true;
  el.joinHint.hidden = true;
  el.waitingStatus.textContent = admitted ? "Joining…" : waitingText();
});

function waitingText() {
  return therapistPresent
    ? "Your therapist knows you are here."
    : "Your therapist has not joined yet. Please keep this page open.";
}

async function connect() {
  if (connection) return;
  const conn = new SessionConnection({ sessionId });
  connection = conn;
  extras = mountClientExtras(conn, {
    checkinArea,
    signalSection: document.getElementById("signal-buttons"),
    media: () => ({ stream: localStream, pc: call?.pc ?? null }),
  });
  conn.on("state", ({ state }) => onConnectionState(state));
  conn.on("welcome", (message) => {
    therapistPresent = message.peer === "in-call";
    if (message.state === "in-call") {
      admitted = true;
      enterCall({ eager: true }); // resumed: the therapist keeps its peer connection
    } else {
      admitted = false;
      showWaiting(waitingText());
    }
  });
  conn.on("admitted", ({ resumed }) => {
    admitted = true;
    enterCall({ eager: resumed === true });
    if (resumed) call?.resync();
  });
  conn.on("peer-joined", ({ role }) => {
    if (role !== "therapist") return;
    therapistPresent = true;
    if (admitted) {
      endCall(); // the therapist's browser starts a fresh peer connection; so do we
      enterCall({ eager: false });
    } else {
      showWaiting(waitingText());
    }
  });
  conn.on("peer-left", ({ role }) => {
    if (role !== "therapist") return;
    therapistPresent = false;
    if (admitted) {
      endCall();
      el.callStatus.textContent = "Your therapist's connection dropped. Please stay on this page.";
    } else {
      showWaiting(waitingText());
    }
  });
  conn.on("signal-relay", ({ payload }) => {
    if (!admitted || finished) return;
    if (!canCall()) {
      earlySignals.push(payload);
      return;
    }
    ensureCall().handleSignal(payload);
  });
  conn.on("sent-back", () => {
    admitted = false;
    endCall();
    showWaiting("Your therapist has asked you to wait a moment. Please keep this page open.");
  });
  conn.on("denied", () => {
    denied();
  });
  conn.on("session-ended", ({ reason }) => {
    sessionEnded(reason);
  });
  conn.on("consent-changed", ({ purpose, decision }) => {
    // without telehealth consent there is no call (the server closes this connection)
    if (purpose === "telehealth" && decision === "withdrawn") sessionEnded("consent-withdrawn");
  });
  conn.on("closed", ({ code, reason }) => {
    if (finished) return;
    if (code === 4004) sessionEnded("therapist-ended");
    else if (code === 4003) denied();
    else if (code === 4401) stop("This link does not work any more", "Please ask your therapist for a new link.");
    else stop("You have left the session", reason || "Please reload the page to join again.");
  });
  conn.connect();
}

/** @param {string} state */
function onConnectionState(state) {
  if (finished) return;
  const reconnecting = state === "reconnecting";
  if (!steps.call.hidden) {
    el.callStatus.textContent = reconnecting ? "Reconnecting…" : "";
    el.callStatus.classList.toggle("is-warning", reconnecting);
  } else if (!steps.waiting.hidden) {
    el.waitingStatus.textContent = reconnecting
      ? "Reconnecting…"
      : state === "open"
        ? waitingText()
        : "Connecting…";
  }
}

// --- step 5: the call ------------------------------------------------------------------------

/**
 * In the call (admitted). The therapist's browser, the impolite peer, makes the first offer;
 * waiting for it avoids both sides offering at once (each glare costs a round of signaling).
 * `eager`: start now — after a resume the therapist's browser keeps its connection and only
 * answers; a fresh one here is recognised by its new fingerprint.
 * @param {{eager: boolean}} options
 */
function enterCall({ eager }) {
  if (finished) return;
  if (steps.call.hidden) {
    show(steps.call);
  }
  el.callStatus.textContent = therapistPresent ? "" : "Waiting for your therapist…";
  el.callStatus.classList.remove("is-warning");
  if (therapistPresent) {
    if (eager) startCall();
    else awaitOffer();
  }
  startQuality();
}

/** Camera and microphone were asked for and the ICE servers are known. */
function canCall() {
  return mediaReady && configuration !== null;
}

/** Start the call now, or as soon as camera, microphone and ICE servers are ready. */
function startCall() {
  if (canCall()) ensureCall();
  else startWhenReady = true;
}

/** Wait for the therapist's offer; offer ourselves if none comes. */
function awaitOffer() {
  if (offerFallback !== null) clearTimeout(offerFallback);
  offerFallback = setTimeout(() => {
    offerFallback = null;
    if (admitted && therapistPresent && !finished && !(call && !call.closed)) startCall();
  }, OFFER_FALLBACK_MS);
}

/** One more thing a call needs is there: start a call that was waiting for it. */
function callPrerequisiteReady() {
  if (!canCall() || !admitted || finished) return;
  if (startWhenReady || earlySignals.length) {
    const current = ensureCall();
    for (const payload of earlySignals.splice(0)) void current.handleSignal(payload);
  }
  startWhenReady = false;
}

/** The call with the therapist, created when first needed. */
function ensureCall() {
  if (call && !call.closed) return call;
  const current = new Call({
    role: "client",
    localStream,
    configuration: /** @type {RTCConfiguration} */ (configuration),
    send: (payload) => connection?.send({ type: "relay", payload }) ?? false,
  });
  call = current;
  current.on("remote-stream", ({ stream }) => {
    extras?.refresh(); // the peer connection exists now: the feature stream may start
    playStream(el.remoteVideo, stream, { needsGesture: () => (el.sound.hidden = false) });
  });
  current.on("safety-code", ({ code }) => safety.show(code));
  current.on("safety-code-reset", () => safety.waiting());
  current.on("safety-code-failed", () => safety.failed());
  current.on("peer-confirmed", () => safety.confirmedByPeer());
  current.on("connection-state", ({ state }) => {
    if (connection?.state !== "open") return;
    el.callStatus.textContent =
      state === "connected"
        ? ""
        : state === "failed" || state === "disconnected"
          ? "The video connection is unsteady; trying again…"
          : "Connecting video…";
  });
  safety.waiting();
  current.start();
  extras?.refresh();
  return current;
}

function endCall() {
  extras?.stop();
  if (offerFallback !== null) clearTimeout(offerFallback);
  offerFallback = null;
  startWhenReady = false;
  earlySignals.length = 0;
  call?.close();
  call = null;
  el.remoteVideo.srcObject = null;
  safety.idle();
}

el.codesMatch.addEventListener("click", () => {
  call?.confirmSafetyCode();
  safety.confirmedByMe();
});
el.sound.addEventListener("click", () => {
  el.remoteVideo.muted = false;
  void el.remoteVideo.play().catch(() => {});
  el.sound.hidden = true;
});

function startQuality() {
  if (qualityTimer !== null) return;
  qualityTimer = setInterval(async () => {
    if (!call?.pc) {
      renderQuality({ level: el.qualityLevel, detail: el.qualityDetail }, null);
      return;
    }
    try {
      renderQuality({ level: el.qualityLevel, detail: el.qualityDetail }, await call.quality());
    } catch {
      // the connection closed meanwhile
    }
  }, QUALITY_INTERVAL_MS);
}

// --- the end ---------------------------------------------------------------------------------

function finish() {
  finished = true;
  endCall();
  meter?.stop();
  meter = null;
  stopMedia(localStream);
  localStream = null;
  if (qualityTimer !== null) clearInterval(qualityTimer);
  qualityTimer = null;
  connection?.close();
  forgetProgress();
}

/** @param {string} reason */
function sessionEnded(reason) {
  if (finished) return;
  finish();
  el.endedText.textContent =
    reason === "consent-withdrawn"
      ? "The session ended because the telehealth consent was withdrawn. You can close this page now."
      : reason === "link-expired"
        ? "The time for this session is over. Thank you. You can close this page now."
        : "Thank you for today. You can close this page now.";
  show(steps.ended);
}

function denied() {
  if (finished) return;
  stop(
    "Not admitted",
    "Your therapist did not let this device into the session. This can happen when the link is " +
      "opened on a second device. If you think it is a mistake, please contact your therapist.",
  );
}

/**
 * @param {string} title
 * @param {string} text
 */
function stop(title, text) {
  if (!finished) finish();
  el.stoppedTitle.textContent = title;
  el.stoppedText.textContent = text;
  show(steps.stopped);
}

window.addEventListener("online", () => connection?.reconnectNow());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload(); // back from the back-forward cache: start afresh
});
window.addEventListener("pagehide", () => {
  // leaving the page: close cleanly so the therapist's list is right at once
  call?.close();
  connection?.close();
});

// --- start -----------------------------------------------------------------------------------

if (progress.passed) {
  // this tab already passed the checks: back to the waiting room (or the call, on resume),
  // knocking while the camera starts
  enterWaitingRoom();
  void startDevices();
} else {
  void startDevices();
}
