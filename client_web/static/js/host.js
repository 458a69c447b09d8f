// @ts-check
/**
 * The therapist's room (`/host/<session id>`): the waiting list with Admit and Deny, the client
 * in the call (a call prepared ahead so Admit starts it at once), send back, end, and the
 * private panel. The call itself, media, safety code and quality are callpage.js's.
 */

import { byId, runSessionTimer, stallHelp } from "./callview.js";
import { CallPage } from "./callpage.js";
import { CloseCode } from "./protocol_types.js";
import { mountTherapistExtras } from "./session_extras.js";
import { formatLocal } from "./localtime.js";
import { mountSidePanel } from "./host_panel.js";
import { mountSafetyPanel } from "./host_safety.js";
import { mountSendBack } from "./host_send_back.js";

// Made once, now: the first use of Intl loads locale data, which must not delay an admission.
formatLocal(new Date(), "time");

const root = byId("host");
const sessionId = root.dataset.sessionId ?? "";
let clientLabel = root.dataset.clientLabel ?? "The client";

const el = {
  connectionState: byId("host-connection"),
  alert: byId("host-alert"),
  room: byId("host-room"),
  lobbyList: byId("lobby-list"),
  lobbyEmpty: byId("lobby-empty"),
  mediaProblem: {
    box: byId("media-problem"),
    title: byId("media-problem-title"),
    help: byId("media-problem-help"),
  },
  mediaRetry: /** @type {HTMLButtonElement} */ (byId("media-retry")),
  sendBack: /** @type {HTMLButtonElement} */ (byId("send-back-button")),
  end: /** @type {HTMLButtonElement} */ (byId("end-button")),
  ended: byId("host-ended"),
  endedText: byId("host-ended-text"),
  endDialog: /** @type {HTMLDialogElement} */ (byId("end-dialog")),
  endConfirm: /** @type {HTMLButtonElement} */ (byId("end-confirm")),
  endCancel: /** @type {HTMLButtonElement} */ (byId("end-cancel")),
  safetyNotices: byId("safety-notices"),
  noteForm: /** @type {HTMLFormElement} */ (byId("note-form")),
  noteInput: /** @type {HTMLInputElement} */ (byId("note-input")),
  noteStatus: byId("note-status"),
};

/** Whether an admitted client is connected (or held while reconnecting). */
let clientInCall = false;

const side = mountSidePanel({
  column: byId("side-column"),
  toggle: /** @type {HTMLButtonElement} */ (byId("panel-toggle")),
  content: byId("side-content"),
  latest: byId("panel-latest"),
  sound: /** @type {HTMLInputElement | null} */ (document.getElementById("panel-sound")),
});
const safetyPanel = mountSafetyPanel({ label: () => clientLabel, notify: side.announce });
const timer = runSessionTimer(byId("session-timer"), Date.parse(root.dataset.startsAt ?? "") || Date.now());

const page = new CallPage({
  role: "therapist",
  sessionId,
  peerName: clientLabel,
  videoStatus: (state) => {
    if (state === "connected" || !clientInCall) videoStall.disarm();
    else videoStall.arm();
    if (!clientInCall) return null;
    return state === "connected"
      ? `In the call with ${clientLabel}`
      : state === "failed" || state === "disconnected"
        ? "The video connection is unsteady; trying again…"
        : `Connecting to ${clientLabel}…`;
  },
  mountExtras: (connection, media) => {
    const panel = document.getElementById("therapist-panel");
    const goals = document.getElementById("goals");
    return panel ? mountTherapistExtras(connection, { panel, media, goals, notify: side.announce }) : null;
  },
  onConnectionState: (state, code) => {
    if (state === "open") connectionStall.disarm();
    else connectionStall.arm();
    el.connectionState.textContent =
      state === "open"
        ? "Connected"
        : state === "reconnecting"
          ? code === CloseCode.TRY_AGAIN_LATER
            ? "Live sessions are briefly unavailable; the call goes on. Reconnecting…"
            : "Reconnecting…"
          : "Connecting…";
    el.connectionState.classList.toggle("is-warning", state === "reconnecting");
    if (state !== "open") updateStandby();
  },
  onChatReceived: () => side.announce(`New message from ${clientLabel}`),
  onRoster: (roster) => sendBack.update(roster),
  onPrimaryChange: (person) => {
    if (!person) {
      if (clientInCall) noClient(`${clientLabel} left the call.`);
      return;
    }
    // the first client left a group call: the call goes on with the next one
    clientLabel = person.label || clientLabel;
    clientInCall = true;
    el.sendBack.disabled = false;
    callStatus.textContent = `In the call with ${clientLabel}`;
    updateStandby();
  },
  onScreenChange: () => {
    // a call prepared ahead holds the old tracks: prepare again with (or without) the screen
    standby?.close();
    standby = null;
    updateStandby();
  },
  onClosed: ({ code, reason }) => {
    if (code === CloseCode.SESSION_ENDED) ended("The client's link no longer works.");
    else if (code === CloseCode.REPLACED) stopped("This session is open in another tab. Use that tab, or reload this one.");
    else if (code === CloseCode.UNAUTHORIZED) stopped(reason || "Your sign-in ended — sign in again.");
    else stopped(reason || "The connection closed. Reload the page to rejoin.");
  },
});
const callStatus = page.elements.callStatus;
const videoStall = stallHelp(
  callStatus,
  `The video with ${clientLabel} is taking long to connect. Reloading this page usually helps; the client stays in the session.`,
);
const connectionStall = stallHelp(
  el.alert,
  "Still reconnecting to the server. Check that you are online; reloading this page keeps the session and brings the panel back.",
);

