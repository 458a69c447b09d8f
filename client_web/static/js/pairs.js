// @ts-check
/**
 * The rules of a group call's pairs (pure: no DOM, no network). A call of up to four people is
 * a full mesh: every two people present have their own peer connection, their own data channel
 * and their own safety code (docs/protocol.md, "Verifying a group call"). Both ends of a pair
 * work out its rules from the server's `roster` alone, so they never need to ask each other:
 *
 *   - the person admitted earlier (lower `order`; the therapist is 0) is the pair's impolite
 *     side in perfect negotiation, makes the first offer and commits in the safety-code
 *     exchange (the part the therapist plays in a two-person call);
 *   - the other one is polite and responds.
 *
 * The upstream video budget is shared by the pairs: each connection gets the budget divided by
 * the number of people this page sends to, never below a floor.
 */

/** @typedef {"therapist" | "client" | "guest"} PersonKind */

/**
 * One person in the call as the `roster` message names them.
 * @typedef {object} RosterPerson
 * @property {string} peer_id
 * @property {PersonKind} kind
 * @property {string} label
 * @property {number} order  admission order: the therapist 0, then 1, 2, 3 (unique)
 * @property {boolean} present  false while a dropped person's seat is held for resume
 */

/** The therapist's peer id (server/core/participants.py THERAPIST_PEER_ID). */
export const THERAPIST_PEER_ID = "therapist";

/** The most people in one call by default (server/core/participants.py DEFAULT_MAX_PEOPLE). */
export const DEFAULT_MAX_PEOPLE = 4;

/** Upstream video for all pairs together, in bits per second (today's single-call ceiling). */
export const VIDEO_BUDGET = 1_500_000;

/** The least video bitrate one pair gets however many people there are, in bits per second. */
export const PAIR_VIDEO_FLOOR = 150_000;

const KINDS = new Set(["therapist", "client", "guest"]);

/**
 * This page's part in its pair with another person.
 * @param {number} myOrder
 * @param {number} theirOrder
 * @returns {{polite: boolean, committer: boolean}}
 */
export function pairSide(myOrder, theirOrder) {
  if (myOrder === theirOrder) throw new Error("two people in a call never share an order");
  const committer = myOrder < theirOrder;
  return { polite: !committer, committer };
}

/**
 * The video bitrate cap for each of this page's connections (pure): the cap that the measured
 * network asks for (null: none, the whole budget) shared by the people this page sends to,
 * never below PAIR_VIDEO_FLOOR. With one other person it is the cap itself, as in a
 * two-person call.
 * @param {number | null} cap  bits per second, or null for no cap
 * @param {number} remotes  how many other people this page sends video to
 * @returns {number | null}
 */
export function pairVideoCap(cap, remotes) {
  if (remotes <= 1) return cap;
  const budget = cap ?? VIDEO_BUDGET;
  return Math.max(PAIR_VIDEO_FLOOR, Math.floor(budget / remotes / 1000) * 1000);
}

/**
 * A `roster` message's people, checked field by field; null if it is malformed (a page then
 * keeps the roster it had). Sorted by order.
 * @param {unknown} message
 * @returns {RosterPerson[] | null}
 */
export function parseRoster(message) {
  if (message === null || typeof message !== "object") return null;
  const people = /** @type {{people?: unknown}} */ (message).people;
  if (!Array.isArray(people) || people.length > 16) return null;
  /** @type {RosterPerson[]} */
  const parsed = [];
  for (const entry of people) {
    if (entry === null || typeof entry !== "object") return null;
    const { peer_id, kind, label, order, present } = /** @type {Record<string, unknown>} */ (entry);
    if (typeof peer_id !== "string" || !peer_id || typeof label !== "string") return null;
    if (typeof kind !== "string" || !KINDS.has(kind)) return null;
    if (typeof order !== "number" || !Number.isInteger(order) || order < 0) return null;
    if (typeof present !== "boolean") return null;
    parsed.push({ peer_id, kind: /** @type {PersonKind} */ (kind), label, order, present });
  }
  const orders = new Set(parsed.map((person) => person.order));
  const ids = new Set(parsed.map((person) => person.peer_id));
  if (orders.size !== parsed.length || ids.size !== parsed.length) return null;
  return parsed.sort((a, b) => a.order - b.order);
}

/**
 * The pairs this page should have: everyone present but itself, each with this page's side.
 * Empty when this page is not (or no longer) on the roster.
 * @param {RosterPerson[]} roster
 * @param {string} myPeerId
 * @returns {Array<{person: RosterPerson, polite: boolean, committer: boolean}>}
 */
export function pairsFor(roster, myPeerId) {
  const me = roster.find((person) => person.peer_id === myPeerId);
  if (!me) return [];
  return roster
    .filter((person) => person.present && person.peer_id !== myPeerId)
    .map((person) => ({ person, ...pairSide(me.order, person.order) }));
}

/**
 * How a tile names a person: their label, with what they are when they are not a client
 * ("Interpreter · guest"). The label comes from the therapist; nothing else is shown.
 * @param {{label: string, kind: PersonKind}} person
 * @param {{guest: string, therapist: string}} words  the translated kind words
 * @returns {string}
 */
export function tileName(person, words) {
  const label = person.label.trim();
  if (person.kind === "client") return label;
  const kind = words[person.kind];
  if (!label) return kind;
  return label.toLowerCase() === kind.toLowerCase() ? label : `${label} · ${kind}`;
}
