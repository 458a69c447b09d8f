// @ts-check
/**
 * Scenarios for the group call's pair rules (client_web/static/js/pairs.js) and its mesh of
 * pairs (mesh.js) with fake calls. Prints `{"scenario name": "ok" | "failure message"}` as
 * JSON; test_mesh_pairs.py asserts each one is "ok". Usage: node mesh_check.mjs
 */
import assert from "node:assert/strict";

import { Mesh } from "../../client_web/static/js/mesh.js";
import {
  PAIR_VIDEO_FLOOR,
  VIDEO_BUDGET,
  pairSide,
  pairVideoCap,
  pairsFor,
  parseRoster,
  tileName,
} from "../../client_web/static/js/pairs.js";
import { groupPairs } from "../../client_web/static/js/sas.js";

/** @typedef {import("../../client_web/static/js/pairs.js").RosterPerson} RosterPerson */

/**
 * @param {string} peer_id
 * @param {number} order
 * @param {Partial<RosterPerson>} [more]
 * @returns {RosterPerson}
 */
function person(peer_id, order, more = {}) {
  const kind = peer_id === "therapist" ? "therapist" : peer_id.startsWith("guest") ? "guest" : "client";
  return { peer_id, kind, label: peer_id, order, present: true, ...more };
}

const FOUR = [person("therapist", 0), person("client-a", 1), person("guest", 2), person("client-b", 3)];

/** A call that records what the mesh asked of it. */
class FakeCall {
  /** @param {{peerId: string, polite: boolean}} pair */
  constructor(pair) {
    this.peerId = pair.peerId;
    this.polite = pair.polite;
    this.started = false;
    this.closed = false;
    this.resynced = 0;
    /** @type {unknown[]} */
    this.signals = [];
  }
  start() {
    this.started = true;
  }
  close() {
    this.closed = true;
  }
  resync() {
    this.resynced += 1;
  }
  /** @param {any} payload */
  async handleSignal(payload) {
    this.signals.push(payload);
  }
}

function newMesh() {
  /** @type {string[]} */
  const log = [];
  /** @type {Mesh<FakeCall>} */
  const mesh = new Mesh({
    makeCall: (pair) => new FakeCall(pair),
    onAdded: (peerId) => log.push(`+${peerId}`),
    onRemoved: (peerId) => log.push(`-${peerId}`),
    onChanged: (peerId, who) => log.push(`~${peerId}:${who.label}:${who.present}`),
  });
  return { mesh, log };
}

const OFFER = { kind: "description", description: { type: "offer", sdp: "v=0" } };

