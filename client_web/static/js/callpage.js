// @ts-check
/**
 * What the therapist's room (host.js) and the client's visit page (join.js) share around a
 * call: the ICE servers, the local camera and microphone, the session connection with its
 * page-lifetime hooks, the `Call` (perfect negotiation, call.js) with the remote video, the
 * safety code, the media toggles, the quality meter, the features stream, and the teardown.
 *
 * The pages keep only what is theirs (the therapist's waiting list, admit, send back and end;
 * the client's steps) and say so through the options: how to word a peer connection's state,
 * what a connection state or a final close means on their page, what extras to mount.
 *
 * Both pages have the same element ids in their call section: `call-status`, `remote-video`,
 * `self-video`, `mute-button`, `camera-button`, `sound-button`, `safety-code`, `codes-match`,
 * `safety-note`, `quality-level`, `quality-detail`, `audio-only-button`, `audio-only-hint`,
 * `call-mode`, the chat's `chat-log`, `chat-form`, `chat-input`, `chat-status`, and screen
 * sharing's `remote-screen`, `screen-button`, `screen-status` (screenshare.js; the therapist's
 * page adds `screen-allow-button`).
 *
 * Poor connections: "Audio only" makes the call's video transceivers inactive (no video either
 * way, same peer connection, no new admission); the other page hears of it peer to peer on
 * the call's data channel and says so. The hint suggests it while the measured quality is
 * poor, and the video bitrate is capped from the measured bandwidth while it is not good.
 * ICE servers come from `GET /api/v1/ice` at load (the connection check needs them before
 * the socket opens), then from every `welcome`, and are fetched again before the TURN
 * credentials expire in a long session.
 *
 * Group calls (issue #15): with more than two people the server sends `roster`; every other
 * person present gets a pair of their own (mesh.js, one peer connection each) shown as a tile
 * (tiles.js). The page's own call (`call`, the one the page logic starts and restarts) is the
 * PRIMARY pair: the therapist on a client's page, the first admitted client on the
 * therapist's; if that client leaves, the next one's pair becomes the primary one. Chat,
 * screen sharing and the features stream stay on the primary pair. The upstream video budget
 * is shared by the pairs (pairs.js `pairVideoCap`).
 */

import { Call, fetchIceConfiguration, networkLevel, qualityLevel, videoBitrateCapFor } from "./call.js";
import { bindMediaToggles, byId, playStream, renderQuality, safetyCodeView } from "./callview.js";
import { Mesh } from "./mesh.js";
import { THERAPIST_PEER_ID, pairVideoCap, parseRoster, tileName } from "./pairs.js";
import { mountTiles, watchSpeaking } from "./tiles.js";
import { chatParts, mountChat } from "./chat.js";
import { describeMediaError, openMedia, stopMedia } from "./devices.js";
import { t } from "./i18n.js";
import { SessionConnection } from "./protocol.js";
import { ScreenSharing, screenParts } from "./screenshare.js";

const QUALITY_INTERVAL_MS = 2000;
/** Fresh TURN credentials this long before the old ones expire (or at half their life). */
const ICE_REFRESH_MARGIN_S = 300;
/** What the page says when relay-only media cannot reach the TURN server. */
export const RELAY_PROBLEMS = Object.freeze({
  refused: t(
    "Video cannot start: the relay server that keeps your address private refused the connection. " +
      "Please reload the page; if it happens again, the clinic needs to check its relay server.",
  ),
  unreachable: t(
    "Video cannot start: the relay server that keeps your address private could not be reached. " +
      "Please check your internet connection and reload the page.",
  ),
});
/** Used when /api/v1/ice cannot be read: host candidates only (same network). */
const NO_ICE_SERVERS = Object.freeze({ iceServers: [], iceTransportPolicy: "all" });

/**
 * @typedef {import("./protocol.js").ConnectionState} ConnectionState
 * @typedef {import("./protocol.js").ClosedEvent} ClosedEvent
 * @typedef {import("./devices.js").DeviceChoice} DeviceChoice
 * @typedef {{stream: MediaStream | null, pc: RTCPeerConnection | null, videoOff: boolean}} Media
 * @typedef {{refresh(): void, stop(): void}} Extras  check-ins, cues, feature stream
 * @typedef {{box: HTMLElement, title: HTMLElement, help: HTMLElement}} ProblemParts
 */

