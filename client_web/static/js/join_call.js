// @ts-check
/**
 * The client's side of the session (`#step-call` and what moves the waiting room): the
 * session connection's messages, admission, and when the call starts. The call itself is
 * callpage.js's; the therapist's browser, the impolite peer, makes the first offer.
 */

import { CallPage } from "./callpage.js";
import { runSessionTimer, stallHelp } from "./callview.js";
import { t } from "./i18n.js";
import { CloseCode } from "./protocol_types.js";
import { mountClientExtras } from "./session_extras.js";

/** How long the client waits for the therapist's first offer before offering itself. */
const OFFER_FALLBACK_MS = 1500;

/**
 * @typedef {import("./protocol.js").SessionConnection} SessionConnection
 * @typedef {import("./protocol.js").ConnectionState} ConnectionState
 * @typedef {import("./call.js").RelayPayload} RelayPayload
 * @typedef {ReturnType<typeof import("./join_waiting.js").mountWaitingRoom>} WaitingRoom
 */

/**
 * @param {object} options
 * @param {string} options.sessionId
 * @param {HTMLElement} options.step  the call's section
 * @param {() => void} options.show  show the call's section
 * @param {WaitingRoom} options.waiting
 * @param {HTMLElement} options.checkinArea  where check-in forms appear
 * @param {(reason: string) => void} options.onEnded  the session ended (reason as on the wire)
 * @param {() => void} options.onDenied  the therapist did not let this device in
 * @param {(title: string, text: string) => void} options.onStopped  the connection ended
 * @param {() => void} [options.onLeft]  the client chose to leave (they may join again)
 * @param {number} [options.startsAtMs]  when the session starts, for the timer
 * @param {boolean} [options.guest]  a guest's link: the page offers only what a guest may do
 */