/** @type {Record<string, () => void | Promise<void>>} */
const scenarios = {
  "the earlier admitted is impolite and commits; the later one is polite": () => {
    assert.deepEqual(pairSide(0, 2), { polite: false, committer: true });
    assert.deepEqual(pairSide(3, 1), { polite: true, committer: false });
    assert.throws(() => pairSide(1, 1), /never share an order/);
  },
  "both ends of every pair agree, and the committer is the one sas.js names": () => {
    const orders = Object.fromEntries(FOUR.map((p) => [p.peer_id, p.order]));
    for (const [committer, responder] of groupPairs(orders)) {
      const here = pairsFor(FOUR, committer).find((pair) => pair.person.peer_id === responder);
      const there = pairsFor(FOUR, responder).find((pair) => pair.person.peer_id === committer);
      assert.equal(here?.committer, true);
      assert.equal(there?.committer, false);
      assert.equal(here?.polite, !there?.polite);
    }
  },
  "a page pairs with everyone present but itself": () => {
    const roster = [...FOUR.slice(0, 3), person("client-b", 3, { present: false })];
    assert.deepEqual(
      pairsFor(roster, "client-a").map((pair) => pair.person.peer_id),
      ["therapist", "guest"],
    );
    assert.deepEqual(pairsFor(roster, "stranger"), []);
  },
  "one other person keeps today's cap; more share the budget above a floor": () => {
    assert.equal(pairVideoCap(null, 1), null);
    assert.equal(pairVideoCap(400_000, 1), 400_000);
    assert.equal(pairVideoCap(null, 3), VIDEO_BUDGET / 3);
    assert.equal(pairVideoCap(600_000, 2), 300_000);
    assert.equal(pairVideoCap(200_000, 3), PAIR_VIDEO_FLOOR);
  },
  "a roster is read field by field and sorted by order": () => {
    const message = { type: "roster", people: [FOUR[2], FOUR[0], FOUR[3], FOUR[1]] };
    assert.deepEqual(parseRoster(message)?.map((p) => p.order), [0, 1, 2, 3]);
    for (const broken of [
      null,
      { people: "x" },
      { people: [{ ...FOUR[0], kind: "admin" }] },
      { people: [{ ...FOUR[0], order: -1 }] },
      { people: [{ ...FOUR[0], present: "yes" }] },
      { people: [FOUR[0], { ...FOUR[1], order: 0 }] },
      { people: [FOUR[1], { ...FOUR[2], peer_id: "client-a" }] },
    ]) {
      assert.equal(parseRoster(broken), null, JSON.stringify(broken));
    }
  },
  "a tile names a guest by label and kind, a client by label": () => {
    const words = { guest: "guest", therapist: "therapist" };
    assert.equal(tileName({ label: "Interpreter", kind: "guest" }, words), "Interpreter · guest");
    assert.equal(tileName({ label: "Sam", kind: "client" }, words), "Sam");
    assert.equal(tileName({ label: "", kind: "guest" }, words), "guest");
    assert.equal(tileName({ label: "Guest", kind: "guest" }, words), "Guest");
    assert.equal(tileName({ label: "Therapist", kind: "therapist" }, words), "Therapist");
  },
  "two people: the mesh holds no pair (the page's own call is the only one)": () => {
    const { mesh, log } = newMesh();
    mesh.update(FOUR.slice(0, 2), "client-a", "therapist");
    assert.equal(mesh.size, 0);
    assert.deepEqual(log, []);
  },
  "four people: a pair per other person but the primary, the earlier admitted offers": () => {
    const { mesh, log } = newMesh();
    mesh.update(FOUR, "guest", "therapist");
    assert.deepEqual(log, ["+client-a", "+client-b"]);
    const a = /** @type {FakeCall} */ (mesh.get("client-a"));
    const b = /** @type {FakeCall} */ (mesh.get("client-b"));
    assert.equal(a.polite, true);
    assert.equal(a.started, false); // client-a (order 1) makes the offer to the guest (order 2)
    assert.equal(b.polite, false);
    assert.equal(b.started, true);
  },
  "signals go to the sender's pair; a sender not on the roster yet waits for it": async () => {
    const { mesh } = newMesh();
    assert.equal(mesh.handleSignal(undefined, OFFER), false);
    assert.equal(mesh.handleSignal("client-b", OFFER), true); // before the roster names them
    mesh.update(FOUR, "guest", "therapist");
    const b = /** @type {FakeCall} */ (mesh.get("client-b"));
    assert.deepEqual(b.signals, [OFFER]);
    mesh.handleSignal("client-a", OFFER);
    assert.deepEqual(/** @type {FakeCall} */ (mesh.get("client-a")).signals, [OFFER]);
    assert.deepEqual(b.signals, [OFFER]);
  },
  "someone who leaves the roster loses their pair; a held seat keeps it": () => {
    const { mesh, log } = newMesh();
    mesh.update(FOUR, "therapist", "client-a");
    const guest = /** @type {FakeCall} */ (mesh.get("guest"));
    mesh.update([FOUR[0], FOUR[1], { ...FOUR[2], present: false }, FOUR[3]], "therapist", "client-a");
    assert.equal(guest.closed, false);
    assert.equal(mesh.get("guest"), guest);
    mesh.update([FOUR[0], FOUR[1], FOUR[3]], "therapist", "client-a");
    assert.equal(guest.closed, true);
    assert.equal(mesh.get("guest"), null);
    assert.deepEqual(log, ["+guest", "+client-b", "~guest:guest:false", "-guest"]);
  },
  "a page no longer on the roster ends every pair; clear() ends them too": () => {
    const { mesh } = newMesh();
    mesh.update(FOUR, "client-b", "therapist");
    const calls = mesh.entries().map((entry) => entry.call);
    mesh.update(FOUR.slice(0, 3), "client-b", "therapist");
    assert.equal(mesh.size, 0);
    assert.ok(calls.every((call) => call.closed));
    mesh.update(FOUR, "client-b", "therapist");
    mesh.clear();
    assert.equal(mesh.size, 0);
  },
  "a released pair is handed over open, and resync reaches every pair": () => {
    const { mesh, log } = newMesh();
    mesh.update(FOUR, "therapist", "client-a");
    mesh.resync();
    assert.ok(mesh.entries().every((entry) => entry.call.resynced === 1));
    const guest = /** @type {FakeCall} */ (mesh.release("guest"));
    assert.equal(guest.closed, false);
    mesh.update(FOUR, "therapist", "guest"); // the guest is the primary pair now
    assert.equal(mesh.get("guest"), null);
    assert.equal(mesh.get("client-a")?.started, true);
    assert.deepEqual(log, ["+guest", "+client-b", "+client-a"]);
  },
};

/** @type {Record<string, string>} */
const results = {};
for (const [name, run] of Object.entries(scenarios)) {
  try {
    await run();
    results[name] = "ok";
  } catch (error) {
    results[name] = error instanceof Error ? error.message : String(error);
  }
}
process.stdout.write(JSON.stringify(results));