/**
 * @typedef {object} CallPageOptions
 * @property {"therapist" | "client"} role
 * @property {boolean} [guest]  a guest's page (role "client"): no screen sharing of its own
 * @property {string} sessionId
 * @property {string} peerName  who is on the other end, for the safety-code note
 * @property {(state: RTCPeerConnectionState) => string | null} videoStatus  the call status
 *   line for a peer connection state, or null to leave the line as it is
 * @property {(connection: SessionConnection, media: () => Media) => Extras | null} mountExtras
 * @property {(state: ConnectionState, code?: number) => void} onConnectionState  until the page
 *   finished; `code` is the close code that caused a "reconnecting"
 * @property {(event: ClosedEvent) => void} onClosed  the connection gave up for good (unless
 *   the page finished first)
 * @property {(text: string) => void} [onChatReceived]  a chat message arrived (after it is shown)
 * @property {(stream: MediaStream | null) => void} [onScreenChange]  this page started or
 *   stopped sharing its screen (a call prepared ahead must be prepared again)
 * @property {(person: RosterPerson | null) => void} [onPrimaryChange]  the therapist's page:
 *   the primary client left the roster, and this person's running pair is the page's call
 *   now (null: nobody else is in the call)
 * @property {(roster: RosterPerson[]) => void} [onRoster]  a roster arrived (after the pairs
 *   followed it)
 */

/** @typedef {import("./pairs.js").RosterPerson} RosterPerson */

/** How often the tiles' speaking rings follow the received audio level. */
const SPEAKING_INTERVAL_MS = 300;

/** The call section's elements, the same ids on both pages. */
function callElements() {
  return {
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
    audioOnly: /** @type {HTMLButtonElement} */ (byId("audio-only-button")),
    audioOnlyHint: byId("audio-only-hint"),
    callMode: byId("call-mode"),
    /** Over the other person's video: their microphone or camera is off (optional element). */
    peerMedia: document.getElementById("peer-media"),
  };
}

/**
 * Show why camera or microphone could not be opened.
 * @param {ProblemParts} parts
 * @param {unknown} error
 */
export function showMediaProblem(parts, error) {
  const problem = describeMediaError(error);
  parts.title.textContent = problem.title;
  parts.help.textContent = problem.help;
  parts.box.hidden = false;
}

/** One page's call with the other party, and everything around it. */
export class CallPage {
  /** @type {CallPageOptions} */
  #options;
  /** The call section's elements. */
  elements = callElements();
  /** @type {MediaStream | null} */
  localStream = null;
  /** @type {RTCConfiguration | null} ICE servers and policy, once /api/v1/ice answered */
  configuration = null;
  /** @type {Promise<RTCConfiguration>} resolves once, with the fallback if the fetch failed */
  iceConfiguration;
  /** @type {SessionConnection | null} */
  connection = null;
  /** @type {Call | null} */
  call = null;
  /** @type {Extras | null} */
  extras = null;
  /** The session is over for this page (ended, denied, replaced): nothing restarts. */
  finished = false;
  /** @type {ReturnType<typeof setInterval> | null} */
  #qualityTimer = null;
  /** good network samples in a row (a video bitrate cap is lifted after enough of them) */
  #calmSamples = 0;
  #safety;
  #toggles;
  /** Audio only by this person's choice. */
  #audioOnly = false;
  /** The other person said (peer to peer) that they chose audio only. */
  #peerAudioOnly = false;
  /** @type {string | null} why relay-only media cannot start, shown until it connects */
  #relayProblem = null;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #iceRefreshTimer = null;
  #peerName;
  /** Chat over the call's data channel (chat.js), if the page has a `#chat` section. */
  chat;
  /** Screen sharing (screenshare.js), if the page has its elements. */
  screen;
  /** @type {Mesh<Call>} the group call's other pairs (none in a two-person call) */
  mesh;
  /** @type {string | null} this page's peer id, from `welcome` (null: a server without groups) */
  myPeerId = null;
  /** @type {string | null} who the page's own call is with, once known (peer id) */
  primaryPeerId = null;
  /** @type {RosterPerson[] | null} the last roster (null: none yet, a two-person server) */
  roster = null;
  /** @type {string | null} the chat's explanation as the page wrote it (two people) */
  #chatNoteText = null;
  /** @type {number | null} the video cap the measured network asks for, before sharing out */
  #networkCap = null;
  #tiles;
  /** @type {Map<string, import("./tiles.js").Tile>} */
  #pairTiles = new Map();
  /** @type {(() => void) | null} stops the speaking rings */
  #stopSpeaking = null;

