// @ts-check
/**
 * The pre-session connection check (DESIGN.md §3.2): how well will the call's network path
 * carry video?
 *
 * The page sends a GENERATED test pattern (a canvas) and tone (a Web Audio oscillator) to the
 * server's echo peer (`server/realtime/conncheck.py`), never the camera or the microphone:
 * nothing of the person reaches the server. The peer sends the media back and echoes
 * data-channel pings, and this module measures:
 *   - round-trip time: data-channel ping/pong (median), else the ICE candidate pair's
 *     `currentRoundTripTime`;
 *   - packet loss: the larger of the echoed streams' loss (inbound-rtp) and the loss the server
 *     reported for what we sent (remote-inbound-rtp);
 *   - bitrate: the echoed bytes received per second while measuring (what survived the path
 *     both ways);
 *   - TURN: when TURN servers are configured, whether a relay candidate was gathered.
 * and turns them into a calm sentence through the pure `verdict()`.
 *
 * No DOM access beyond a detached <canvas> for the pattern (and the page's message catalogue,
 * through i18n.js); the page shows the result.
 */

import { t } from "./i18n.js";

export const CHECK_URL = "/api/v1/visit/conncheck";
export const DEFAULT_DURATION_MS = 3000;
/** Without TURN servers gathering takes milliseconds; an unreachable TURN server never ends it. */
const GATHER_TIMEOUT_MS = 1500;
const CONNECT_TIMEOUT_MS = 4000;
const PING_INTERVAL_MS = 200;
const PROGRESS_INTERVAL_MS = 250;
const PATTERN = Object.freeze({ width: 320, height: 240, fps: 15, noiseWidth: 96, noiseHeight: 72 });
const TONE_HZ = 440;

/** @typedef {"good" | "fair" | "poor" | "failed"} Verdict */

/**
 * What the check measured; null where nothing could be measured.
 * @typedef {object} CheckStats
 * @property {boolean} connected  the echo peer was reached (ICE and DTLS succeeded)
 * @property {number | null} rttMs
 * @property {number | null} lossPercent
 * @property {number | null} bitrateKbps
 * @property {number} videoFramesDecoded  echoed video frames the browser decoded
 * @property {number} audioPacketsReceived  echoed audio packets that arrived
 */

/**
 * @typedef {object} CheckResult
 * @property {number | null} rttMs
 * @property {number | null} lossPercent
 * @property {number | null} bitrateKbps
 * @property {boolean | null} turnReachable  null when no TURN server is configured
 * @property {Verdict} verdict
 * @property {string} message  plain words for the person about to join
 * @property {number} videoFramesDecoded
 * @property {number} audioPacketsReceived
 * @property {string} detail  why the check failed, for logs and support ("" when it ran)
 * @property {{answeredMs: number | null, connectedMs: number | null, totalMs: number}} timings
 */

/**
 * @typedef {object} CheckProgress
 * @property {"preparing" | "connecting" | "measuring" | "done"} phase
 * @property {number} fraction  0..1 across the whole check
 */

/**
 * @typedef {object} CheckOptions
 * @property {typeof fetch} [fetchImpl]
 * @property {string} csrfToken  the visit's CSRF token, sent as X-CSRF-Token
 * @property {RTCIceServer[]} [iceServers]  as served by /api/v1/ice
 * @property {RTCIceTransportPolicy} [iceTransportPolicy]  "relay" tests the relay-only path
 * @property {number} [durationMs]  how long to measure once connected
 * @property {(progress: CheckProgress) => void} [onProgress]
 * @property {string} [url]
 */

/** Thresholds for each verdict; a metric that could not be measured never counts as good. */
export const THRESHOLDS = Object.freeze({
  good: Object.freeze({ rttMs: 300, lossPercent: 3, bitrateKbps: 250 }),
  fair: Object.freeze({ rttMs: 700, lossPercent: 10, bitrateKbps: 64 }),
});

/** What the person reads; calm, and never their fault. */
export const MESSAGES = Object.freeze({
  good: t("Your connection is good for video."),
  fair: t("Video may be choppy; audio should be fine."),
  poor: t(
    "Your connection is weak right now, so the call may break up. Moving closer to your " +
      "Wi-Fi router or closing other apps can help.",
  ),
  failed: t("We could not connect. Your therapist can still call you by phone."),
});

/**
 * The verdict for a set of measurements (pure).
 * @param {CheckStats} stats
 * @returns {Verdict}
 */
