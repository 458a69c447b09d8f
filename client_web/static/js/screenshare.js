// @ts-check
/**
 * Screen sharing in the call, on both call pages (issue #16). The therapist shares a screen or
 * a window whenever they like; the client only while the therapist allows it (the therapist's
 * "Let … share their screen" switch, relayed and enforced by the server, off again whenever
 * the client leaves the call). The screen goes peer to peer as a separate video track
 * (call.js `setScreenStream`); only "started as stream X / stopped / allowed" pass the server
 * (`screen-share`, `screen-share-allow`; `peer-screen`, `screen-share-allowed`).
 *
 * The receiving page shows the other side's screen large with the faces small (the class
 * `is-screen-sharing` on the stage) and says so in a live region ("J.M. is sharing their
 * screen"). Sharing stops from the page's button, from the browser's own "Stop sharing"
 * (the track ends), when the therapist takes the leave back, or when the client is sent back.
 * Without `navigator.mediaDevices.getDisplayMedia` (phones) the button stays hidden; showing
 * the other side's screen still works.
 */

/**
 * @typedef {import("./call.js").Call} Call
 * @typedef {import("./protocol.js").SessionConnection} SessionConnection
 * @typedef {import("./protocol_types.js").ClientMessage} ClientMessage
 */

/**
 * @typedef {object} ScreenParts
 * @property {HTMLElement} stage  the call's stage; `is-screen-sharing` while a screen is shown
 * @property {HTMLVideoElement} video  where the other side's screen plays (`#remote-screen`)
 * @property {HTMLButtonElement} button  share / stop sharing (`#screen-button`)
 * @property {HTMLElement} status  a live region (`#screen-status`)
 * @property {HTMLButtonElement | null} allow  the therapist's switch (`#screen-allow-button`)
 */

import { t } from "./i18n.js";

/** Constraints for the shared screen: a readable picture at a modest frame rate, no audio. */
const DISPLAY_OPTIONS = Object.freeze({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });

/**
 * Whether this browser can share a screen at all (phones cannot: no getDisplayMedia).
 * @param {MediaDevices | undefined} [mediaDevices]
 */
export function canShareScreen(mediaDevices = globalThis.navigator?.mediaDevices) {
  return typeof mediaDevices?.getDisplayMedia === "function";
}

/** The screen-sharing elements of a call page, or null on a page without them. */
export function screenParts() {
  const video = document.getElementById("remote-screen");
  const button = document.getElementById("screen-button");
  const status = document.getElementById("screen-status");
  const stage = video?.parentElement;
  if (!(video instanceof HTMLVideoElement) || !(button instanceof HTMLButtonElement) || !status || !stage) {
    return null;
  }
  const allow = document.getElementById("screen-allow-button");
  return { stage, video, button, status, allow: allow instanceof HTMLButtonElement ? allow : null };
}

/**
 * @typedef {object} ScreenOptions
 * @property {"therapist" | "client"} role
 * @property {() => string} peerName  who is on the other end ("J.M.", "Your therapist")
 * @property {(message: ClientMessage) => boolean} send  to the server; false: not connected
 * @property {() => Call | null} call  the running call, if any
 * @property {(stream: MediaStream | null) => void} [onLocalChange]  this side started or stopped
 * @property {boolean} [guest]  a guest's page: it sees shared screens but never shares its own
 */

/** One page's screen sharing: its own share, the other side's, and the therapist's leave. */
export class ScreenSharing {
  /** @type {ScreenParts} */
  #parts;
  /** @type {ScreenOptions} */
  #options;
  /** @type {MediaStream | null} the screen this page shares */
  #local = null;
  #starting = false;
  /** Whether the client may share (the therapist's leave, as the server last said). */
  #allowed = false;
  /** The therapist's page: whether a client is in the call (the switch needs one). */
  #clientInCall = false;
  /** @type {string | null} the stream id the other side announced as its screen */
  #remoteId = null;
  #remoteShown = false;
  /** @type {Array<() => void>} unsubscribes from the previous call */
  #unsubscribe = [];

