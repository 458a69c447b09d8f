// @ts-check
/**
 * The call between the therapist's and the client's browsers: one RTCPeerConnection driven by
 * the PERFECT NEGOTIATION pattern (the therapist is impolite, the client polite), signaled
 * through the session WebSocket's `relay` messages, healed by ICE restarts, and checked by the
 * safety code (DESIGN.md §3.4) over a negotiated data channel. Media goes browser to browser;
 * the safety code and its nonces never go to the server.
 *
 *   const call = new Call({ role: "client", localStream, configuration,
 *                           send: (payload) => connection.send({ type: "relay", payload }) });
 *   call.on("remote-stream", ({ stream }) => { video.srcObject = stream; });
 *   call.on("safety-code", ({ code }) => { … });
 *   connection.on("signal-relay", ({ payload }) => call.handleSignal(payload));
 *   call.start();
 *
 * Relay payloads (docs/protocol.md, `relay`; typed in protocol_types.js):
 * `{kind: "description", description: {type, sdp}}` and `{kind: "candidate", candidate: {…}}`.
 *
 * Self-healing rules, so both sides never need to agree on "start over" by any other message:
 *   - ICE "failed" → restartIce(); "disconnected" for DISCONNECTED_GRACE_MS → restartIce();
 *     the browser coming back online or changing network → restartIce().
 *   - A remote offer whose DTLS fingerprint differs from the current remote one comes from a
 *     fresh peer connection on the other side (a reload, a new tab): start a fresh one here
 *     too and answer it. A remote answer that cannot be applied does the same.
 *   - `resync()` after the WebSocket comes back: resend an offer that may have been lost.
 */

import { Emitter } from "./events.js";
import {
  CommitRevealInitiator,
  CommitRevealResponder,
  NONCE_BYTES,
  canonicalFingerprint,
} from "./sas.js";

/** The negotiated data channel (same id on both sides, no in-band open message). */
export const SAFETY_CHANNEL = Object.freeze({ label: "attune-safety", id: 0 });
const DISCONNECTED_GRACE_MS = 2500;
const CONFIRM_MESSAGE = "sas-match";
/** The call's mode on the data channel, peer to peer: `{t: "mode", audioOnly: boolean}`. */
const MODE_MESSAGE = "mode";
/** TURN error codes that mean the relay refused our credentials (RFC 8656). */
const RELAY_REFUSED_CODES = new Set([401, 403, 437, 441]);

/**
 * A data-channel message announcing the other side's mode, or null for any other message.
 * @param {unknown} fields
 * @returns {{audioOnly: boolean} | null}
 */
export function modeMessage(fields) {
  if (fields === null || typeof fields !== "object") return null;
  const message = /** @type {Record<string, unknown>} */ (fields);
  if (message.t !== MODE_MESSAGE || Object.keys(message).length !== 2) return null;
  return typeof message.audioOnly === "boolean" ? { audioOnly: message.audioOnly } : null;
}
/** Peer to peer: whether this side's microphone and camera are on (never via the server). */
const MEDIA_MESSAGE = "media";
/** Chat, peer to peer only: `{t: "chat", text}`; the server never sees it, nothing stores it. */
const CHAT_MESSAGE = "chat";
/** The longest chat message sent or accepted, in characters. */
export const MAX_CHAT_CHARS = 1000;

/**
 * A data-channel chat message's text, or null for any other (or a malformed) message.
 * @param {unknown} fields
 * @returns {string | null}
 */
export function chatText(fields) {
  if (fields === null || typeof fields !== "object") return null;
  const message = /** @type {Record<string, unknown>} */ (fields);
  if (message.t !== CHAT_MESSAGE || Object.keys(message).length !== 2) return null;
  const text = message.text;
  if (typeof text !== "string" || !text.trim() || text.length > MAX_CHAT_CHARS) return null;
  return text;
}

/** @typedef {"therapist" | "client"} CallRole */

/**
 * What `Call.on(type, fn)` hands to `fn`, by event type.
 * @typedef {object} CallEvents
 * @property {{stream: MediaStream}} remote-stream
 * @property {{state: RTCPeerConnectionState, iceState: RTCIceConnectionState}} connection-state
 * @property {{code: string}} safety-code
 * @property {{}} safety-code-reset
 * @property {{reason: string}} safety-code-failed
 * @property {{}} peer-confirmed
 * @property {{audio: boolean, video: boolean}} peer-media
 * @property {{where: string, error: unknown}} problem
 * @property {{reason: "refused" | "unreachable"}} relay-unavailable
 * @property {{audioOnly: boolean}} peer-mode
 * @property {{audioOnly: boolean}} mode
 * @property {{text: string}} peer-chat
 * @property {{stream: MediaStream | null}} remote-screen
 */

/**
 * @typedef {import("./protocol_types.js").RelayPayload} RelayPayload
 * @typedef {import("./protocol_types.js").RelayCandidate} RelayCandidate
 */

/**
 * A gathered candidate as the protocol carries it: absent fields left out, never null.
 * @param {RTCIceCandidate} candidate
 * @returns {RelayCandidate}
 */
function relayCandidate(candidate) {
  /** @type {RelayCandidate["candidate"]} */
  const fields = { candidate: candidate.candidate };
  if (candidate.sdpMid !== null) fields.sdpMid = candidate.sdpMid;
  if (candidate.sdpMLineIndex !== null) fields.sdpMLineIndex = candidate.sdpMLineIndex;
  if (candidate.usernameFragment !== null) fields.usernameFragment = candidate.usernameFragment;
  return { kind: "candidate", candidate: fields };
}