export function verdict(stats) {
  if (!stats.connected) return "failed";
  const within = (/** @type {{rttMs: number, lossPercent: number, bitrateKbps: number}} */ t) =>
    stats.rttMs !== null &&
    stats.rttMs <= t.rttMs &&
    stats.lossPercent !== null &&
    stats.lossPercent <= t.lossPercent &&
    stats.bitrateKbps !== null &&
    stats.bitrateKbps >= t.bitrateKbps;
  if (within(THRESHOLDS.good) && stats.videoFramesDecoded > 0) return "good";
  if (within(THRESHOLDS.fair) && stats.audioPacketsReceived > 0) return "fair";
  return "poor";
}

/** A step of the check went wrong; the message goes into `detail`, never on screen. */
class CheckError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "CheckError";
  }
}

/**
 * Measure the network path to the server's echo peer with generated media.
 * Never throws: a check that cannot run yields the verdict "failed".
 * @param {CheckOptions} options
 * @returns {Promise<CheckResult>}
 */
export async function runConnectionCheck({
  fetchImpl = (input, init) => globalThis.fetch(input, init),
  csrfToken,
  iceServers = [],
  iceTransportPolicy = "all",
  durationMs = DEFAULT_DURATION_MS,
  onProgress = () => {},
  url = CHECK_URL,
}) {
  const started = performance.now();
  const since = () => Math.round(performance.now() - started);
  const expectsTurn = iceServers.some((server) =>
    [server.urls].flat().some((u) => /^turns?:/i.test(u)),
  );
  /** @type {Array<() => void>} */
  const cleanups = [];
  let relayGathered = false;
  /** @type {number | null} */
  let answeredMs = null;
  /** @type {number | null} */
  let connectedMs = null;
  // Preparing, gathering and connecting count for a fifth of the bar; measuring for the rest.
  const report = (/** @type {CheckProgress["phase"]} */ phase, /** @type {number} */ fraction) => {
    try {
      onProgress({ phase, fraction: Math.min(1, Math.max(0, fraction)) });
    } catch {
      // a broken progress callback must not break the check
    }
  };

  /** @param {CheckStats} stats @param {string} detail @returns {CheckResult} */
  const result = (stats, detail) => {
    const outcome = verdict(stats);
    return {
      rttMs: stats.rttMs,
      lossPercent: stats.lossPercent,
      bitrateKbps: stats.bitrateKbps,
      turnReachable: expectsTurn ? relayGathered : null,
      verdict: outcome,
      message: MESSAGES[outcome],
      videoFramesDecoded: stats.videoFramesDecoded,
      audioPacketsReceived: stats.audioPacketsReceived,
      detail,
      timings: { answeredMs, connectedMs, totalMs: since() },
    };
  };

  try {
    report("preparing", 0);
    const pattern = startPattern();
    cleanups.push(pattern.stop);
    const tone = await startTone();
    cleanups.push(tone.stop);

    const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy });
    cleanups.push(() => pc.close());
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate && isRelay(event.candidate)) relayGathered = true;
    });
    const media = new MediaStream([pattern.track, tone.track]);
    pc.addTrack(pattern.track, media);
    pc.addTrack(tone.track, media);
    const pinger = startPinger(pc.createDataChannel("conncheck", { ordered: true }));
    cleanups.push(pinger.stop);

    await pc.setLocalDescription(await pc.createOffer());
    // aiortc does not trickle ICE either way: send every candidate inside the offer.
    await settleWithin(gatheringComplete(pc), GATHER_TIMEOUT_MS);
    report("connecting", 0.1);

    const offer = pc.localDescription;
    if (!offer) throw new CheckError("no local description");
    const answer = await postOffer(fetchImpl, url, csrfToken, offer.sdp);
    answeredMs = since();
    await pc.setRemoteDescription(answer);
    await withTimeout(connectionEstablished(pc), CONNECT_TIMEOUT_MS, "connecting");
    connectedMs = since();
    report("measuring", 0.2);

    const before = summarize(await pc.getStats());
    const measureStart = performance.now();
    await new Promise((resolve) => {
      const ticker = setInterval(() => {
        const done = (performance.now() - measureStart) / durationMs;
        report("measuring", 0.2 + 0.8 * done);
        if (done >= 1) {
          clearInterval(ticker);
          resolve(undefined);
        }
      }, Math.min(PROGRESS_INTERVAL_MS, durationMs));
      cleanups.push(() => clearInterval(ticker));
    });
    const after = summarize(await pc.getStats());
    const seconds = (performance.now() - measureStart) / 1000;

    const stats = {
      connected: true,
      rttMs: pinger.medianRttMs() ?? after.pairRttMs,
      lossPercent: lossPercent(after),
      bitrateKbps: round1(((after.bytesReceived - before.bytesReceived) * 8) / 1000 / seconds),
      videoFramesDecoded: after.framesDecoded,
      audioPacketsReceived: after.audioPacketsReceived,
    };
    return result(stats, "");
  } catch (error) {
    const detail = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return result(
      {
        connected: false,
        rttMs: null,
        lossPercent: null,
        bitrateKbps: null,
        videoFramesDecoded: 0,
        audioPacketsReceived: 0,
      },
      detail,
    );
  } finally {
    for (const cleanup of cleanups.reverse()) {
      try {
        cleanup();
      } catch {
        // keep releasing the rest
      }
    }
    report("done", 1);
  }
}