// --- camera and microphone -------------------------------------------------------------------

async function startMedia() {
  await page.openLocalMedia({}, el.mediaProblem);
  page.playSelf(true);
  await page.applyLocalStream();
  // a prepared call holds the old tracks: prepare again with the new ones
  standby?.close();
  standby = null;
  updateStandby();
}

el.mediaRetry.addEventListener("click", () => void startMedia());

// --- the waiting list ------------------------------------------------------------------------

/** Knocks already announced in the side column. */
const announcedKnocks = new Set();
/** Knocks this page admitted or denied (the words once they leave the waiting list). */
const answeredKnocks = new Map();
/** The waiting list as last shown, by knock id. */
let shownKnocks = new Map();
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
  const now = new Map(waiting.map((knock) => [knock.knock_id, knock]));
  for (const [knockId, knock] of shownKnocks) {
    // "X is waiting to be let in" no longer true: the line says what happened instead
    if (now.has(knockId)) continue;
    const answer = answeredKnocks.get(knockId);
    const news =
      answer === "admit"
        ? `${knock.label} was let in`
        : answer === "deny"
          ? `${knock.label} was not let in`
          : `${knock.label} left the waiting room`;
    side.replace(waitingNews(knock.label), news);
  }
  shownKnocks = now;
  for (const knock of waiting) {
    if (!announcedKnocks.has(knock.knock_id)) side.announce(waitingNews(knock.label), { urgent: true });
    announcedKnocks.add(knock.knock_id);
  }
  const items = waiting.map((knock) => {
    const item = document.createElement("li");
    item.className = "knock";
    const who = document.createElement("span");
    who.className = "knock-label";
    who.textContent = knock.label;
    const since = document.createElement("span");
    since.className = "hint";
    since.textContent = ` waiting since ${formatLocal(new Date(waitingSince(knock)), "time")}`;
    const admit = document.createElement("button");
    admit.type = "button";
    admit.className = "primary";
    admit.textContent = `Admit ${knock.label}`;
    admit.addEventListener("click", () => {
      hideAlert();
      answeredKnocks.set(knock.knock_id, "admit");
      page.connection?.send({ type: "admit", knock_id: knock.knock_id });
    });
    const deny = document.createElement("button");
    deny.type = "button";
    deny.className = "danger";
    deny.textContent = `Deny ${knock.label}`;
    deny.addEventListener("click", () => {
      hideAlert();
      answeredKnocks.set(knock.knock_id, "deny");
      page.connection?.send({ type: "deny", knock_id: knock.knock_id });
    });
    const actions = document.createElement("div");
    actions.className = "actions";
    actions.append(admit, deny);
    item.append(who, since, actions);
    return item;
  });
  el.lobbyList.replaceChildren(...items);
  el.lobbyEmpty.hidden = items.length > 0;
  el.lobbyList.closest("section")?.classList.toggle("has-waiting", items.length > 0);
  if (!clientInCall && !page.finished) {
    callStatus.textContent = waiting.length
      ? `${waiting.map((k) => k.label).join(", ")} ${waiting.length === 1 ? "is" : "are"} waiting: admit from the waiting room beside the video.`
      : `${clientLabel} is not in the call.`;
  }
}

