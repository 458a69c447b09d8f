// @ts-check
/**
 * The therapist's room (`/host/<session id>`): the waiting list with Admit and Deny, the call
 * with the client, mute and camera, connection quality, the safety code, send back and end.
 */

import { Call, fetchIceConfiguration } from "./call.js";
import {
  bindMediaToggles,
  byId,
  playStream,
  renderQuality,
  safetyCodeView,
} from "./callview.js";
import { describeMediaError, openMedia, stopMedia } from "./devices.js";
import { SessionConnection } from "./protocol.js";
import { mountTherapistExtras } from "./session_extras.js";

const QUALITY_INTERVAL_MS = 2000;
// Made once, now: the first use of Intl loads locale data, which must not delay an admission.
const CLOCK_TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

const root = byId("host");
const sessionId = root.dataset.sessionId ?? "";
let clientLabel = root.dataset.clientLabel ?? "The client";

const el = {
  connectionState: byId("host-connection"),
  alert: byId("host-alert"),
  room: byId("host-room"),
  lobbyList: byId("lobby-list"),
  lobbyEmpty: byId("lobby-empty"),
  callStatus: byId("call-status"),
  remoteVideo: /** @type {HTMLVideoElement} */ (byId("remote-video")),
  selfVideo: /** @type {HTMLVideoElement} */ (byId("self-video")),
  mediaProblem: byId("media-problem"),
  mediaProblemTitle: byId("media-problem-title"),
  mediaProblemHelp: byId("media-problem-help"),
  mediaRetry: /** @type {HTMLButtonElement} */ (byId("media-retry")),
  mute: /** @type {HTMLButtonElement} */ (byId("mute-button")),
  camera: /** @type {HTMLButtonElement} */ (byId("camera-button")),
  sound: /** @type {HTMLButtonElement} */ (byId("sound-button")),
  safetyCode: byId("safety-code"),
  codesMatch: /** @type {HTMLButtonElement} */ (byId("codes-match")),
  safetyNote: byId("safety-note"),
  qualityLevel: byId("quality-level"),
  qualityDetail: byId("quality-detail"),
  sendBack: /** @type {HTMLButtonElement} */ (byId("send-back-button")),
  end: /** @type {HTMLButtonElement} */ (byId("end-button")),
  ended: byId("host-ended"),
  endedText: byId("host-ended-text"),
  endDialog: /** @type {HTMLDialogElement} */ (byId("end-dialog")),
  endConfirm: /** @type {HTMLButtonElement} */ (byId("end-confirm")),
  endCancel: /** @type {HTMLButtonElement} */ (byId("end-cancel")),
};

/** @type {MediaStream | null} */
let localStream = null;
/** @type {RTCConfiguration} */
let configuration = {};
/** @type {SessionConnection | null} */
let connection = null;
/** @type {Call | null} */
let call = null;
/** The page's check-ins, cues and feature stream (see session_extras.js). */
/** @type {{refresh(): void, stop(): void} | null} */
let extras = null;
/** Whether an admitted client is connected (or held while reconnecting). */
let clientInCall = false;
let finished = false;
/** @type {ReturnType<typeof setInterval> | null} */
let qualityTimer = null;

const safety = safetyCodeView({
  code: el.safetyCode,
  confirm: el.codesMatch,
  note: el.safetyNote,
  peerName: clientLabel,
});
const toggles = bindMediaToggles({ mute: el.mute, camera: el.camera }, () => localStream);