/**
 * @typedef {object} CallOptions
 * @property {CallRole} role  the therapist is the impolite peer, the client the polite one
 * @property {boolean} [polite]  a group call's pair (pairs.js): true for the person admitted
 *   later. The impolite side commits in the safety-code exchange. Default: from `role`.
 * @property {(payload: RelayPayload) => boolean} send  deliver a payload to the other side;
 *   false when it could not be sent now (see `resync`)
 * @property {MediaStream | null} localStream  camera and microphone (null: receive only)
 * @property {RTCConfiguration} configuration  iceServers and iceTransportPolicy
 * @property {MediaStream | null} [screenStream]  a shared screen (getDisplayMedia), sent as a
 *   separate video track with its own transceiver and stream (see `setScreenStream`)
 */

/**
 * Connection-quality figures for the indicator; null where not measured (yet).
 * @typedef {object} Quality
 * @property {number | null} rttMs  round trip on the selected candidate pair
 * @property {number | null} lossPercent  inbound packets lost since the previous sample
 * @property {number | null} jitterMs  inbound audio jitter
 * @property {number} framesDecoded  remote video frames decoded so far
 * @property {number | null} framesPerSecond  remote video frames decoded per second lately
 * @property {number | null} [availableOutgoingKbps]  the browser's bandwidth estimate upstream
 * @property {"good" | "fair" | "poor" | "unknown"} level
 */

/** The video bitrate cap's floor and ceiling, in bits per second. */
export const VIDEO_CAP_RANGE = Object.freeze({ min: 100_000, max: 1_500_000 });

/** Samples (2 s apart) the network must read good in a row before a cap is lifted. */
export const CALM_SAMPLES_TO_LIFT = 5;

/**
 * The network's share of the quality level (pure): round trip and loss only. A low frame rate
 * alone can be a busy device, not a narrow link, so it never starts a bitrate cap.
 * @param {Quality} q
 * @returns {"good" | "fair" | "poor" | "unknown"}
 */
export function networkLevel(q) {
  return qualityLevel({ rttMs: q.rttMs, lossPercent: q.lossPercent, framesPerSecond: null });
}

/**
 * The video bitrate cap for a measured quality (pure). A cap starts when the network turns
 * fair or poor (round trip or loss): 80 % of the browser's upstream bandwidth estimate (the
 * rest is left for audio and retransmissions), in 50 kbit/s steps, 100 kbit/s at least, or a
 * fixed cap without an estimate. Once set, it follows the estimate down and up, also while
 * the network reads good again — a call held below a narrow link's rate shows no loss and a
 * short round trip at once, which says nothing about the link having room — and is lifted
 * after CALM_SAMPLES_TO_LIFT good samples in a row (the browser's own congestion control
 * then leads; if the network turns fair again, a new cap starts) or when 80 % of the
 * estimate reaches the ceiling. A cap is never set at the ceiling or above.
 * @param {Quality} q
 * @param {number | null} [current]  the cap in force now, in bits per second (null: none)
 * @param {number} [calm]  good network samples in a row before this one
 * @returns {number | null}
 */
export function videoBitrateCapFor(q, current = null, calm = 0) {
  const level = networkLevel(q);
  const steady = level === "good" || level === "unknown";
  if (current === null && steady) return null;
  if (current !== null && level === "good" && calm + 1 >= CALM_SAMPLES_TO_LIFT) return null;
  const estimate = q.availableOutgoingKbps;
  if (typeof estimate !== "number" || estimate <= 0) {
    return current ?? (level === "poor" ? 150_000 : 500_000);
  }
  const stepped = Math.round((estimate * 800) / 50_000) * 50_000;
  if (stepped >= VIDEO_CAP_RANGE.max) return null; // room enough: no cap, or the cap is lifted
  return Math.max(VIDEO_CAP_RANGE.min, stepped);
}

/**
 * ICE servers and the transport policy for this browser, from `GET /api/v1/ice`, with the
 * TURN credentials' lifetime (0 when there are none).
 * @param {typeof fetch} [fetchImpl]
 * @returns {Promise<RTCConfiguration & {ttlSeconds: number}>}
 */
export async function fetchIceConfiguration(fetchImpl = (input, init) => fetch(input, init)) {
  const response = await fetchImpl("/api/v1/ice", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`/api/v1/ice answered ${response.status}`);
  const body = await response.json();
  return {
    iceServers: Array.isArray(body.iceServers) ? body.iceServers : [],
    iceTransportPolicy: body.iceTransportPolicy === "relay" ? "relay" : "all",
    ttlSeconds: typeof body.ttlSeconds === "number" ? body.ttlSeconds : 0,
  };
}

/**
 * Turn a kind of local track on or off without renegotiating (`track.enabled`): a disabled
 * microphone sends silence, a disabled camera sends black frames.
 * @param {MediaStream | null} stream
 * @param {"audio" | "video"} kind
 * @param {boolean} enabled
 */
export function setTracksEnabled(stream, kind, enabled) {
  for (const track of stream?.getTracks() ?? []) {
    if (track.kind === kind) track.enabled = enabled;
  }
}