/** @param {string} label */
function waitingNews(label) {
  return `${label} is waiting to be let in`;
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

/** @type {import("./call.js").Call | null} a call prepared ahead, so admitting someone starts it at once */
let standby = null;
let standbySince = 0;
/** A prepared call older than this is replaced when used (TURN credentials expire). */
const STANDBY_MAX_AGE_MS = 10 * 60 * 1000;

/**
 * Keep a prepared call (offer made, candidates gathered, nothing sent) while connected with
 * nobody in the call, so that Admit starts the call without set-up; drop it otherwise.
 */
function updateStandby() {
  const wanted = !clientInCall && !page.finished && page.connection?.state === "open";
  if (wanted && !standby) {
    standby = page.newCall();
    standbySince = Date.now();
    standby.prepare();
  } else if (!wanted && standby) {
    standby.close();
    standby = null;
  }
}

/** The call with the admitted client: the prepared one if there is one, else a new one. */
function ensureCall() {
  return page.ensureCall(() => {
    if (standby && Date.now() - standbySince > STANDBY_MAX_AGE_MS) {
      standby.close();
      standby = null;
    }
    const prepared = standby ?? page.newCall();
    standby = null;
    return prepared;
  });
}

/** A fresh call with the client who is (now) in the call. */
function freshCall() {
  page.endCall();
  clientInCall = true;
  el.sendBack.disabled = false;
  callStatus.textContent = `Connecting to ${clientLabel}…`;
  ensureCall();
}

/**
 * A safety signal on top of the private panel, announced (urgent) until looked at.
 * @param {string} text
 * @param {string} detail
 */
function safetyNotice(text, detail) {
  const item = document.createElement("li");
  item.className = "safety-notice";
  item.textContent = text;
  const when = document.createElement("span");
  when.className = "hint";
  when.textContent = `${detail}, ${formatLocal(new Date(), "time")}`;
  item.append(when);
  el.safetyNotices.prepend(item);
  el.safetyNotices.hidden = false;
  side.announce(text, { urgent: true, item });
}

/** Alert ids already shown on this page. */
const shownMeasureAlerts = new Set();

/**
 * A client's questionnaire raised a safety alert: on top of the panel, urgent.
 * @param {{alert_id: string, label: string, measure: string, reason: string, repair: string}} alert
 */
function measureAlert(alert) {
  if (shownMeasureAlerts.has(alert.alert_id)) return;
  shownMeasureAlerts.add(alert.alert_id);
  const detail = `${alert.reason} ${alert.repair}`.replace(/\.$/, "");
  safetyNotice(`Safety alert for ${alert.label} (${alert.measure})`, detail);
}

function noClient(/** @type {string} */ status) {
  clientInCall = false;
  page.endCall();
  el.sendBack.disabled = true;
  callStatus.textContent = status;
  updateStandby();
}

el.noteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = el.noteInput.value.trim();
  if (!text) return;
  const sent = page.connection?.send({ type: "waiting-note", text }) ?? false;
  el.noteStatus.textContent = sent ? "Note sent to the waiting room." : "Not sent: not connected to the server.";
  if (sent) el.noteInput.value = "";
});

const sendBack = mountSendBack(
  {
    single: el.sendBack,
    list: byId("send-back-list"),
    dialog: /** @type {HTMLDialogElement} */ (byId("send-back-dialog")),
    dialogTitle: byId("send-back-dialog-title"),
    confirm: /** @type {HTMLButtonElement} */ (byId("send-back-confirm")),
    cancel: /** @type {HTMLButtonElement} */ (byId("send-back-cancel")),
  },
  (peerId) => {
    // once the server sends rosters it needs to know whom: the person named, else the
    // client of the page's own call
    const whom = peerId ?? (page.roster !== null ? page.primaryPeerId : null);
    page.connection?.send({ type: "send-back", ...(whom ? { peer_id: whom } : {}) });
  },
);
el.end.addEventListener("click", () => el.endDialog.showModal());
el.endCancel.addEventListener("click", () => el.endDialog.close());
el.endConfirm.addEventListener("click", () => {
  el.endDialog.close();
  page.connection?.send({ type: "end" });
});

// --- the session connection --------------------------------------------------------------------

/** @type {Readonly<Partial<Record<import("./protocol_types.js").ErrorMessage["code"], string>>>} */
const ERROR_WORDS = Object.freeze({
  "call-full": "Someone is already in the call. Send them back to the waiting room first.",
  "no-such-knock": "That person is no longer waiting (or nobody is waiting for a note).",
  "rate-limited": "Too many notes at once; please wait a moment.",
});