Object.defineProperty(window, "__attune", {
  value: Object.freeze({
    role: "therapist",
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

// --- camera and microphone -------------------------------------------------------------------

async function startMedia() {
  stopMedia(localStream);
  localStream = null;
  el.mediaProblem.hidden = true;
  try {
    localStream = (await openMedia()).stream;
  } catch (error) {
    const problem = describeMediaError(error);
    el.mediaProblemTitle.textContent = problem.title;
    el.mediaProblemHelp.textContent = problem.help;
    el.mediaProblem.hidden = false;
  }
  playStream(el.selfVideo, localStream, { muted: true });
  toggles.refresh();
  if (call && localStream) await call.replaceLocalStream(localStream);
  // a prepared call holds the old tracks: prepare again with the new ones
  standby?.close();
  standby = null;
  updateStandby();
}

el.mediaRetry.addEventListener("click", () => void startMedia());

// --- the waiting list ------------------------------------------------------------------------

/** When this page first saw each knock, for a `since_ms` that is not a wall-clock time. */
const firstSeen = new Map();
const YEAR_2000_MS = 946_684_800_000;

/**
 * When a knock started waiting: the server's `since_ms` (Unix ms), or, if that is not a
 * plausible wall-clock time, when this page first saw the knock.
 * @param {{knock_id: string, since_ms: number}} knock
 */
function waitingSince(knock) {
  if (!firstSeen.has(knock.knock_id)) firstSeen.set(knock.knock_id, Date.now());
  return knock.since_ms > YEAR_2000_MS ? knock.since_ms : firstSeen.get(knock.knock_id);
}

/**
 * @param {Array<{knock_id: string, label: string, since_ms: number}>} waiting
 */
function renderLobby(waiting) {
  const items = waiting.map((knock) => {
    const item = document.createElement("li");
    item.className = "knock";
    const who = document.createElement("span");
    who.className = "knock-label";
    who.textContent = knock.label;
    const since = document.createElement("span");
    since.className = "hint";
    since.textContent = ` waiting since ${CLOCK_TIME.format(new Date(waitingSince(knock)))}`;
    const admit = document.createElement("button");
    admit.type = "button";
    admit.className = "primary";
    admit.textContent = `Admit ${knock.label}`;
    admit.addEventListener("click", () => {
      hideAlert();
      connection?.send({ type: "admit", knock_id: knock.knock_id });
    });
    const deny = document.createElement("button");
    deny.type = "button";
    deny.className = "danger";
    deny.textContent = `Deny ${knock.label}`;
    deny.addEventListener("click", () => {
      hideAlert();
      connection?.send({ type: "deny", knock_id: knock.knock_id });
    });
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(admit, deny);
    item.append(who, since, actions);
    return item;
  });
  el.lobbyList.replaceChildren(...items);
  el.lobbyEmpty.hidden = items.length > 0;
}

/** @param {string} text */
function showAlert(text) {
  el.alert.textContent = text;
  el.alert.hidden = false;
}

function hideAlert() {
  el.alert.hidden = true;
}

// --- the call ---------------------------------------------------------------------------------

/** @type {Call | null} a call prepared ahead, so admitting someone starts it at once */
let standby = null;
let standbySince = 0;
/** A prepared call older than this is replaced when used (TURN credentials expire). */
const STANDBY_MAX_AGE_MS = 10 * 60 * 1000;

function newCall() {
  return new Call({
    role: "therapist",
    localStream,
    configuration,
    send: (payload) => connection?.send({ type: "relay", payload }) ?? false,
  });
}

/**
 * Keep a prepared call (offer made, candidates gathered, nothing sent) while connected with
 * nobody in the call, so that Admit starts the call without set-up; drop it otherwise.
 */
function updateStandby() {
  const wanted = !clientInCall && !finished && connection?.state === "open";
  if (wanted && !standby) {
    standby = newCall();
    standbySince = Date.now();
    standby.prepare();
  } else if (!wanted && standby) {
    standby.close();
    standby = null;
  }
}

/** The call with the admitted client: the prepared one if there is one, else a new one. */
function ensureCall() {
  if (call && !call.closed) return call;
  if (standby && Date.now() - standbySince > STANDBY_MAX_AGE_MS) {
    standby.close();
    standby = null;
  }
  const current = standby ?? newCall();
  standby = null;
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
    if (!clientInCall) return;
    el.callStatus.textContent =
      state === "connected"
        ? `In the call with ${clientLabel}`
        : state === "failed" || state === "disconnected"
          ? "The video connection is unsteady; trying again…"
          : `Connecting to ${clientLabel}…`;
  });
  safety.waiting();
  current.start();
  return current;
}

function endCall() {
  extras?.stop();
  call?.close();
  call = null;
  el.remoteVideo.srcObject = null;
  safety.idle();
}

/** A fresh call with the client who is (now) in the call. */
function freshCall() {
  endCall();
  clientInCall = true;
  el.sendBack.disabled = false;
  el.callStatus.textContent = `Connecting to ${clientLabel}…`;
  ensureCall();
}

function noClient(/** @type {string} */ status) {
  clientInCall = false;
  endCall();
  el.sendBack.disabled = true;
  el.callStatus.textContent = status;
  updateStandby();
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
el.sendBack.addEventListener("click", () => {
  connection?.send({ type: "send-back" });
});
el.end.addEventListener("click", () => el.endDialog.showModal());
el.endCancel.addEventListener("click", () => el.endDialog.close());
el.endConfirm.addEventListener("click", () => {
  el.endDialog.close();
  connection?.send({ type: "end" });
});

function startQuality() {
  if (qualityTimer !== null) return;
  qualityTimer = setInterval(async () => {
    const parts = { level: el.qualityLevel, detail: el.qualityDetail };
    if (!call?.pc) {
      renderQuality(parts, null);
      return;
    }
    try {
      renderQuality(parts, await call.quality());
    } catch {
      // closed meanwhile
    }
  }, QUALITY_INTERVAL_MS);
}

// --- the session connection --------------------------------------------------------------------

const ERROR_WORDS = Object.freeze({
  "call-full": "Someone is already in the call. Send them back to the waiting room first.",
  "no-such-knock": "That person is no longer waiting.",
});

function connect() {
  const conn = new SessionConnection({ sessionId });
  connection = conn;
  const panel = document.getElementById("therapist-panel");
  if (panel && !extras) {
    extras = mountTherapistExtras(conn, {
      panel,
      media: () => ({ stream: localStream, pc: call?.pc ?? null }),
    });
  }
  conn.on("state", ({ state }) => {
    if (finished) return;
    el.connectionState.textContent =
      state === "open" ? "Connected" : state === "reconnecting" ? "Reconnecting…" : "Connecting…";
    el.connectionState.classList.toggle("is-warning", state === "reconnecting");
    if (state !== "open") updateStandby();
  });
  conn.on("welcome", ({ peer }) => {
    // a new therapist connection: the client's browser starts a fresh peer connection too
    if (peer === "in-call") freshCall();
    else if (peer === "reconnecting") {
      endCall();
      clientInCall = true;
      el.sendBack.disabled = false;
      el.callStatus.textContent = `${clientLabel} is reconnecting…`;
    } else noClient(`${clientLabel} is not in the call.`);
    updateStandby();
  });
  conn.on("lobby", ({ waiting }) => renderLobby(waiting ?? []));
  conn.on("peer-joined", ({ role, label, resumed }) => {
    if (role !== "client") return;
    if (typeof label === "string" && label) {
      clientLabel = label;
      safety.setPeerName(label);
    }
    if (resumed && call && !call.closed) {
      clientInCall = true;
      el.sendBack.disabled = false;
      el.callStatus.textContent = `In the call with ${clientLabel}`;
      call.resync();
    } else {
      freshCall();
    }
  });
  conn.on("peer-left", ({ role, reconnecting }) => {
    if (role !== "client") return;
    if (!clientInCall) return; // already over (sent back, or consent withdrawn)
    if (reconnecting) {
      el.callStatus.textContent = `${clientLabel} is reconnecting…`;
    } else {
      noClient(`${clientLabel} left the call.`);
    }
  });
  conn.on("signal-relay", ({ payload }) => {
    if (!clientInCall || finished) return;
    ensureCall().handleSignal(payload);
  });
  conn.on("error", ({ code }) => {
    const words = /** @type {Record<string, string>} */ (ERROR_WORDS)[code];
    if (words) showAlert(words);
  });
  conn.on("session-ended", () => ended("The client's link no longer works."));
  conn.on("consent-changed", ({ purpose, decision }) => {
    if (purpose === "telehealth" && decision === "withdrawn") {
      noClient(`${clientLabel} withdrew the telehealth consent: the call has ended.`);
    }
  });
  conn.on("closed", ({ code, reason }) => {
    if (finished) return;
    if (code === 4004) ended("The client's link no longer works.");
    else if (code === 4001) stopped("This session is open in another tab. Use that tab, or reload this one.");
    else stopped(reason || "The connection closed. Reload the page to rejoin.");
  });
  conn.connect();
}

/** @param {string} text */
function ended(text) {
  if (finished) return;
  shutDown();
  el.endedText.textContent = text;
  el.room.hidden = true;
  el.connectionState.textContent = "Session ended";
  el.ended.hidden = false;
  byId("host-ended-title").focus();
}

/** @param {string} text */
function stopped(text) {
  if (finished) return;
  shutDown();
  el.connectionState.textContent = "Disconnected";
  showAlert(text);
}

function shutDown() {
  finished = true;
  endCall();
  standby?.close();
  standby = null;
  if (qualityTimer !== null) clearInterval(qualityTimer);
  qualityTimer = null;
  stopMedia(localStream);
  localStream = null;
  connection?.close();
  for (const button of el.room.querySelectorAll("button")) {
    /** @type {HTMLButtonElement} */ (button).disabled = true;
  }
}

window.addEventListener("online", () => connection?.reconnectNow());
window.addEventListener("pageshow", (event) => {
  if (event.persisted) location.reload(); // back from the back-forward cache: start afresh
});
window.addEventListener("pagehide", () => {
  call?.close();
  connection?.close();
});

// --- start: media and ICE servers first, so a client already in the call is called at once ---

void Promise.all([
  startMedia(),
  fetchIceConfiguration().then(
    (ice) => {
      configuration = ice;
    },
    () => {
      configuration = {};
    },
  ),
]).then(() => {
  startQuality();
  connect();
});