/**
 * The SHA-256 fingerprint in an SDP (`a=fingerprint:sha-256 AB:…`), or null.
 * @param {string | undefined | null} sdp
 * @returns {string | null}
 */
export function sdpFingerprint(sdp) {
  const match = /^a=fingerprint:(sha-256 [0-9A-Fa-f:]+)\s*$/im.exec(sdp ?? "");
  return match ? canonicalFingerprint(match[1]) : null;
}

/**
 * The DTLS certificate fingerprints actually in use: `getStats()` → transport →
 * local/remote certificate; the SDP's `a=fingerprint` lines when the stats lack them.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<{local: string, remote: string}>}
 */
export async function dtlsFingerprints(pc) {
  const report = await pc.getStats();
  /** @type {string | null} */
  let local = null;
  /** @type {string | null} */
  let remote = null;
  /** @param {string | undefined} id */
  const certificate = (id) => {
    const stats = id ? report.get(id) : undefined;
    if (!stats || typeof stats.fingerprint !== "string") return null;
    return canonicalFingerprint(`${stats.fingerprintAlgorithm ?? "sha-256"} ${stats.fingerprint}`);
  };
  report.forEach((stats) => {
    if (stats.type !== "transport") return;
    // with BUNDLE there is one transport; prefer the one whose DTLS is up
    if (local && remote && stats.dtlsState !== "connected") return;
    local = certificate(stats.localCertificateId) ?? local;
    remote = certificate(stats.remoteCertificateId) ?? remote;
  });
  local ??= sdpFingerprint(pc.currentLocalDescription?.sdp);
  remote ??= sdpFingerprint(pc.currentRemoteDescription?.sdp);
  if (!local || !remote) throw new Error("no DTLS fingerprints yet");
  return { local, remote };
}

/**
 * A calm three-step level for the indicator (pure).
 * @param {{rttMs: number | null, lossPercent: number | null, framesPerSecond: number | null}} q
 * @returns {"good" | "fair" | "poor" | "unknown"}
 */
export function qualityLevel(q) {
  if (q.rttMs === null && q.lossPercent === null) return "unknown";
  const rtt = q.rttMs ?? 0;
  const loss = q.lossPercent ?? 0;
  if (rtt > 700 || loss > 10 || (q.framesPerSecond !== null && q.framesPerSecond < 3)) {
    return "poor";
  }
  if (rtt > 300 || loss > 3 || (q.framesPerSecond !== null && q.framesPerSecond < 10)) {
    return "fair";
  }
  return "good";
}

/**
 * Samples getStats() and turns counters into rates between samples.
 */
export class QualityMeter {
  /** @type {{at: number, packetsReceived: number, packetsLost: number, framesDecoded: number} | null} */
  #previous = null;

  /**
   * @param {RTCPeerConnection} pc
   * @returns {Promise<Quality>}
   */
  async sample(pc) {
    const report = await pc.getStats();
    let packetsReceived = 0;
    let packetsLost = 0;
    let framesDecoded = 0;
    /** @type {number | null} */
    let jitterMs = null;
    /** @type {number | null} */
    let rttMs = null;
    /** @type {number | null} */
    let availableOutgoingKbps = null;
    /** @type {string | undefined} */
    let selectedPair;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
    });
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        packetsReceived += s.packetsReceived ?? 0;
        packetsLost += Math.max(0, s.packetsLost ?? 0);
        if (s.kind === "video") framesDecoded += s.framesDecoded ?? 0;
        if (s.kind === "audio" && typeof s.jitter === "number") jitterMs = s.jitter * 1000;
      } else if (s.type === "candidate-pair" && typeof s.currentRoundTripTime === "number") {
        const selected = selectedPair ? s.id === selectedPair : s.nominated && s.state === "succeeded";
        if (selected) {
          rttMs = s.currentRoundTripTime * 1000;
          if (typeof s.availableOutgoingBitrate === "number") {
            availableOutgoingKbps = s.availableOutgoingBitrate / 1000;
          }
        }
      }
    });
    const now = performance.now();
    /** @type {number | null} */
    let lossPercent = null;
    /** @type {number | null} */
    let framesPerSecond = null;
    const before = this.#previous;
    if (before) {
      const received = packetsReceived - before.packetsReceived;
      const lost = packetsLost - before.packetsLost;
      if (received + lost > 0) lossPercent = (100 * Math.max(0, lost)) / (received + lost);
      const seconds = (now - before.at) / 1000;
      if (seconds > 0) framesPerSecond = (framesDecoded - before.framesDecoded) / seconds;
    }
    this.#previous = { at: now, packetsReceived, packetsLost, framesDecoded };
    const round = (/** @type {number | null} */ v) => (v === null ? null : Math.round(v * 10) / 10);
    const figures = {
      rttMs: round(rttMs),
      lossPercent: round(lossPercent),
      jitterMs: round(jitterMs),
      framesDecoded,
      framesPerSecond: round(framesPerSecond),
    };
    return { ...figures, availableOutgoingKbps: round(availableOutgoingKbps), level: qualityLevel(figures) };
  }

  /** Forget the previous sample (a fresh peer connection starts its counters at zero). */
  reset() {
    this.#previous = null;
  }
}