/** @param {import("./protocol.js").SessionConnection} conn */
function subscribe(conn) {
  safetyPanel.listen(conn);
  conn.on("welcome", ({ peer, resumed }) => {
    const call = page.call;
    if (resumed && call && !call.closed && peer !== "absent") {
      // only signaling reconnected (resume): the media never stopped, keep the call
      clientInCall = true;
      el.sendBack.disabled = false;
      callStatus.textContent =
        peer === "in-call" ? `In the call with ${clientLabel}` : `${clientLabel} is reconnecting…`;
      call.resync();
    }
    // a new therapist connection: the client's browser starts a fresh peer connection too
    else if (peer === "in-call") freshCall();
    else if (peer === "reconnecting") {
      page.endCall();
      clientInCall = true;
      el.sendBack.disabled = false;
      callStatus.textContent = `${clientLabel} is reconnecting…`;
    } else noClient(`${clientLabel} is not in the call.`);
    updateStandby();
  });
  conn.on("lobby", ({ waiting }) => renderLobby(waiting ?? []));
  conn.on("peer-joined", ({ role, label, resumed, ...rest }) => {
    if (role === "therapist" || !page.isPrimary(peerIdOf(rest))) return; // others: the mesh's
    if (typeof label === "string" && label) {
      clientLabel = label;
      page.setPeerName(label);
    }
    const call = page.call;
    if (resumed && call && !call.closed) {
      clientInCall = true;
      el.sendBack.disabled = false;
      callStatus.textContent = `In the call with ${clientLabel}`;
      call.resync();
    } else {
      freshCall();
    }
  });
  conn.on("peer-left", ({ role, reconnecting, ...rest }) => {
    if (role === "therapist" || !page.isPrimary(peerIdOf(rest))) return;
    if (!clientInCall) return; // already over (sent back, or consent withdrawn)
    if (reconnecting) {
      callStatus.textContent = `${clientLabel} is reconnecting…`;
    } else {
      noClient(`${clientLabel} left the call.`);
    }
  });
  conn.on("quick-exit", ({ label, in_call }) => {
    const text = `${label} left using quick exit`;
    if (in_call) noClient(`${text}.`);
    const codeWord = safetyPanel.codeWord();
    const where = in_call ? "from the call" : "from the waiting room";
    safetyNotice(text, codeWord ? `${where}; agreed code word: “${codeWord}”` : where);
  });
  // a safety alert from a client's questionnaire: at once, and again from panel-state after a
  // reload (each alert once per page)
  conn.on("measure-alert", (alert) => measureAlert(alert));
  conn.on("panel-state", ({ safety_alerts }) => {
    for (const alert of [...(safety_alerts ?? [])].reverse()) measureAlert(alert);
  });
  conn.on("signal-relay", (message) => {
    const { payload } = message;
    if (page.finished || page.routeSignal(message)) return; // a group pair's: the mesh takes it
    if (!clientInCall) return;
    ensureCall().handleSignal(payload);
  });
  conn.on("error", ({ code }) => {
    const words = ERROR_WORDS[code];
    if (words) showAlert(words);
  });
  conn.on("session-ended", () => ended("The client's link no longer works."));
  conn.on("consent-changed", ({ purpose, decision, ...rest }) => {
    if (purpose === "telehealth" && decision === "withdrawn" && page.isPrimary(peerIdOf(rest))) {
      noClient(`${clientLabel} withdrew the telehealth consent: the call has ended.`);
    }
  });
}

/**
 * The peer id a group call's server adds to a message about one person (undefined before).
 * @param {object} fields
 */
function peerIdOf(fields) {
  const peerId = /** @type {{peer_id?: unknown}} */ (fields).peer_id;
  return typeof peerId === "string" ? peerId : undefined;
}

/** @param {string} text */
function ended(text) {
  if (page.finished) return;
  shutDown();
  el.endedText.textContent = text;
  el.room.hidden = true;
  el.connectionState.textContent = "Session ended";
  el.ended.hidden = false;
  byId("host-ended-title").focus();
}

/** @param {string} text */
function stopped(text) {
  if (page.finished) return;
  shutDown();
  el.connectionState.textContent = "Disconnected";
  showAlert(text);
}

function shutDown() {
  clearInterval(timer);
  videoStall.disarm();
  connectionStall.disarm();
  page.finish();
  standby?.close();
  standby = null;
  for (const button of el.room.querySelectorAll("button")) button.disabled = true;
}

// --- start: media and ICE servers first, so a client already in the call is called at once ---

void Promise.all([startMedia(), page.iceConfiguration]).then(() => {
  page.startQuality();
  page.connect(subscribe);
});