export function mountClientCall({ guest = false, sessionId, step, show, waiting, checkinArea, onEnded, onDenied, onStopped, onLeft, startsAtMs }) {
  let admitted = false;
  let therapistPresent = false;
  /** Camera and microphone have been asked for (opened or refused): a call may start. */
  let mediaReady = false;
  /** The call should start as soon as the media is ready (set before that happens). */
  let startWhenReady = false;
  /** @type {RelayPayload[]} signaling that arrived before the media */
  const earlySignals = [];
  /** @type {ReturnType<typeof setTimeout> | null} */
  let offerFallback = null;

  const page = new CallPage({
    role: "client",
    guest,
    sessionId,
    peerName: t("Your therapist"),
    videoStatus: (state) => {
      if (state === "connected") videoStall.disarm();
      else videoStall.arm();
      if (page.connection?.state !== "open") return null;
      return state === "connected"
        ? ""
        : state === "failed" || state === "disconnected"
          ? t("The video connection is unsteady; trying again…")
          : t("Connecting video…");
    },
    mountExtras: (connection, media) =>
      mountClientExtras(connection, {
        checkinArea,
        // a guest sends no signals (the server refuses them): visit.html leaves the section out
        signalSection: guest ? null : document.getElementById("signal-buttons"),
        goals: document.getElementById("goals"),
        media,
      }),
    onConnectionState,
    onClosed: ({ code, reason }) => {
      if (code === CloseCode.SESSION_ENDED) onEnded("therapist-ended");
      else if (code === CloseCode.DENIED) onDenied();
      else if (code === CloseCode.UNAUTHORIZED) onStopped(t("This link does not work here any more"), reason || t("Please ask your therapist for a new link."));
      else if (code === CloseCode.FORBIDDEN) onStopped(t("You have left the session"), reason);
      else if (code === CloseCode.TOO_MANY_MESSAGES) onStopped(t("The connection was closed"), reason);
      else onStopped(t("You have left the session"), reason || t("Please reload the page to join again."));
    },
  });
  const callStatus = page.elements.callStatus;
  void page.iceConfiguration.then(() => prerequisiteReady());
  const RELOAD_HELP = t(
    "This is taking longer than it should. Check that you are online; reloading this page brings you straight back.",
  );
  const videoStall = stallHelp(callStatus, RELOAD_HELP);
  const connectionStall = stallHelp(callStatus, RELOAD_HELP);
  const waitingStatus = document.getElementById("waiting-status");
  const waitingStall = waitingStatus ? stallHelp(waitingStatus, RELOAD_HELP) : null;

  // Leave (asks first), the session timer, and the safety code folded away once confirmed.
  const leaveDialog = /** @type {HTMLDialogElement | null} */ (document.getElementById("leave-dialog"));
  document.getElementById("leave-button")?.addEventListener("click", () => leaveDialog?.showModal());
  document.getElementById("leave-cancel")?.addEventListener("click", () => leaveDialog?.close());
  document.getElementById("leave-confirm")?.addEventListener("click", () => {
    leaveDialog?.close();
    onLeft?.();
  });
  const timerElement = document.getElementById("session-timer");
  /** @type {ReturnType<typeof setInterval> | null} */
  let timer = null;
  page.elements.codesMatch.addEventListener("click", () => {
    const details = page.elements.codesMatch.closest("details");
    if (details) details.open = false;
  });

  function waitingText() {
    return therapistPresent
      ? t("Your therapist knows you are here.")
      : t("Your therapist has not joined yet. Please keep this page open.");
  }

  /** @param {SessionConnection} conn */
  function subscribe(conn) {
    conn.on("welcome", (message) => {
      therapistPresent = message.peer === "in-call";
      if (message.state === "in-call") {
        admitted = true;
        enterCall({ eager: true }); // resumed: the therapist keeps its peer connection
      } else {
        admitted = false;
        waiting.show(waitingText());
      }
    });
    conn.on("admitted", ({ resumed }) => {
      admitted = true;
      enterCall({ eager: resumed === true });
      if (resumed) page.call?.resync();
    });
    conn.on("peer-joined", ({ role, resumed }) => {
      if (role !== "therapist") return;
      therapistPresent = true;
      const call = page.call;
      if (admitted && resumed && call && !call.closed) {
        // only the therapist's signaling came back: the media never stopped, keep the call
        callStatus.textContent = "";
        callStatus.classList.remove("is-warning");
        call.resync();
      } else if (admitted) {
        endCall(); // the therapist's browser starts a fresh peer connection; so do we
        enterCall({ eager: false });
      } else {
        waiting.show(waitingText());
      }
    });
    conn.on("peer-left", ({ role, reconnecting }) => {
      if (role !== "therapist") return;
      if (reconnecting && admitted) {
        // the therapist's signaling dropped; the peer connection carries on meanwhile
        callStatus.textContent = t("Your therapist is reconnecting…");
        return;
      }
      therapistPresent = false;
      if (admitted) {
        endCall();
        callStatus.textContent = t("Your therapist's connection dropped. Please stay on this page.");
      } else {
        waiting.show(waitingText());
      }
    });
    conn.on("signal-relay", (message) => {
      const { payload } = message;
      if (!admitted || page.finished || page.routeSignal(message)) return; // a group pair's
      if (!canCall()) {
        earlySignals.push(payload);
        return;
      }
      void page.ensureCall().handleSignal(payload);
    });
    conn.on("therapist-note", ({ text }) => waiting.showNote(text));
    conn.on("sent-back", () => {
      admitted = false;
      endCall();
      page.mesh.clear(); // out of the call: no pair with anyone
      waiting.show(t("Your therapist has asked you to wait a moment. Please keep this page open."));
    });
    conn.on("denied", () => onDenied());
    conn.on("session-ended", ({ reason }) => onEnded(reason));
    conn.on("consent-changed", ({ purpose, decision }) => {
      // without telehealth consent there is no call (the server closes this connection)
      if (purpose === "telehealth" && decision === "withdrawn") onEnded("consent-withdrawn");
    });
  }

  /**
   * @param {ConnectionState} state
   * @param {number} [code]  the close code behind a "reconnecting"
   */
  function onConnectionState(state, code) {
    const reconnecting = state === "reconnecting";
    if (state === "open") {
      connectionStall.disarm();
      waitingStall?.disarm();
    } else if (!step.hidden) connectionStall.arm();
    else if (waiting.shown) waitingStall?.arm();
    // Redis away (1013): the server asks to try again later; the call's media go on
    const unavailable = reconnecting && code === CloseCode.TRY_AGAIN_LATER;
    const reconnectingText = unavailable
      ? t("Live sessions are briefly unavailable; your call goes on. Reconnecting…")
      : t("Reconnecting…");
    // each failed attempt says "reconnecting" again: the help, once shown, stays
    if (!step.hidden) {
      if (connectionStall.shown) return;
      callStatus.textContent = reconnecting ? reconnectingText : "";
      callStatus.classList.toggle("is-warning", reconnecting);
    } else if (waiting.shown) {
      if (waitingStall?.shown) return;
      waiting.setStatus(reconnecting ? reconnectingText : state === "open" ? waitingText() : t("Connecting…"));
    }
  }

  /**
   * In the call (admitted). Waiting for the therapist's offer avoids both sides offering at
   * once (each glare costs a round of signaling). `eager`: start now — after a resume the
   * therapist's browser keeps its connection and only answers; a fresh one here is recognised
   * by its new fingerprint.
   * @param {{eager: boolean}} options
   */
  function enterCall({ eager }) {
    if (page.finished) return;
    if (step.hidden) show();
    if (timer === null && timerElement) timer = runSessionTimer(timerElement, startsAtMs ?? Date.now());
    callStatus.textContent = therapistPresent ? "" : t("Waiting for your therapist…");
    callStatus.classList.remove("is-warning");
    if (therapistPresent) {
      if (eager) startCall();
      else awaitOffer();
    }
    page.startQuality();
  }

  /** Camera and microphone were asked for and the ICE servers are known. */
  function canCall() {
    return mediaReady && page.configuration !== null;
  }

  /** Start the call now, or as soon as camera, microphone and ICE servers are ready. */
  function startCall() {
    if (canCall()) page.ensureCall();
    else startWhenReady = true;
  }

  /** Wait for the therapist's offer; offer ourselves if none comes. */
  function awaitOffer() {
    if (offerFallback !== null) clearTimeout(offerFallback);
    offerFallback = setTimeout(() => {
      offerFallback = null;
      const call = page.call;
      if (admitted && therapistPresent && !page.finished && !(call && !call.closed)) startCall();
    }, OFFER_FALLBACK_MS);
  }

  /** One more thing a call needs is there: start a call that was waiting for it. */
  function prerequisiteReady() {
    if (!canCall() || !admitted || page.finished) return;
    if (startWhenReady || earlySignals.length) {
      const call = page.ensureCall();
      for (const payload of earlySignals.splice(0)) void call.handleSignal(payload);
    }
    startWhenReady = false;
  }

  function endCall() {
    videoStall.disarm();
    if (offerFallback !== null) clearTimeout(offerFallback);
    offerFallback = null;
    startWhenReady = false;
    earlySignals.length = 0;
    page.endCall();
  }

  return {
    page,
    /** Knock: open the session connection (once). */
    connect() {
      page.connect(subscribe);
    },
    /** Camera and microphone have been asked for: a waiting call may start. */
    mediaReady() {
      mediaReady = true;
      prerequisiteReady();
    },
    /** The waiting room's status line after the Join button. */
    statusAfterJoin() {
      return admitted ? t("Joining…") : waitingText();
    },
    /** The session is over for this page. */
    finish() {
      videoStall.disarm();
      connectionStall.disarm();
      if (timer !== null) clearInterval(timer);
      timer = null;
      endCall();
      page.finish();
    },
  };
}