// --- generated media -----------------------------------------------------------------------

/**
 * Moving colour bars with a block of fresh noise each frame: the noise keeps the encoder busy,
 * so the echoed bitrate reflects the path rather than how well a still image compresses.
 * @returns {{track: MediaStreamTrack, stop: () => void}}
 */
function startPattern() {
  const canvas = document.createElement("canvas");
  canvas.width = PATTERN.width;
  canvas.height = PATTERN.height;
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new CheckError("no 2D canvas");
  const noise = ctx.createImageData(PATTERN.noiseWidth, PATTERN.noiseHeight);
  const bars = 8;
  const barWidth = PATTERN.width / bars;
  let frame = 0;
  const draw = () => {
    frame += 1;
    for (let i = 0; i < bars; i += 1) {
      ctx.fillStyle = `hsl(${(i * 45 + frame * 6) % 360} 60% 50%)`;
      ctx.fillRect(i * barWidth, 0, barWidth, PATTERN.height);
    }
    const pixels = noise.data;
    for (let i = 0; i < pixels.length; i += 4) {
      const value = (Math.random() * 256) | 0;
      pixels[i] = value;
      pixels[i + 1] = value;
      pixels[i + 2] = value;
      pixels[i + 3] = 255;
    }
    const x = (frame * 4) % (PATTERN.width - PATTERN.noiseWidth);
    ctx.putImageData(noise, x, (PATTERN.height - PATTERN.noiseHeight) / 2);
  };
  draw();
  const stream = canvas.captureStream(PATTERN.fps);
  const timer = setInterval(draw, 1000 / PATTERN.fps);
  const [track] = stream.getVideoTracks();
  return {
    track,
    stop: () => {
      clearInterval(timer);
      track.stop();
    },
  };
}

/**
 * A quiet 440 Hz tone that goes only into a MediaStream, never to the speakers.
 * @returns {Promise<{track: MediaStreamTrack, stop: () => void}>}
 */
async function startTone() {
  const context = new AudioContext();
  const oscillator = context.createOscillator();
  oscillator.frequency.value = TONE_HZ;
  const gain = context.createGain();
  gain.gain.value = 0.1;
  const destination = context.createMediaStreamDestination();
  oscillator.connect(gain).connect(destination);
  oscillator.start();
  // Without a user gesture resume() may wait forever; the check goes on either way.
  if (context.state !== "running") await settleWithin(context.resume(), 300);
  const [track] = destination.stream.getAudioTracks();
  return {
    track,
    stop: () => {
      track.stop();
      oscillator.stop();
      void context.close();
    },
  };
}

// --- signalling and connection -------------------------------------------------------------

/**
 * POST the offer; the answer or a CheckError naming what the server said.
 * @param {typeof fetch} fetchImpl
 * @param {string} url
 * @param {string} csrfToken
 * @param {string} sdp
 * @returns {Promise<RTCSessionDescriptionInit>}
 */
async function postOffer(fetchImpl, url, csrfToken, sdp) {
  const response = await fetchImpl(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
    body: JSON.stringify({ type: "offer", sdp }),
    credentials: "same-origin",
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const code = body?.error?.code ?? "unknown";
    throw new CheckError(`server answered ${response.status} (${code})`);
  }
  if (body?.type !== "answer" || typeof body.sdp !== "string") {
    throw new CheckError("server sent no answer");
  }
  return { type: "answer", sdp: body.sdp };
}

/** @param {RTCIceCandidate} candidate */
function isRelay(candidate) {
  return candidate.type === "relay" || / typ relay /.test(candidate.candidate);
}

/**
 * @param {RTCPeerConnection} pc
 * @returns {Promise<void>}
 */
function gatheringComplete(pc) {
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    check();
  });
}

/**
 * @param {RTCPeerConnection} pc
 * @returns {Promise<void>}
 */