  /**
   * @param {ScreenParts} parts
   * @param {ScreenOptions} options
   */
  constructor(parts, options) {
    this.#parts = parts;
    this.#options = options;
    parts.button.addEventListener("click", () => {
      if (this.#local) this.stop();
      else void this.start();
    });
    parts.allow?.addEventListener("click", () => {
      const sent = options.send({ type: "screen-share-allow", allowed: !this.#allowed });
      if (!sent) this.#say(t("Not changed: not connected to the server."));
    });
    this.#render();
  }

  /** The screen this page shares, or null. */
  get localStream() {
    return this.#local;
  }

  /**
   * The page's (new) call: it sends this page's screen and shows the other side's.
   * @param {Call} call
   */
  attach(call) {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#unsubscribe = [call.on("remote-screen", ({ stream }) => this.#showRemote(stream))];
    if (call.screenStream !== this.#local) call.setScreenStream(this.#local);
    call.setRemoteScreen(this.#remoteId);
  }

  /**
   * Follow the session connection: the other side's share, the leave, and the call's changes.
   * Subscribe before the page does, so a new call finds the state already updated.
   * @param {SessionConnection} connection
   */
  listen(connection) {
    const { role } = this.#options;
    const other = role === "therapist" ? "client" : "therapist";
    connection.on("welcome", ({ peer, state }) => {
      if (role === "therapist") {
        this.#clientInCall = peer !== "absent";
        this.#allowed = false; // the room says so again after this welcome when it is on
        this.#announceOwn();
      } else if (state !== "in-call") {
        this.#setAllowed(false, { quiet: true });
      }
      this.#render();
    });
    // the client is in the call: say where this page stands (a reloaded page shares nothing)
    connection.on("admitted", () => role === "client" && this.#announceOwn());
    connection.on("screen-share-allowed", ({ allowed }) => this.#setAllowed(allowed));
    connection.on("peer-screen", ({ role: sharer, sharing, stream_id }) => {
      if (sharer !== other) return;
      this.#setRemote(sharing ? stream_id ?? null : null);
    });
    connection.on("peer-joined", ({ role: who, resumed }) => {
      if (who !== other || resumed) return;
      this.#setRemote(null); // a new page over there shares nothing yet
      if (role === "therapist") {
        this.#clientInCall = true;
        this.#setAllowed(false, { quiet: true });
      }
    });
    connection.on("peer-left", ({ role: who, reconnecting }) => {
      if (who !== other || reconnecting) return;
      this.#setRemote(null);
      if (role === "therapist") this.#clientLeft();
    });
    connection.on("quick-exit", ({ in_call }) => {
      if (in_call) this.#clientLeft();
    });
    connection.on("sent-back", () => {
      this.stop({ tell: false, text: "" });
      this.#setAllowed(false, { quiet: true });
      this.#setRemote(null);
    });
    connection.on("error", ({ code }) => {
      if (code !== "screen-share-not-allowed") return;
      this.#setAllowed(false, { quiet: true });
      this.stop({ tell: false, text: "" });
      this.#say(t("Your therapist has not allowed screen sharing."));
    });
  }

  /** Ask the browser for a screen or window and share it. */
  async start() {
    if (this.#local || this.#starting || !this.#mayShare()) return;
    this.#starting = true;
    /** @type {MediaStream} */
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia(DISPLAY_OPTIONS);
    } catch (error) {
      const cancelled = error instanceof DOMException && error.name === "NotAllowedError";
      this.#say(cancelled ? t("Screen sharing was cancelled.") : t("Your screen could not be shared."));
      return;
    } finally {
      this.#starting = false;
    }
    const track = stream.getVideoTracks()[0];
    // the other side was told nothing yet: a share the therapist took back meanwhile is dropped
    const problem = !track
      ? t("Your screen could not be shared.")
      : !this.#mayShare()
        ? t("Your therapist turned screen sharing off.")
        : !this.#options.send({ type: "screen-share", sharing: true, stream_id: stream.id })
          ? t("Not shared: not connected to the server.")
          : null;
    if (problem !== null || !track) {
      for (const each of stream.getTracks()) each.stop();
      this.#say(problem ?? "");
      return;
    }
    track.contentHint = "detail"; // text stays sharp rather than motion smooth
    // the browser's own "Stop sharing" button ends the track
    track.addEventListener("ended", () => {
      if (this.#local === stream) this.stop();
    });
    this.#local = stream;
    this.#options.call()?.setScreenStream(stream); // announced first, so the track is known
    this.#options.onLocalChange?.(stream);
    this.#render();
    this.#say(t("You are sharing your screen."));
  }

  /**
   * Stop sharing (the page's button, the browser's own, or the leave taken back).
   * @param {{tell?: boolean, text?: string}} [options]  `tell`: say so to the other side
   */
  stop({ tell = true, text = t("You stopped sharing your screen.") } = {}) {
    const stream = this.#local;
    if (!stream) return;
    this.#local = null;
    for (const track of stream.getTracks()) track.stop();
    this.#options.call()?.setScreenStream(null);
    this.#options.onLocalChange?.(null);
    if (tell) this.#options.send({ type: "screen-share", sharing: false });
    this.#render();
    if (text) this.#say(text);
  }

  // --- internals -----------------------------------------------------------------------------

  #mayShare() {
    if (this.#options.guest) return false; // the server refuses a guest's share
    return canShareScreen() && (this.#options.role === "therapist" || this.#allowed);
  }

  /** Say where this page stands (after a welcome or an admission): the server forgets pages. */
  #announceOwn() {
    const stream = this.#local;
    this.#options.send(
      stream ? { type: "screen-share", sharing: true, stream_id: stream.id } : { type: "screen-share", sharing: false },
    );
  }

  #clientLeft() {
    this.#clientInCall = false;
    this.#setAllowed(false, { quiet: true });
    this.#setRemote(null);
  }

  /**
   * @param {boolean} allowed
   * @param {{quiet?: boolean}} [options]
   */
  #setAllowed(allowed, { quiet = false } = {}) {
    const changed = allowed !== this.#allowed;
    this.#allowed = allowed;
    if (this.#options.role === "client" && !allowed && this.#local) {
      this.stop({ tell: false, text: quiet ? "" : t("Your therapist turned screen sharing off.") });
    } else if (changed && !quiet) {
      const name = this.#options.peerName();
      if (this.#options.role === "therapist") {
        this.#say(allowed ? t("{name} may share their screen now.", { name }) : t("{name} may no longer share their screen.", { name }));
      } else if (allowed && canShareScreen()) {
        this.#say(t("Your therapist allowed you to share your screen."));
      }
    }
    this.#render();
  }

  /** @param {string | null} streamId */
  #setRemote(streamId) {
    this.#remoteId = streamId;
    this.#options.call()?.setRemoteScreen(streamId);
  }

  /** @param {MediaStream | null} stream */
  #showRemote(stream) {
    const { stage, video } = this.#parts;
    const shown = stream !== null;
    const name = this.#options.peerName();
    const label = this.#options.role === "client" ? t("Your therapist's shared screen") : t("{name}'s shared screen", { name });
    video.setAttribute("aria-label", label);
    if (video.srcObject !== stream) video.srcObject = stream;
    video.muted = true; // a shared screen carries no sound here
    if (stream) void video.play().catch(() => {});
    video.hidden = !shown;
    stage.classList.toggle("is-screen-sharing", shown);
    if (shown !== this.#remoteShown) {
      this.#remoteShown = shown;
      this.#say(shown ? t("{name} is sharing their screen.", { name }) : t("{name} stopped sharing their screen.", { name }));
    }
  }

  #render() {
    const { button, allow } = this.#parts;
    const sharing = this.#local !== null;
    button.hidden = !sharing && !this.#mayShare();
    button.textContent = sharing ? t("Stop sharing screen") : t("Share screen");
    button.dataset.on = String(sharing);
    if (allow) {
      allow.setAttribute("aria-pressed", String(this.#allowed));
      allow.disabled = !this.#clientInCall;
    }
  }

  /** @param {string} text */
  #say(text) {
    this.#parts.status.textContent = text;
  }
}