  /** @param {CallPageOptions} options */
  constructor(options) {
    this.#options = options;
    const el = this.elements;
    this.iceConfiguration = fetchIceConfiguration()
      .catch(() => /** @type {RTCConfiguration} */ ({ ...NO_ICE_SERVERS }))
      .then((ice) => {
        this.configuration ??= ice; // a `welcome` that came first is fresher
        return this.configuration;
      });
    this.#peerName = options.peerName;
    const chat = chatParts();
    this.chat = chat
      ? mountChat(chat, {
          send: (text) => this.call?.sendChat(text) ?? false,
          peerName: () => this.#peerName,
          onReceived: (text) => options.onChatReceived?.(text),
        })
      : null;
    const screen = screenParts();
    this.screen = screen
      ? new ScreenSharing(screen, {
          role: options.role,
          guest: options.guest === true,
          peerName: () => this.#peerName,
          send: (message) => this.connection?.send(message) ?? false,
          call: () => (this.call && !this.call.closed ? this.call : null),
          onLocalChange: (stream) => options.onScreenChange?.(stream),
        })
      : null;
    this.#safety = safetyCodeView({
      code: el.safetyCode,
      confirm: el.codesMatch,
      note: el.safetyNote,
      peerName: options.peerName,
    });
    this.#toggles = bindMediaToggles(
      { mute: el.mute, camera: el.camera },
      () => this.localStream,
      (state) => {
        this.call?.sendMediaState(state);
        for (const { call } of this.mesh.entries()) call.sendMediaState(state);
      },
    );
    el.codesMatch.addEventListener("click", () => {
      this.call?.confirmSafetyCode();
      this.#safety.confirmedByMe();
    });
    el.audioOnly.addEventListener("click", () => this.setAudioOnly(!this.#audioOnly));
    el.sound.addEventListener("click", () => {
      el.remoteVideo.muted = false;
      void el.remoteVideo.play().catch(() => {});
      el.sound.hidden = true;
    });
    this.#tiles = mountTiles({
      stage: /** @type {HTMLElement} */ (el.remoteVideo.parentElement),
      primaryVideo: el.remoteVideo,
      codes: document.getElementById("pair-codes"),
    });
    this.#tiles.setPrimaryName(options.peerName);
    this.mesh = new Mesh({
      makeCall: ({ peerId, polite }) =>
        new Call({
          role: options.role,
          polite,
          localStream: this.localStream,
          configuration: this.configuration ?? { ...NO_ICE_SERVERS },
          send: (payload) => this.#relay(payload, peerId),
        }),
      onAdded: (peerId, call, person) => this.#addPair(peerId, call, person),
      onRemoved: (peerId) => {
        this.#pairTiles.get(peerId)?.remove();
        this.#pairTiles.delete(peerId);
      },
      onChanged: (peerId, person) => this.#pairTiles.get(peerId)?.setName(this.#nameOf(person)),
    });
    this.#exposeForDiagnostics();
    this.#bindPageLifetime();
  }

  // --- camera and microphone -----------------------------------------------------------------

  /**
   * Open camera and microphone (closing what was open), showing any problem in `problem`.
   * Sets `localStream` (null when nothing could be opened); call `applyLocalStream` next.
   * @param {DeviceChoice} choice
   * @param {ProblemParts} problem
   * @param {(missing: Array<"audio" | "video">) => string} [missingText]  the problem's title
   *   when only one of the two was found (default: say nothing)
   */
  async openLocalMedia(choice, problem, missingText) {
    stopMedia(this.localStream);
    this.localStream = null;
    problem.box.hidden = true;
    try {
      const { stream, missing } = await openMedia(choice);
      this.localStream = stream;
      if (missing.length && missingText) {
        showMediaProblem(problem, { name: "NotFoundError" });
        problem.title.textContent = missingText(missing);
      }
    } catch (error) {
      showMediaProblem(problem, error);
    }
  }

  /** Reflect the local stream in the toggles and send its tracks in a running call. */
  async applyLocalStream() {
    this.#toggles.refresh();
    if (this.call && this.localStream) await this.call.replaceLocalStream(this.localStream);
    for (const { call } of this.mesh.entries()) {
      if (this.localStream) await call.replaceLocalStream(this.localStream);
    }
  }

  /**
   * Play the own camera in the call section, or stop playing it (while it is not shown).
   * @param {boolean} visible
   */
  playSelf(visible) {
    playStream(this.elements.selfVideo, visible ? this.localStream : null, { muted: true });
  }

  // --- the session connection ----------------------------------------------------------------

  /**
   * Open the session connection (once), mount the page's extras on it, let the page
   * subscribe, then connect.
   * @param {(connection: SessionConnection) => void} subscribe
   * @returns {SessionConnection}
   */
  connect(subscribe) {
    if (this.connection) return this.connection;
    const connection = new SessionConnection({ sessionId: this.#options.sessionId });
    this.connection = connection;
    this.extras = this.#options.mountExtras(connection, () => ({
      stream: this.localStream,
      pc: this.call?.pc ?? null,
      videoOff: this.videoOff,
    }));
    connection.on("welcome", (welcome) => {
      const peerId = /** @type {{peer_id?: unknown}} */ (welcome).peer_id;
      if (typeof peerId === "string" && peerId) this.myPeerId = peerId;
      if (this.#options.role === "client") this.primaryPeerId = THERAPIST_PEER_ID;
      this.mesh.resync();
      this.setIceConfiguration(
        { iceServers: [...welcome.ice_servers], iceTransportPolicy: welcome.ice_transport_policy },
        welcome.ice_ttl_seconds,
      );
    });
    connection.on("state", ({ state, code }) => {
      if (!this.finished) this.#options.onConnectionState(state, code);
    });
    connection.on("message", (message) => {
      if (/** @type {{type: string}} */ (message).type === "roster") this.#onRoster(message);
    });
    this.screen?.listen(connection); // before the page: a new call finds the share state set
    subscribe(connection);
    connection.on("closed", (event) => {
      if (!this.finished) this.#options.onClosed(event);
    });
    connection.connect();
    return connection;
  }

  /**
   * Relay signaling to another person through the session connection: to `to`, or to the
   * primary pair's person. The addressee is named once the server has sent a roster (a server
   * that sends none knows two people only, and the relay goes to the other one).
   * @param {import("./call.js").RelayPayload} payload
   * @param {string | null} [to]
   */
  #relay(payload, to = this.primaryPeerId) {
    /** @type {import("./protocol_types.js").RelayMessage & {to?: string}} */
    const message = { type: "relay", payload };
    if (this.roster !== null && to) message.to = to;
    return this.connection?.send(message) ?? false;
  }

  // --- the group: roster, pairs, tiles -------------------------------------------------------

  /**
   * A `signal-relay` for one of the mesh's pairs (true: taken), or for the page's own call.
   * @param {{from?: unknown, payload: import("./call.js").RelayPayload}} message
   * @returns {boolean}
   */
  routeSignal(message) {
    const from = typeof message.from === "string" ? message.from : undefined;
    if (from === undefined || this.primaryPeerId === null || from === this.primaryPeerId) return false;
    return this.mesh.handleSignal(from, message.payload);
  }

  /**
   * Whether a person the server names (`peer-joined`, `peer-left`, …) is the one the page's
   * own call is with. The therapist's page takes the first client it hears of as its primary;
   * a message without a peer id (a two-person server) is always about the other one.
   * @param {unknown} peerId
   * @returns {boolean}
   */
  isPrimary(peerId) {
    // without a peer id: the other one of two; in a group it is ambiguous, the roster decides
    if (typeof peerId !== "string" || !peerId) return !this.inGroup;
    this.primaryPeerId ??= peerId;
    return this.primaryPeerId === peerId;
  }

  /** More than two people are in the call (the last roster says so). */
  get inGroup() {
    return (this.roster?.length ?? 0) > 2;
  }

  /** @param {unknown} message */
  #onRoster(message) {
    const roster = parseRoster(message);
    if (!roster || this.finished) return;
    this.roster = roster;
    const me = this.myPeerId;
    if (me === null) return;
    const others = roster.filter((person) => person.peer_id !== me);
    const primary = this.#options.role === "client" ? THERAPIST_PEER_ID : this.primaryPeerId;
    const present = others.filter((person) => person.present);
    // the therapist's page: the client it has (or the first admitted client) before a guest
    const next =
      this.#options.role === "client" ||
      (primary !== null && others.some((person) => person.peer_id === primary))
        ? primary
        : ((present.find((person) => person.kind === "client") ?? present[0])?.peer_id ?? null);
    const promoted = next !== null && next !== primary ? this.mesh.get(next) : null;
    if (next !== primary) this.primaryPeerId = next;
    const person = others.find((candidate) => candidate.peer_id === next);
    if (person && this.#options.role === "therapist" && person.label) this.setPeerName(person.label);
    if (person) this.#tiles.setPrimaryName(this.#nameOf(person));
    if (promoted && person) {
      // the primary client left: the next one's running pair becomes the page's call
      this.#forget(next ?? "");
      this.endCall();
      this.ensureCall(() => promoted);
      this.#options.onPrimaryChange?.(person);
    } else if (primary !== null && next === null && this.#options.role === "therapist") {
      this.endCall(); // the primary client left and nobody else is in the call
      this.#options.onPrimaryChange?.(null);
    }
    this.mesh.update(roster, me, this.primaryPeerId);
    this.#shareVideoBudget();
    this.#renderChatNote(person ?? null);
    this.#options.onRoster?.(roster);
  }

  /**
   * The chat's explanation says whom messages reach: in a group only the primary pair's person
   * (chat stays on the primary pair), otherwise the other one of two (the page's own words).
   * @param {RosterPerson | null} person  the primary pair's person
   */
  #renderChatNote(person) {
    const note = document.getElementById("chat-note");
    if (!note) return;
    this.#chatNoteText ??= note.textContent ?? "";
    if (!this.inGroup || !person) {
      note.textContent = this.#chatNoteText;
      return;
    }
    const name = this.#options.role === "client" ? t("your therapist") : person.label;
    note.textContent = t(
      "Messages reach only {name}, straight between your two browsers; the others in the call do not see them. Attune never receives or stores them; they are gone when this page closes.",
      { name },
    );
  }

  /**
   * Forget a pair's tile without closing its call (it moves to the primary place).
   * @param {string} peerId
   */
  #forget(peerId) {
    this.#pairTiles.get(peerId)?.remove();
    this.#pairTiles.delete(peerId);
    this.mesh.release(peerId);
  }

  /** @param {{label: string, kind: RosterPerson["kind"]}} person */
  #nameOf(person) {
    return tileName(person, { guest: t("guest"), therapist: t("therapist") });
  }

  /**
   * @param {string} peerId
   * @param {Call} call
   * @param {RosterPerson} person
   */
  #addPair(peerId, call, person) {
    const tile = this.#tiles.add(peerId, this.#nameOf(person), () => call.confirmSafetyCode());
    this.#pairTiles.set(peerId, tile);
    call.setAudioOnly(this.#audioOnly);
    call.sendMediaState(this.#toggles.state());
    call.on("remote-stream", ({ stream }) => playStream(tile.video, stream, {}));
    call.on("safety-code", ({ code }) => tile.setCode(code));
    call.on("safety-code-reset", () => tile.setCode(null));
    call.on("safety-code-failed", () => tile.setCode(null));
    call.on("peer-confirmed", () => tile.confirmedByPeer());
    if (call.remoteStream) playStream(tile.video, call.remoteStream, {});
    if (call.safetyCode) tile.setCode(call.safetyCode);
    this.#watchSpeaking();
  }

  /** Ring the tile of whoever speaks, from the received audio level (nothing is sent). */
  #watchSpeaking() {
    if (this.#stopSpeaking !== null) return;
    this.#stopSpeaking = watchSpeaking(
      () => [
        {
          pc: this.call?.pc ?? null,
          setSpeaking: (/** @type {boolean} */ on) => this.#tiles.setPrimarySpeaking(on),
        },
        ...this.mesh.entries().map(({ peerId, call }) => ({
          pc: call.pc,
          setSpeaking: (/** @type {boolean} */ on) => this.#pairTiles.get(peerId)?.setSpeaking(on),
        })),
      ],
      SPEAKING_INTERVAL_MS,
    );
  }

  /** Each pair's video cap: the network's cap shared by everyone this page sends to. */
  #shareVideoBudget() {
    const calls = [this.call, ...this.mesh.entries().map((entry) => entry.call)].filter(
      (call) => call !== null && !call.closed,
    );
    const cap = this.#audioOnly ? null : pairVideoCap(this.#networkCap, calls.length);
    for (const call of calls) {
      if (call && cap !== call.videoBitrateCap) void call.setVideoBitrateCap(cap);
    }
  }

  // --- ICE servers ---------------------------------------------------------------------------

  /**
   * Use these ICE servers from now on (the running call too), and fetch fresh ones before
   * their TURN credentials expire.
   * @param {RTCConfiguration} configuration
   * @param {number} ttlSeconds  the TURN credentials' lifetime (0: none to refresh)
   */
  setIceConfiguration(configuration, ttlSeconds) {
    this.configuration = configuration;
    if (this.call && !this.call.closed) this.call.setConfiguration(configuration);
    if (this.#iceRefreshTimer !== null) clearTimeout(this.#iceRefreshTimer);
    this.#iceRefreshTimer = null;
    if (!(ttlSeconds > 0) || this.finished) return;
    const refreshIn = Math.max(ttlSeconds / 2, ttlSeconds - ICE_REFRESH_MARGIN_S);
    this.#iceRefreshTimer = setTimeout(() => {
      this.#iceRefreshTimer = null;
      fetchIceConfiguration()
        .then((fresh) => this.setIceConfiguration(fresh, fresh.ttlSeconds))
        .catch(() => this.setIceConfiguration(configuration, Math.min(ttlSeconds, 60)));
    }, refreshIn * 1000);
  }

  // --- poor-connection modes -----------------------------------------------------------------

  /** Video is off by choice: audio only on either side, or this camera switched off. */
  get videoOff() {
    const cameraOff = this.elements.camera.dataset.on === "true";
    return this.#audioOnly || this.#peerAudioOnly || cameraOff;
  }

  /**
   * Audio only on or off for this person (no video either way while on).
   * @param {boolean} on
   */
  setAudioOnly(on) {
    this.#audioOnly = on;
    this.elements.audioOnly.setAttribute("aria-pressed", String(on));
    this.call?.setAudioOnly(on);
    for (const { call } of this.mesh.entries()) call.setAudioOnly(on);
    this.#renderMode();
  }

  #renderMode() {
    const el = this.elements;
    const peer = this.#options.peerName;
    const Peer = peer.charAt(0).toUpperCase() + peer.slice(1);
    if (this.#audioOnly) {
      el.callMode.textContent = t("You switched to audio only: video is off both ways.");
    } else if (this.#peerAudioOnly) {
      el.callMode.textContent = t("{name} switched to audio only.", { name: Peer });
    } else {
      el.callMode.textContent = "";
    }
    // the stage shows "Audio only" instead of the last frame that arrived
    el.remoteVideo.parentElement?.classList.toggle("video-off", this.#audioOnly || this.#peerAudioOnly);
    if (this.#audioOnly || this.#peerAudioOnly) el.audioOnlyHint.hidden = true;
  }

  // --- the call ------------------------------------------------------------------------------

  /** A new call with the current stream and ICE servers, not started (the page may prepare it). */
  newCall() {
    return new Call({
      role: this.#options.role,
      localStream: this.localStream,
      configuration: this.configuration ?? { ...NO_ICE_SERVERS },
      send: (payload) => this.#relay(payload),
      screenStream: this.screen?.localStream ?? null,
    });
  }

  /**
   * The running call, or `make()` (default: a new call) shown on this page and started.
   * @param {() => Call} [make]
   * @returns {Call}
   */
  ensureCall(make = () => this.newCall()) {
    if (this.call && !this.call.closed) return this.call;
    const call = make();
    this.call = call;
    this.#networkCap = null; // a new primary call measures its network afresh
    const el = this.elements;
    call.setAudioOnly(this.#audioOnly);
    call.on("peer-mode", ({ audioOnly }) => {
      this.#peerAudioOnly = audioOnly;
      this.#renderMode();
    });
    call.on("safety-code-reset", () => {
      // a fresh peer connection: the other side says its mode again on the new channel
      this.#peerAudioOnly = false;
      this.#renderMode();
    });
    /** @param {"refused" | "unreachable"} reason */
    const relayProblem = (reason) => {
      this.#relayProblem = RELAY_PROBLEMS[reason];
      el.callStatus.textContent = this.#relayProblem;
    };
    call.on("relay-unavailable", ({ reason }) => relayProblem(reason));
    if (call.relayUnavailable) relayProblem(call.relayUnavailable); // a prepared call gathered
    call.on("remote-stream", ({ stream }) => {
      this.extras?.refresh(); // the peer connection exists now: the feature stream may start
      playStream(el.remoteVideo, stream, { needsGesture: () => (el.sound.hidden = false) });
    });
    call.on("safety-code", ({ code }) => {
      this.#safety.show(code);
      this.#tiles.setPrimaryCode(code);
    });
    call.on("safety-code-reset", () => {
      this.#safety.waiting();
      this.#tiles.setPrimaryCode(null);
    });
    call.on("safety-code-failed", () => this.#safety.failed());
    call.on("peer-confirmed", () => this.#safety.confirmedByPeer());
    call.on("peer-media", (state) => this.#showPeerMedia(state));
    call.on("peer-chat", ({ text }) => this.chat?.received(text));
    this.screen?.attach(call);
    call.sendMediaState(this.#toggles.state());
    call.on("connection-state", ({ state }) => {
      if (state === "connected") this.#relayProblem = null;
      const text = this.#relayProblem ?? this.#options.videoStatus(state);
      if (text !== null) el.callStatus.textContent = text;
    });
    this.#safety.waiting();
    if (call.remoteStream) {
      playStream(el.remoteVideo, call.remoteStream, { needsGesture: () => (el.sound.hidden = false) });
    }
    if (call.safetyCode) {
      this.#safety.show(call.safetyCode);
      this.#tiles.setPrimaryCode(call.safetyCode);
    }
    call.start();
    this.extras?.refresh();
    this.#shareVideoBudget();
    return call;
  }

  /** Close the call (the features stream with it) and clear its video and safety code. */
  endCall() {
    this.extras?.stop();
    this.call?.close();
    this.call = null;
    this.elements.remoteVideo.srcObject = null;
    this.#safety.idle();
    this.#tiles.setPrimaryCode(null);
    this.#showPeerMedia({ audio: true, video: true });
  }

  /**
   * Say over the other person's video that their microphone or camera is off (instead of a
   * silent black tile).
   * @param {{audio: boolean, video: boolean}} state
   */
  #showPeerMedia(state) {
    const badge = this.elements.peerMedia;
    if (!badge) return;
    const name = this.#options.peerName;
    const text =
      !state.audio && !state.video
        ? t("{name} turned off microphone and camera", { name })
        : !state.audio
          ? t("{name} turned off the microphone", { name })
          : !state.video
            ? t("{name} turned off the camera", { name })
            : "";
    if (badge.textContent !== text) badge.textContent = text;
    badge.hidden = !text;
  }

  /** @param {string} name  who is on the other end, for the safety-code note */
  setPeerName(name) {
    this.#peerName = name;
    this.#safety.setPeerName(name);
    this.#tiles.setPrimaryName(name);
  }

  /** Measure the call's quality every two seconds (from now until the page finishes). */
  startQuality() {
    if (this.#qualityTimer !== null) return;
    const parts = { level: this.elements.qualityLevel, detail: this.elements.qualityDetail };
    this.#qualityTimer = setInterval(async () => {
      const call = this.call;
      if (!call?.pc) {
        renderQuality(parts, null);
        return;
      }
      try {
        let quality = await call.quality();
        const audioOnly = this.#audioOnly || this.#peerAudioOnly;
        if (audioOnly) {
          // no video by choice: its frame rate says nothing about the connection
          const figures = { ...quality, framesPerSecond: null };
          quality = { ...figures, level: qualityLevel(figures) };
        }
        renderQuality(parts, quality);
        // on a weak connection: suggest audio only, and keep video within the bandwidth
        this.elements.audioOnlyHint.hidden = audioOnly || quality.level !== "poor";
        const calm = this.#calmSamples;
        this.#calmSamples = networkLevel(quality) === "good" ? calm + 1 : 0;
        this.#networkCap = this.#audioOnly ? null : videoBitrateCapFor(quality, this.#networkCap, calm);
        this.#shareVideoBudget();
      } catch {
        // the connection closed meanwhile
      }
    }, QUALITY_INTERVAL_MS);
  }

  // --- the end -------------------------------------------------------------------------------

  /** The session is over for this page: end the call, release the devices, close for good. */
  finish() {
    this.finished = true;
    if (this.#iceRefreshTimer !== null) clearTimeout(this.#iceRefreshTimer);
    this.#iceRefreshTimer = null;
    this.endCall();
    this.mesh.clear();
    this.#stopSpeaking?.();
    this.#stopSpeaking = null;
    if (this.#qualityTimer !== null) clearInterval(this.#qualityTimer);
    this.#qualityTimer = null;
    stopMedia(this.localStream);
    this.localStream = null;
    this.connection?.close();
    this.chat?.clear();
    this.screen?.stop({ tell: false, text: "" });
  }

  #bindPageLifetime() {
    // a network change: a socket that died in it is found in seconds, not at the idle ping
    window.addEventListener("online", () => this.connection?.checkNow());
    const network = /** @type {{connection?: EventTarget}} */ (navigator).connection;
    network?.addEventListener?.("change", () => this.connection?.checkNow());
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) location.reload(); // back from the back-forward cache: start afresh
    });
    window.addEventListener("pagehide", () => {
      // leaving the page (a reload too): close cleanly so the other side knows at once, but
      // as the page's own doing, not as a session that stopped (the page forgets its passed
      // checks and resume token only when the session stops)
      this.finished = true;
      this.call?.close();
      this.mesh.clear();
      this.connection?.close();
    });
  }

  /** Diagnostics and tests: the live objects (same-origin scripts only, under the CSP). */
  #exposeForDiagnostics() {
    const page = this;
    Object.defineProperty(window, "__attune", {
      value: Object.freeze({
        role: this.#options.role,
        get connection() {
          return page.connection;
        },
        get call() {
          return page.call;
        },
        get pc() {
          return page.call?.pc ?? null;
        },
        /** Every pair of the call: the primary one first, then the mesh's. */
        get pairs() {
          const primary = page.call && !page.call.closed ? [{ peerId: page.primaryPeerId, call: page.call }] : [];
          return [...primary, ...page.mesh.entries()].map(({ peerId, call }) => ({
            peerId,
            pc: call.pc,
            safetyCode: call.safetyCode,
          }));
        },
        get myPeerId() {
          return page.myPeerId;
        },
        get localStream() {
          return page.localStream;
        },
        get screenStream() {
          return page.screen?.localStream ?? null;
        },
      }),
    });
  }
}
