// @ts-check
/**
 * What the session pages add to a call beyond video: check-ins, cue prompts, client signals and
 * the on-device feature stream. The feature stream runs only while the client's cue_analysis
 * consent is live, and stops the moment it is withdrawn.
 */
import { mountClientCheckins, mountTherapistCheckins } from "./checkins.js";
import { mountPromptPanel, mountSignalButtons } from "./cues.js";
import { startFeatureStream } from "./features.js";
import { mountGoals } from "./goals.js";

/**
 * @typedef {import("./protocol.js").SessionConnection} SessionConnection
 * @typedef {{stream: MediaStream | null, pc: RTCPeerConnection | null, videoOff: boolean}} Media
 */

/**
 * Track the client's consents from `welcome` and `consent-changed`.
 * @param {SessionConnection} connection
 * @param {(consents: Record<string, string>) => void} changed
 */
function trackConsents(connection, changed) {
  /** @type {Record<string, string>} */
  const consents = {};
  connection.on("welcome", (msg) => {
    Object.assign(consents, msg.consents ?? {});
    changed(consents);
  });
  connection.on("consent-changed", (msg) => {
    consents[msg.purpose] = msg.decision === "granted" ? "granted" : "withdrawn";
    changed(consents);
  });
  return consents;
}

/**
 * Keeps one feature stream running while allowed and media exist.
 * @param {SessionConnection} connection
 * @param {"therapist" | "client"} role
 * @param {() => Media} media
 */
function featureStreamer(connection, role, media) {
  /** @type {{stop(): void} | null} */
  let running = null;
  let allowed = false;
  const refresh = () => {
    const { stream, pc } = media();
    const should = allowed && stream !== null && pc !== null;
    if (!should && running) {
      running.stop();
      running = null;
    } else if (should && !running && stream && pc) {
      running = startFeatureStream({
        stream, pc, role, send: (message) => void connection.send(message),
        videoOff: () => media().videoOff,
      });
    }
  };
  return {
    /** @param {boolean} value */
    allow(value) {
      allowed = value;
      refresh();
    },
    refresh,
    stop() {
      running?.stop();
      running = null;
    },
  };
}

/**
 * The client's page: check-in forms, signal buttons, features while consent is live.
 * @param {SessionConnection} connection
 * @param {{checkinArea: HTMLElement, signalSection: HTMLElement | null, media: () => Media,
 *   goals?: HTMLElement | null}} parts
 */
export function mountClientExtras(connection, parts) {
  if (parts.goals) mountGoals(connection, parts.goals, "client");
  const streamer = featureStreamer(connection, "client", parts.media);
  const consents = trackConsents(connection, (c) => streamer.allow(c.cue_analysis === "granted"));
  // The after-session form lives on /visit/after: the socket closes as the session ends.
  const handles = (/** @type {string} */ kind) => kind !== "after";
  connection.on("checkin-open", (msg) => {
    if (handles(msg.kind)) parts.checkinArea.hidden = false;
  });
  mountClientCheckins(connection, parts.checkinArea, {
    storing: () => consents.checkin_storage === "granted",
    handles,
  });
  if (parts.signalSection) mountSignalButtons(connection, parts.signalSection);
  return streamer;
}

/**
 * The therapist's private panel: check-in results, pulse, cue prompts, client signals. Each
 * new item is announced through `notify`; `panel-state` (after every welcome) rebuilds what
 * came before, without announcing it again.
 * @param {SessionConnection} connection
 * @param {{panel: HTMLElement, media: () => Media, goals?: HTMLElement | null,
 *   notify?: (text: string, options?: {urgent?: boolean, item?: Element | null}) => void}} parts
 */
export function mountTherapistExtras(connection, parts) {
  if (parts.goals) mountGoals(connection, parts.goals, "therapist");
  const streamer = featureStreamer(connection, "therapist", parts.media);
  trackConsents(connection, (c) => streamer.allow(c.cue_analysis === "granted"));
  const notify = parts.notify ?? (() => {});
  mountTherapistCheckins(connection, parts.panel, notify);
  mountPromptPanel(connection, parts.panel, notify);
  return streamer;
}