/** @returns {Uint8Array} */
function freshNonce() {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

/**
 * One call with the other party, across ICE restarts and fresh peer connections.
 *
 * Events (`on(type, fn)`):
 *   "remote-stream" {stream}       the other side's media (a new stream after a fresh start)
 *   "connection-state" {state, iceState}   the peer connection's states
 *   "safety-code" {code}           the code both screens must show, e.g. "0123 4567"
 *   "safety-code-reset" {}         a fresh peer connection: the old code no longer applies
 *   "safety-code-failed" {reason}  the exchange broke its rules: show no code
 *   "peer-confirmed" {}            the other person pressed "Codes match"
 *   "peer-media" {audio, video}    the other person's microphone and camera are on or off
 *   "problem" {where, error}       something failed that the call works around (for logs)
 *   "relay-unavailable" {reason}   relay-only, and no relay candidate could be gathered: the
 *                                  TURN server refused the credentials or could not be reached
 *   "mode" {audioOnly}             this side switched audio only on or off
 *   "peer-mode" {audioOnly}        the other side said (on the data channel) it switched
 *   "peer-chat" {text}             a chat message from the other side (data channel only)
 *   "remote-screen" {stream}       the other side's shared screen to show large, or null: its
 *                                  stream was announced (`setRemoteScreen`) and its track is live
 *
 * Screen sharing: the shared screen is a video track of its own `MediaStream`, added with its
 * own transceiver and negotiated like any change (perfect negotiation); stopping stops that
 * transceiver. The receiver tells it from the camera by its stream id (the SDP's msid, the
 * same on both ends), which the sharer announces through the server before adding it. Until
 * the announcement, a track of any stream but the camera's is held back and never shown.
 */
export class Call {
  /** @type {CallOptions} */
  #options;
  #polite;
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** @type {RTCDataChannel | null} */
  #channel = null;
  /** @type {MediaStream | null} */
  #remoteStream = null;
  #makingOffer = false;
  #ignoreOffer = false;
  #closed = false;
  /** Prepared ahead (`prepare`): negotiates locally but sends nothing until `start`. */
  #standby = false;
  /** @type {Promise<void>} */
  #incoming = Promise.resolve();
  /** @type {ReturnType<typeof setTimeout> | null} */
  #disconnectedTimer = null;
  /** @type {Emitter<CallEvents>} */
  #events = new Emitter();
  /** @type {string | null} */
  #safetyCode = null;
  /** What this side sends, told to the other side whenever the data channel opens. */
  #mediaState = { audio: true, video: true };
  #meter = new QualityMeter();
  /** @type {Array<() => void>} */
  #unlisten = [];
  /** Audio only by this side's choice: video transceivers inactive (nothing sent or received). */
  #audioOnly = false;
  /** @type {"refused" | "unreachable" | null} why relay-only gathering found no relay */
  #relayUnavailable = null;
  /** @type {number | null} the video bitrate cap in bits per second, null: the browser's own */
  #videoBitrateCap = null;
  /** @type {RTCRtpTransceiver[]} the transceivers sending this side's shared screen */
  #screenTransceivers = [];
  /** @type {string | null} the stream id the other side announced as its shared screen */
  #remoteScreenId = null;
  /** @type {string | null} the stream id of the other side's camera and microphone */
  #remoteCameraId = null;
  /** @type {Map<string, MediaStream>} the other side's streams besides its camera's */
  #remoteOther = new Map();
  /** @type {MediaStream | null} the remote screen last reported ("remote-screen") */
  #shownScreen = null;

  /** @param {CallOptions} options */
  constructor(options) {
    this.#options = { ...options };
    this.#polite = options.polite ?? options.role === "client";
    const onNetworkChange = () => this.restartIce();
    globalThis.addEventListener?.("online", onNetworkChange);
    this.#unlisten.push(() => globalThis.removeEventListener?.("online", onNetworkChange));
    // The Network Information API (navigator.connection, Chromium only) has no TypeScript DOM
    // types; only its change event is used.
    const connection = /** @type {{connection?: EventTarget}} */ (globalThis.navigator ?? {}).connection;
    if (connection?.addEventListener) {
      connection.addEventListener("change", onNetworkChange);
      this.#unlisten.push(() => connection.removeEventListener("change", onNetworkChange));
    }
  }

  /**
   * @template {keyof CallEvents} K
   * @param {K} type
   * @param {(payload: CallEvents[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    return this.#events.on(type, fn);
  }

  /**
   * @template {keyof CallEvents} K
   * @param {K} type
   * @param {CallEvents[K]} payload
   */
  #emit(type, payload) {
    this.#events.emit(type, payload);
  }

  /**
   * @param {string} where
   * @param {unknown} error
   */
  #problem(where, error) {
    this.#emit("problem", { where, error });
  }

  /** The current peer connection (null before `start` and after `close`). */
  get pc() {
    return this.#pc;
  }

  /** The other side's media, once a track arrived. */
  get remoteStream() {
    return this.#remoteStream;
  }

  /** The safety code of the current peer connection, once both sides agreed on it. */
  get safetyCode() {
    return this.#safetyCode;
  }

  /** True after `close()`. */
  get closed() {
    return this.#closed;
  }

  /**
   * Relay-only, and the last gathering found no relay candidate: why (a page that subscribes
   * after a prepared call gathered reads it here). Null otherwise.
   */
  get relayUnavailable() {
    return this.#relayUnavailable;
  }

  /** Whether this side asked for an audio-only call. */
  get audioOnly() {
    return this.#audioOnly;
  }

  /**
   * Switch audio only on or off: every video transceiver goes `inactive` (nothing sent, nothing
   * received, renegotiated through perfect negotiation) or back to what it was; the other side
   * hears of it on the data channel, not through the server. Keeps the same peer connection,
   * so switching back needs no new admission.
   * @param {boolean} on
   */
  setAudioOnly(on) {
    if (this.#closed || on === this.#audioOnly) return;
    this.#audioOnly = on;
    const pc = this.#pc;
    if (pc) this.#applyVideoDirection(pc);
    this.#sendMode();
    this.#emit("mode", { audioOnly: on });
  }

  /**
   * Share a screen (a `getDisplayMedia` stream) as a separate video track, or stop (null):
   * its own transceiver, added or stopped, renegotiated through perfect negotiation; a later
   * fresh peer connection adds it again. Announce its stream id to the other side first.
   * @param {MediaStream | null} stream
   */
  setScreenStream(stream) {
    if (this.#closed || (this.#options.screenStream ?? null) === stream) return;
    this.#options.screenStream = stream;
    const pc = this.#pc;
    if (!pc || pc.signalingState === "closed") return;
    for (const transceiver of this.#screenTransceivers) {
      if (transceiver.direction !== "stopped") transceiver.stop();
    }
    this.#screenTransceivers = [];
    if (stream) this.#addScreen(pc, stream);
  }

  /** The screen this side shares, or null. */
  get screenStream() {
    return this.#options.screenStream ?? null;
  }

  /**
   * Which of the other side's streams is its shared screen (announced through the server,
   * `peer-screen`), or null when it shares none.
   * @param {string | null} streamId
   */
  setRemoteScreen(streamId) {
    this.#remoteScreenId = streamId;
    this.#reportRemoteScreen();
  }

  /**
   * @param {RTCPeerConnection} pc
   * @param {MediaStream} stream
   */
  #addScreen(pc, stream) {
    for (const track of stream.getVideoTracks()) {
      const sender = pc.addTrack(track, stream);
      const transceiver = pc.getTransceivers().find((t) => t.sender === sender);
      if (transceiver) this.#screenTransceivers.push(transceiver);
    }
    if (this.#audioOnly) this.#applyVideoDirection(pc); // no video either way, screens too
  }

  /** Tell the page whether the announced remote screen is there to show (only on a change). */
  #reportRemoteScreen() {
    const id = this.#remoteScreenId;
    const stream = id !== null ? this.#remoteOther.get(id) ?? null : null;
    const live = stream?.getVideoTracks().some((track) => track.readyState === "live") ? stream : null;
    if (live === this.#shownScreen) return;
    this.#shownScreen = live;
    this.#emit("remote-screen", { stream: live });
  }

  /**
   * Cap the bitrate of the video this side sends (`RTCRtpSender.setParameters`), e.g. from the
   * measured bandwidth on a weak connection; null removes the cap.
   * @param {number | null} bitsPerSecond
   */
  async setVideoBitrateCap(bitsPerSecond) {
    this.#videoBitrateCap = bitsPerSecond;
    const pc = this.#pc;
    if (pc) await this.#applyBitrateCap(pc);
  }

  /** The video bitrate cap in force, in bits per second (null: none). */
  get videoBitrateCap() {
    return this.#videoBitrateCap;
  }

  /**
   * New ICE servers (fresh TURN credentials) for the running peer connection and any later one.
   * @param {RTCConfiguration} configuration
   */
  setConfiguration(configuration) {
    this.#options.configuration = configuration;
    const pc = this.#pc;
    if (!pc || pc.signalingState === "closed") return;
    try {
      pc.setConfiguration({ ...pc.getConfiguration(), iceServers: configuration.iceServers });
    } catch (error) {
      this.#problem("configuration", error);
    }
  }

  /**
   * Start the call: negotiation begins by itself. After `prepare`, the offer made meanwhile
   * goes out at once, with every ICE candidate gathered so far inside it. Idempotent.
   */
  start() {
    if (this.#closed) return;
    if (!this.#pc) {
      this.#createPeer();
      return;
    }
    if (!this.#standby) return;
    this.#standby = false;
    const pc = this.#pc;
    if (pc.signalingState === "have-local-offer" && pc.localDescription) {
      this.#sendDescription(pc.localDescription);
    }
  }

  /**
   * Get ready before anyone is there to call (the therapist, while a client waits): create the
   * peer connection, make the offer and gather candidates, but send nothing until `start()`.
   * Saves the set-up and most of the candidate messages when the call begins.
   */
  prepare() {
    if (this.#closed || this.#pc) return;
    this.#standby = true;
    this.#createPeer();
  }

  /** Hang up: close the peer connection and stop listening. Local tracks stay with the page. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#teardown();
    for (const unlisten of this.#unlisten) unlisten();
    this.#unlisten = [];
  }

  /** Ask for an ICE restart (network change, failure); a no-op without a live connection. */
  restartIce() {
    const pc = this.#pc;
    if (!pc || pc.signalingState === "closed") return;
    pc.restartIce();
  }

  /**
   * After the signaling socket came back: resend an offer the other side may never have got,
   * and restart ICE if the media path is down.
   */
  resync() {
    const pc = this.#pc;
    if (!pc || pc.signalingState === "closed") return;
    if (pc.signalingState === "have-local-offer" && pc.localDescription) {
      this.#sendDescription(pc.localDescription);
    } else if (["failed", "disconnected"].includes(pc.iceConnectionState)) {
      pc.restartIce();
    }
  }

  /**
   * Swap camera or microphone tracks without renegotiating (a device change).
   * @param {MediaStream} stream
   */
  async replaceLocalStream(stream) {
    this.#options.localStream = stream;
    const pc = this.#pc;
    if (!pc) return;
    for (const sender of pc.getSenders()) {
      const kind = sender.track?.kind;
      if (!kind) continue;
      const replacement = stream.getTracks().find((track) => track.kind === kind) ?? null;
      await sender.replaceTrack(replacement);
    }
  }

  /** Connection-quality figures for the indicator (null level "unknown" before media flows). */
  async quality() {
    const pc = this.#pc;
    if (!pc) {
      return /** @type {Quality} */ ({
        rttMs: null,
        lossPercent: null,
        jitterMs: null,
        framesDecoded: 0,
        framesPerSecond: null,
        level: "unknown",
      });
    }
    return this.#meter.sample(pc);
  }

  /** Tell the other side this person confirmed that the codes match (the code is not sent). */
  confirmSafetyCode() {
    const channel = this.#channel;
    if (channel?.readyState === "open") channel.send(JSON.stringify({ t: CONFIRM_MESSAGE }));
  }

  /**
   * Tell the other side whether this person's microphone and camera are on, over the call's
   * own data channel (peer to peer: the server never learns it). Sent again on reconnects.
   * @param {{audio: boolean, video: boolean}} state
   */
  sendMediaState(state) {
    this.#mediaState = { audio: state.audio, video: state.video };
    const channel = this.#channel;
    if (channel?.readyState === "open") channel.send(JSON.stringify({ t: MEDIA_MESSAGE, ...this.#mediaState }));
  }

  /**
   * Send a chat message to the other side over the call's data channel (end to end: never
   * through the server). False when the channel is not open (the call is not connected).
   * @param {string} text  1..MAX_CHAT_CHARS characters
   * @returns {boolean}
   */
  sendChat(text) {
    const channel = this.#channel;
    if (channel?.readyState !== "open" || !text.trim() || text.length > MAX_CHAT_CHARS) return false;
    try {
      channel.send(JSON.stringify({ t: CHAT_MESSAGE, text }));
    } catch {
      return false;
    }
    return true;
  }

  /**
   * A `signal-relay` payload from the other side; processed strictly in arrival order.
   * @param {RelayPayload} payload
   * @returns {Promise<void>}
   */
  handleSignal(payload) {
    this.#incoming = this.#incoming
      .then(() => this.#onSignal(payload))
      .catch((error) => this.#problem("signal", error));
    return this.#incoming;
  }

  // --- the peer connection -------------------------------------------------------------------

  #createPeer() {
    const pc = new RTCPeerConnection(this.#options.configuration);
    this.#pc = pc;
    this.#makingOffer = false;
    this.#ignoreOffer = false;
    this.#meter.reset();
    this.#remoteStream = new MediaStream();
    const remote = this.#remoteStream;

    const local = this.#options.localStream;
    for (const track of local?.getTracks() ?? []) pc.addTrack(track, local ?? new MediaStream());
    this.#remoteCameraId = null;
    this.#remoteOther = new Map();
    this.#reportRemoteScreen();
    if (!this.#polite) {
      // the impolite side's offer shapes the call: ask to receive what it does not send
      for (const kind of /** @type {const} */ (["audio", "video"])) {
        if (!local?.getTracks().some((track) => track.kind === kind)) {
          pc.addTransceiver(kind, { direction: "recvonly" });
        }
      }
    }
    this.#screenTransceivers = [];
    const screen = this.#options.screenStream ?? null;
    if (screen) this.#addScreen(pc, screen); // after the camera: the camera's m-lines come first
    if (this.#audioOnly) this.#applyVideoDirection(pc);
    this.#setUpSafetyChannel(pc);

    const relayOnly = this.#options.configuration.iceTransportPolicy === "relay";
    let gathered = 0;
    /** @type {"refused" | "unreachable" | null} */
    let relayError = null;
    pc.onicecandidateerror = (event) => {
      const code = /** @type {RTCPeerConnectionIceErrorEvent} */ (event).errorCode;
      if (RELAY_REFUSED_CODES.has(code)) relayError = "refused";
      else relayError ??= "unreachable";
    };
    pc.onicegatheringstatechange = () => {
      if (pc !== this.#pc) return;
      if (pc.iceGatheringState === "gathering") {
        gathered = 0;
        relayError = null;
        this.#relayUnavailable = null;
      } else if (pc.iceGatheringState === "complete" && relayOnly && gathered === 0) {
        this.#relayUnavailable = relayError ?? "unreachable";
        this.#emit("relay-unavailable", { reason: this.#relayUnavailable });
      }
    };
    pc.onnegotiationneeded = () => void this.#negotiate(pc);
    pc.onicecandidate = ({ candidate }) => {
      if (candidate?.candidate) gathered += 1;
      // in standby the candidates travel inside the offer that `start` sends
      if (pc !== this.#pc || this.#standby || !candidate || !candidate.candidate) return;
      this.#options.send(relayCandidate(candidate));
    };
    pc.ontrack = ({ track, streams }) => {
      if (pc !== this.#pc) return;
      const id = streams[0]?.id;
      if (id !== undefined && id !== this.#remoteCameraId) {
        if (this.#remoteCameraId === null && id !== this.#remoteScreenId) {
          this.#remoteCameraId = id; // the first stream of a connection is the camera's
        } else {
          // a shared screen (or a stream not announced yet): never mixed into the camera's
          const other = streams[0];
          this.#remoteOther.set(id, other);
          const report = () => {
            if (pc === this.#pc) this.#reportRemoteScreen();
          };
          track.addEventListener("ended", report);
          other.addEventListener("removetrack", report);
          if (this.#audioOnly) this.#applyVideoDirection(pc); // no video either way
          this.#reportRemoteScreen();
          return;
        }
      }
      for (const old of remote.getTracks()) {
        if (old.kind === track.kind && old !== track) remote.removeTrack(old);
      }
      remote.addTrack(track);
      this.#emit("remote-stream", { stream: remote });
    };
    pc.oniceconnectionstatechange = () => this.#onConnectionChange(pc);
    pc.onconnectionstatechange = () => this.#onConnectionChange(pc);
  }

  #teardown() {
    this.#standby = false;
    if (this.#disconnectedTimer !== null) clearTimeout(this.#disconnectedTimer);
    this.#disconnectedTimer = null;
    const pc = this.#pc;
    this.#pc = null;
    this.#channel = null;
    this.#screenTransceivers = [];
    this.#remoteCameraId = null;
    this.#remoteOther = new Map();
    this.#reportRemoteScreen();
    if (pc) {
      pc.onnegotiationneeded = null;
      pc.onicecandidate = null;
      pc.onicecandidateerror = null;
      pc.onicegatheringstatechange = null;
      pc.ontrack = null;
      pc.oniceconnectionstatechange = null;
      pc.onconnectionstatechange = null;
      pc.close();
    }
    if (this.#safetyCode !== null || pc) {
      this.#safetyCode = null;
      this.#emit("safety-code-reset", {});
    }
  }

  /** The other side started over: so do we, with the same local media. */
  #freshPeer() {
    this.#teardown();
    if (!this.#closed) this.#createPeer();
  }

  /** @param {RTCPeerConnection} pc */
  #onConnectionChange(pc) {
    if (pc !== this.#pc) return;
    const iceState = pc.iceConnectionState;
    this.#emit("connection-state", { state: pc.connectionState, iceState });
    if (pc.connectionState === "connected" && this.#videoBitrateCap !== null) {
      void this.#applyBitrateCap(pc);
    }
    if (iceState === "failed" || pc.connectionState === "failed") {
      pc.restartIce();
    } else if (iceState === "disconnected") {
      if (this.#disconnectedTimer === null) {
        this.#disconnectedTimer = setTimeout(() => {
          this.#disconnectedTimer = null;
          if (pc === this.#pc && pc.iceConnectionState === "disconnected") pc.restartIce();
        }, DISCONNECTED_GRACE_MS);
      }
    } else if (this.#disconnectedTimer !== null) {
      clearTimeout(this.#disconnectedTimer);
      this.#disconnectedTimer = null;
    }
  }

  /** @param {RTCPeerConnection} pc */
  async #negotiate(pc) {
    if (pc !== this.#pc) return;
    try {
      this.#makingOffer = true;
      await pc.setLocalDescription();
      if (pc === this.#pc && !this.#standby && pc.localDescription) {
        this.#sendDescription(pc.localDescription);
      }
    } catch (error) {
      this.#problem("offer", error);
    } finally {
      this.#makingOffer = false;
    }
  }

  /** @param {RTCSessionDescription} description */
  #sendDescription(description) {
    this.#options.send({
      kind: "description",
      description: { type: description.type, sdp: description.sdp },
    });
  }

  /** @param {RelayPayload} payload */
  async #onSignal(payload) {
    if (this.#closed) return;
    if (!this.#pc) this.#createPeer();
    if (this.#standby) this.start(); // the other side is there: our prepared offer goes out
    if (payload.kind === "description") {
      await this.#onDescription(payload.description);
    } else if (payload.kind === "candidate") {
      const pc = /** @type {RTCPeerConnection} */ (this.#pc);
      try {
        await pc.addIceCandidate(payload.candidate);
      } catch (error) {
        // candidates for an offer we ignored, or from a connection we replaced
        if (!this.#ignoreOffer) this.#problem("candidate", error);
      }
    }
  }

  /** @param {RTCSessionDescriptionInit} description */
  async #onDescription(description) {
    let pc = /** @type {RTCPeerConnection} */ (this.#pc);
    const remoteFingerprint = sdpFingerprint(pc.currentRemoteDescription?.sdp);
    if (
      description.type === "offer" &&
      remoteFingerprint !== null &&
      sdpFingerprint(description.sdp) !== remoteFingerprint
    ) {
      this.#freshPeer(); // the other side has a new peer connection
      pc = /** @type {RTCPeerConnection} */ (this.#pc);
    }
    const readyForOffer = !this.#makingOffer && pc.signalingState === "stable";
    const offerCollision = description.type === "offer" && !readyForOffer;
    this.#ignoreOffer = !this.#polite && offerCollision;
    if (this.#ignoreOffer) return;
    if (description.type === "answer" && pc.signalingState !== "have-local-offer") {
      return; // a stale answer (ours was rolled back or already answered)
    }
    try {
      await pc.setRemoteDescription(description); // the polite side rolls back implicitly
    } catch (error) {
      if (description.type !== "answer") throw error;
      // an answer from a peer connection that is not the one we offered to: start over;
      // our fresh connection offers again by itself
      this.#problem("answer", error);
      this.#freshPeer();
      return;
    }
    if (description.type === "offer") {
      await pc.setLocalDescription();
      if (pc === this.#pc && pc.localDescription) this.#sendDescription(pc.localDescription);
    }
  }

  // --- modes: audio only, bitrate cap --------------------------------------------------------

  /**
   * Video transceivers `inactive` in audio-only mode; otherwise sending when there is a camera
   * track and receiving always.
   * @param {RTCPeerConnection} pc
   */
  #applyVideoDirection(pc) {
    for (const transceiver of pc.getTransceivers()) {
      if (
        transceiver.receiver.track.kind !== "video" ||
        transceiver.currentDirection === "stopped" ||
        transceiver.direction === "stopped"
      ) {
        continue;
      }
      const sending = transceiver.sender.track !== null;
      /** @type {RTCRtpTransceiverDirection} */
      const direction = this.#audioOnly ? "inactive" : sending ? "sendrecv" : "recvonly";
      if (transceiver.direction !== direction) transceiver.direction = direction;
    }
  }

  /** @param {RTCPeerConnection} pc */
  async #applyBitrateCap(pc) {
    for (const sender of pc.getSenders()) {
      if (sender.track?.kind !== "video") continue;
      const parameters = sender.getParameters();
      if (!parameters.encodings?.length) continue; // not negotiated yet: applied once connected
      for (const encoding of parameters.encodings) {
        if (this.#videoBitrateCap === null) delete encoding.maxBitrate;
        else encoding.maxBitrate = this.#videoBitrateCap;
      }
      try {
        await sender.setParameters(parameters);
      } catch (error) {
        this.#problem("bitrate", error);
      }
    }
  }

  /** Tell the other side this side's mode, peer to peer on the data channel. */
  #sendMode() {
    const channel = this.#channel;
    if (channel?.readyState === "open") {
      channel.send(JSON.stringify({ t: MODE_MESSAGE, audioOnly: this.#audioOnly }));
    }
  }

  // --- the safety code -----------------------------------------------------------------------

  /** @param {RTCPeerConnection} pc */
  #setUpSafetyChannel(pc) {
    const channel = pc.createDataChannel(SAFETY_CHANNEL.label, {
      negotiated: true,
      id: SAFETY_CHANNEL.id,
      ordered: true,
    });
    this.#channel = channel;
    /** @type {CommitRevealInitiator | CommitRevealResponder | null} */
    let exchange = this.#polite ? new CommitRevealResponder(freshNonce()) : null;
    let steps = Promise.resolve();
    /** @param {() => Promise<void>} step */
    const serial = (step) => {
      steps = steps.then(step).catch((error) => {
        if (pc !== this.#pc) return;
        this.#emit("safety-code-failed", { reason: error instanceof Error ? error.message : String(error) });
      });
    };
    /** @param {unknown} message */
    const send = (message) => {
      if (channel.readyState === "open") channel.send(JSON.stringify(message));
    };
    const finish = async () => {
      if (!exchange) return;
      const { local, remote } = await dtlsFingerprints(pc);
      const [fpTherapist, fpClient] = this.#polite ? [remote, local] : [local, remote];
      const code = await exchange.sasCode(fpTherapist, fpClient);
      if (pc !== this.#pc) return;
      this.#safetyCode = code;
      this.#emit("safety-code", { code });
    };

    channel.addEventListener("open", () => {
      channel.send(JSON.stringify({ t: MEDIA_MESSAGE, ...this.#mediaState }));
    });
    channel.onopen = () => {
      if (pc === this.#pc && this.#audioOnly) this.#sendMode();
      if (this.#polite) return;
      serial(async () => {
        const initiator = await CommitRevealInitiator.create(freshNonce());
        exchange = initiator;
        send(initiator.start());
      });
    };
    channel.onmessage = (event) => {
      /** @type {unknown} */
      let message;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        message = null;
      }
      const fields = message !== null && typeof message === "object" ? message : null;
      if (fields && "t" in fields && fields.t === CONFIRM_MESSAGE && Object.keys(fields).length === 1) {
        if (pc === this.#pc) this.#emit("peer-confirmed", {});
        return;
      }
      const chat = chatText(fields);
      if (chat !== null) {
        if (pc === this.#pc) this.#emit("peer-chat", { text: chat });
        return;
      }
      if (fields && "t" in fields && fields.t === CHAT_MESSAGE) return; // malformed: dropped
      const mode = modeMessage(fields);
      if (mode) {
        if (pc === this.#pc) this.#emit("peer-mode", mode);
        return;
      }
      if (fields && "t" in fields && fields.t === MEDIA_MESSAGE) {
        const media = /** @type {{audio?: unknown, video?: unknown}} */ (fields);
        if (pc === this.#pc) this.#emit("peer-media", { audio: media.audio !== false, video: media.video !== false });
        return;
      }
      serial(async () => {
        if (!exchange) throw new Error("a safety-code message before the exchange started");
        const reply = await exchange.receive(message);
        if (reply) send(reply);
        if (exchange.state === "complete") await finish();
      });
    };
  }
}
