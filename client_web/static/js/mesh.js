// @ts-check
/**
 * A group call's extra pairs: one `Call` (call.js: its own RTCPeerConnection, perfect
 * negotiation, ICE restarts, data channel and safety code) per other person in the call, kept
 * in step with the server's `roster` (pairs.js holds the rules). No DOM: the page shows the
 * pairs it hears of through `onAdded` / `onRemoved`.
 *
 * The page's own call logic (callpage.js with host.js or join_call.js) keeps the PRIMARY pair,
 * the one a two-person call has: for a client the therapist, for the therapist the client it
 * admitted first. The mesh owns every other pair, so a two-person call has no mesh pairs and
 * behaves as before.
 *
 *   const mesh = new Mesh({ makeCall, onAdded, onRemoved });
 *   connection.on("roster", (m) => mesh.update(parseRoster(m), myPeerId, primaryPeerId));
 *   connection.on("signal-relay", ({from, payload}) => mesh.handleSignal(from, payload));
 *
 * Signals from a person the roster does not name yet (the roster and the first offer travel
 * on different sockets) wait, a few per person, until the roster names them.
 */

import { pairsFor } from "./pairs.js";

/**
 * @typedef {import("./pairs.js").RosterPerson} RosterPerson
 * @typedef {import("./protocol_types.js").RelayPayload} RelayPayload
 */

/**
 * What the mesh needs of a pair's call (call.js `Call` has it all).
 * @typedef {object} PairCall
 * @property {() => void} start
 * @property {() => void} close
 * @property {() => void} resync
 * @property {(payload: RelayPayload) => Promise<void>} handleSignal
 */

/** Signals kept for a person the roster has not named yet. */
const MAX_EARLY_SIGNALS = 64;

/**
 * @template {PairCall} C
 * @typedef {object} MeshOptions
 * @property {(pair: {peerId: string, polite: boolean}) => C} makeCall  a new call with this
 *   person, its relays addressed to them
 * @property {(peerId: string, call: C, person: RosterPerson) => void} onAdded  a pair began
 * @property {(peerId: string) => void} onRemoved  a pair ended (its call is closed already)
 * @property {(peerId: string, person: RosterPerson) => void} [onChanged]  a person's label or
 *   presence changed
 */

/** @template {PairCall} C */
export class Mesh {
  /** @type {MeshOptions<C>} */
  #options;
  /** @type {Map<string, {call: C, person: RosterPerson}>} */
  #pairs = new Map();
  /** @type {Map<string, RelayPayload[]>} */
  #early = new Map();

  /** @param {MeshOptions<C>} options */
  constructor(options) {
    this.#options = options;
  }

  /** How many pairs the mesh holds (the primary pair not counted). */
  get size() {
    return this.#pairs.size;
  }

  /**
   * The pair's call with this person, if the mesh has one.
   * @param {string} peerId
   */
  get(peerId) {
    return this.#pairs.get(peerId)?.call ?? null;
  }

  /** Every pair: peer id, call and the person as the roster names them. */
  entries() {
    return [...this.#pairs].map(([peerId, pair]) => ({ peerId, ...pair }));
  }

  /**
   * Bring the pairs in step with a roster: a pair for everyone present but this page and the
   * primary peer; pairs of people no longer on the roster end. A person whose seat is held
   * (`present: false`) keeps their pair: media may go on while their signaling reconnects.
   * @param {RosterPerson[]} roster
   * @param {string} myPeerId
   * @param {string | null} primaryPeerId  the pair the page's own call logic keeps
   */
  update(roster, myPeerId, primaryPeerId) {
    const named = new Set(roster.map((person) => person.peer_id));
    if (!named.has(myPeerId)) named.clear(); // not (or no longer) in the call: no pairs
    for (const peerId of [...this.#pairs.keys()]) {
      if (!named.has(peerId) || peerId === primaryPeerId) this.#remove(peerId);
    }
    for (const peerId of [...this.#early.keys()]) {
      if (!named.has(peerId)) this.#early.delete(peerId);
    }
    for (const person of roster) {
      const pair = this.#pairs.get(person.peer_id);
      if (pair && (pair.person.label !== person.label || pair.person.present !== person.present)) {
        pair.person = person;
        this.#options.onChanged?.(person.peer_id, person);
      }
    }
    for (const { person, polite } of pairsFor(roster, myPeerId)) {
      const peerId = person.peer_id;
      if (peerId === primaryPeerId || this.#pairs.has(peerId)) continue;
      const call = this.#options.makeCall({ peerId, polite });
      this.#pairs.set(peerId, { call, person });
      this.#options.onAdded(peerId, call, person);
      // the earlier admitted offers; the other answers when the offer comes
      if (!polite) call.start();
      const early = this.#early.get(peerId) ?? [];
      this.#early.delete(peerId);
      for (const payload of early) void call.handleSignal(payload);
    }
  }

  /**
   * A `signal-relay` from another person in the group. False if it is not the mesh's (no
   * sender named: the two-person protocol, the page's own call takes it).
   * @param {string | undefined} from
   * @param {RelayPayload} payload
   * @returns {boolean}
   */
  handleSignal(from, payload) {
    if (typeof from !== "string" || !from) return false;
    const pair = this.#pairs.get(from);
    if (pair) {
      void pair.call.handleSignal(payload);
      return true;
    }
    const early = this.#early.get(from) ?? [];
    if (early.length < MAX_EARLY_SIGNALS) early.push(payload);
    this.#early.set(from, early);
    return true;
  }

  /** After the signaling socket came back: each pair resends what may have been lost. */
  resync() {
    for (const { call } of this.#pairs.values()) call.resync();
  }

  /**
   * Hand a pair's call over without closing it (it becomes the page's primary call); the
   * mesh forgets it and does not report it removed.
   * @param {string} peerId
   * @returns {C | null}
   */
  release(peerId) {
    const pair = this.#pairs.get(peerId);
    this.#pairs.delete(peerId);
    return pair?.call ?? null;
  }

  /** End every pair (this page left the call, or the session is over). */
  clear() {
    for (const peerId of [...this.#pairs.keys()]) this.#remove(peerId);
    this.#early.clear();
  }

  /** @param {string} peerId */
  #remove(peerId) {
    const pair = this.#pairs.get(peerId);
    if (!pair) return;
    this.#pairs.delete(peerId);
    pair.call.close();
    this.#options.onRemoved(peerId);
  }
}