function connectionEstablished(pc) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const state = pc.connectionState;
      if (state === "connected" || state === "failed" || state === "closed") {
        pc.removeEventListener("connectionstatechange", check);
        if (state === "connected") resolve();
        else reject(new CheckError(`connection ${state}`));
      }
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
}

/**
 * Data-channel pings every 200 ms; the server echoes each one.
 * @param {RTCDataChannel} channel
 * @returns {{medianRttMs: () => number | null, stop: () => void}}
 */
function startPinger(channel) {
  /** @type {Map<number, number>} */
  const sentAt = new Map();
  /** @type {number[]} */
  const rtts = [];
  let seq = 0;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let timer;
  channel.addEventListener("open", () => {
    const ping = () => {
      seq += 1;
      sentAt.set(seq, performance.now());
      channel.send(JSON.stringify({ seq }));
    };
    ping();
    timer = setInterval(ping, PING_INTERVAL_MS);
  });
  channel.addEventListener("message", (event) => {
    let echoed;
    try {
      echoed = JSON.parse(String(event.data));
    } catch {
      return;
    }
    const sent = sentAt.get(echoed?.seq);
    if (sent !== undefined) {
      sentAt.delete(echoed.seq);
      rtts.push(performance.now() - sent);
    }
  });
  return {
    medianRttMs: () => (rtts.length ? round1(median(rtts)) : null),
    stop: () => {
      clearInterval(timer);
      channel.close();
    },
  };
}

// --- statistics ----------------------------------------------------------------------------

/**
 * @typedef {object} StatsSummary
 * @property {number} bytesReceived  echoed audio and video
 * @property {number} packetsReceived
 * @property {number} packetsLost  on the way back from the server
 * @property {number} packetsSent
 * @property {number} packetsLostUpstream  on the way to the server, as it reported
 * @property {number} framesDecoded
 * @property {number} audioPacketsReceived
 * @property {number | null} pairRttMs
 */

/**
 * The numbers the check needs from a getStats() report.
 * @param {RTCStatsReport} report
 * @returns {StatsSummary}
 */
function summarize(report) {
  const summary = {
    bytesReceived: 0,
    packetsReceived: 0,
    packetsLost: 0,
    packetsSent: 0,
    packetsLostUpstream: 0,
    framesDecoded: 0,
    audioPacketsReceived: 0,
    /** @type {number | null} */
    pairRttMs: null,
  };
  /** @type {string | undefined} */
  let selectedPair;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) selectedPair = s.selectedCandidatePairId;
  });
  report.forEach((s) => {
    if (s.type === "inbound-rtp") {
      summary.bytesReceived += s.bytesReceived ?? 0;
      summary.packetsReceived += s.packetsReceived ?? 0;
      summary.packetsLost += Math.max(0, s.packetsLost ?? 0);
      if (s.kind === "video") summary.framesDecoded += s.framesDecoded ?? 0;
      if (s.kind === "audio") summary.audioPacketsReceived += s.packetsReceived ?? 0;
    } else if (s.type === "outbound-rtp") {
      summary.packetsSent += s.packetsSent ?? 0;
    } else if (s.type === "remote-inbound-rtp") {
      summary.packetsLostUpstream += Math.max(0, s.packetsLost ?? 0);
    } else if (s.type === "candidate-pair" && typeof s.currentRoundTripTime === "number") {
      const selected = selectedPair ? s.id === selectedPair : s.nominated && s.state === "succeeded";
      if (selected) summary.pairRttMs = round1(s.currentRoundTripTime * 1000);
    }
  });
  return summary;
}

/**
 * The worse direction's loss, in percent; null when nothing came back to count.
 * @param {StatsSummary} s
 * @returns {number | null}
 */
function lossPercent(s) {
  const downExpected = s.packetsReceived + s.packetsLost;
  if (downExpected === 0) return null;
  const down = s.packetsLost / downExpected;
  const up = s.packetsSent > 0 ? s.packetsLostUpstream / s.packetsSent : 0;
  return round1(100 * Math.max(down, up));
}

// --- small helpers -------------------------------------------------------------------------

/** @param {number[]} values */
function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** @param {number} value */
function round1(value) {
  return Math.round(value * 10) / 10;
}

/**
 * Wait for `promise` or `ms`, whichever comes first; never rejects.
 * @param {Promise<unknown>} promise
 * @param {number} ms
 * @returns {Promise<void>}
 */
function settleWithin(promise, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}

/**
 * `promise`, or a CheckError when it takes longer than `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
function withTimeout(promise, ms, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckError(`${what} took longer than ${ms} ms`)), ms);
  });
  return /** @type {Promise<T>} */ (Promise.race([promise, expired])).finally(() =>
    clearTimeout(timer),
  );
}
