// @ts-check
/**
 * Scenarios for client_web/static/js/protocol.js against a scripted fake WebSocket. Prints
 * `{"scenario name": "ok" | "failure message"}` as JSON; test_protocol_client.py asserts each
 * one is "ok". Usage: node protocol_client_check.mjs
 */
import assert from "node:assert/strict";

import { OutboxError, SessionConnection } from "../../client_web/static/js/protocol.js";

/** A WebSocket whose server side the scenario plays by hand. */
class FakeSocket {
  readyState = 0;
  /** @type {any[]} */
  sent = [];
  /** @type {number | null} */
  closedWith = null;
  /** @type {((event: any) => void) | null} */
  onopen = null;
  /** @type {((event: {data: any}) => void) | null} */
  onmessage = null;
  /** @type {((event: {code: number, reason: string}) => void) | null} */
  onclose = null;
  /** @type {((event: any) => void) | null} */
  onerror = null;

  /** @param {string} url */
  constructor(url) {
    this.url = url;
  }

  /** @param {string} data */
  send(data) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(data));
  }

  /** @param {number} [code] */
  close(code) {
    this.closedWith = code ?? 1005;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: "" }), 0);
  }

  // --- the server's side ---
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }

  /** @param {any} message */
  deliver(message) {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  /**
   * @param {number} code
   * @param {string} [reason]
   */
  drop(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  /** @param {string} type */
  sentOfType(type) {
    return this.sent.filter((m) => m.type === type);
  }
}

class MemoryStorage {
  /** @type {Map<string, string>} */
  map = new Map();
  /** @param {string} key */
  getItem(key) {
    return this.map.get(key) ?? null;
  }
  /**
   * @param {string} key
   * @param {string} value
   */
  setItem(key, value) {
    this.map.set(key, value);
  }
  /** @param {string} key */
  removeItem(key) {
    this.map.delete(key);
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Poll until `predicate` holds (fake sockets are made on timers).
 * @param {() => boolean} predicate
 * @param {string} what
 */
async function until(predicate, what, ms = 2000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

const WELCOME_WAITING = {
  type: "welcome",
  role: "client",
  session_id: "s1",
  version: 1,
  state: "waiting",
  peer: "in-call",
  ice_servers: [],
  consents: {},
  knock_id: "k1",
  resume_token: "RESUME-TOKEN-0123456789",
};

/**
 * A connection wired to fake sockets, with fast timers.
 * @param {Partial<import("../../client_web/static/js/protocol.js").ConnectionOptions>} [options]
 */
function connection(options = {}) {
  /** @type {FakeSocket[]} */
  const made = [];
  /** @type {any[]} */
  const states = [];
  /** @type {any[]} */
  const closed = [];
  const storage = /** @type {MemoryStorage} */ (options.storage ?? new MemoryStorage());
  const conn = new SessionConnection({
    sessionId: "s1",
    url: "ws://test/ws/session/s1",
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      made.push(socket);
      return socket;
    },
    storage,
    probe: async () => true,
    backoffBaseMs: 8,
    backoffMaxMs: 64,
    random: () => 0.5,
    ...options,
  });
  conn.on("state", (event) => states.push(event));
  conn.on("closed", (event) => closed.push(event));
  const socket = () => made[made.length - 1];
  return { conn, states, closed, storage, socket, made };
}

/**
 * Connect and complete the handshake on the first socket.
 * @param {ReturnType<typeof connection>} c
 * @param {any} [welcome]
 */
async function handshake(c, welcome = WELCOME_WAITING) {
  c.conn.connect();
  const socket = c.socket();
  socket.open();
  socket.deliver(welcome);
  return socket;
}

/**
 * Drop the current socket and play the server's side of the next handshake.
 * @param {ReturnType<typeof connection>} c
 * @param {number} code
 */
async function dropAndReconnect(c, code = 1006) {
  const before = c.made.length;
  c.socket().drop(code);
  await until(() => c.made.length > before, "a new socket");
  const socket = c.socket();
  socket.open();
  return socket;
}

/** @type {Record<string, () => Promise<void>>} */
const scenarios = {
  async "hello is the first message, with version 1 and no resume token"() {
    const c = connection();
    c.conn.connect();
    c.socket().open();
    assert.deepEqual(c.socket().sent, [{ type: "hello", version: 1 }]);
    assert.equal(c.conn.state, "connecting");
  },

  async "welcome opens the connection and is passed to subscribers"() {
    const c = connection();
    /** @type {any[]} */
    const welcomes = [];
    c.conn.on("welcome", (m) => welcomes.push(m));
    await handshake(c);
    assert.equal(c.conn.state, "open");
    assert.deepEqual(welcomes, [WELCOME_WAITING]);
    assert.deepEqual(
      c.states.map((s) => s.state),
      ["connecting", "open"],
    );
  },

  async "a dropped socket reconnects and resumes with the stored token"() {
    const c = connection();
    await handshake(c);
    assert.equal(c.storage.getItem("attune.resume.s1"), "RESUME-TOKEN-0123456789");
    const second = await dropAndReconnect(c, 1006);
    assert.deepEqual(second.sent[0], {
      type: "hello",
      version: 1,
      resume: "RESUME-TOKEN-0123456789",
    });
    second.deliver({ ...WELCOME_WAITING, resume_token: "NEXT-TOKEN-abcdefghijk" });
    assert.equal(c.storage.getItem("attune.resume.s1"), "NEXT-TOKEN-abcdefghijk");
    assert.deepEqual(
      c.states.map((s) => s.state),
      ["connecting", "open", "reconnecting", "open"],
    );
  },

  async "a reload in the same tab resumes with the token kept in storage"() {
    const storage = new MemoryStorage();
    storage.setItem("attune.resume.s1", "KEPT-TOKEN-0123456789");
    const c = connection({ storage });
    c.conn.connect();
    c.socket().open();
    assert.equal(c.socket().sent[0].resume, "KEPT-TOKEN-0123456789");
  },

  async "server restart, idle drop and network loss all reconnect"() {
    for (const code of [1001, 1006, 1009, 4408]) {
      const c = connection();
      await handshake(c);
      await dropAndReconnect(c, code);
      assert.equal(c.closed.length, 0, `code ${code}`);
      assert.equal(c.made.length, 2, `code ${code}`);
    }
  },

  async "replaced, resumed elsewhere, denied and ended stay closed with their reason"() {
    /** @type {Record<number, RegExp>} */
    const expected = {
      4001: /another tab/,
      4002: /another window/,
      4003: /did not let this device in/,
      4004: /has ended/,
      4400: /reload/,
      4401: /does not work/,
    };
    for (const [code, reason] of Object.entries(expected)) {
      const c = connection();
      await handshake(c);
      c.socket().drop(Number(code), "server words");
      await sleep(120); // several backoff periods
      assert.equal(c.made.length, 1, `code ${code} reconnected`);
      assert.equal(c.conn.state, "closed");
      assert.equal(c.closed.length, 1);
      assert.equal(c.closed[0].code, Number(code));
      assert.match(c.closed[0].reason, reason);
    }
  },

  async "access that ended stays closed, forgets the resume token and says why in words"() {
    /** @type {Array<[number, string, RegExp]>} */
    const expected = [
      [4401, "signed-out", /sign-in ended/],
      [4401, "password-changed", /password was changed/],
      [4401, "link-replaced", /replaced by a new one/],
      [4401, "another-device", /another device/],
      [4403, "consent-withdrawn", /withdrew your consent/],
      [4429, "too-many-messages", /Too many messages/],
      [4429, "too-many-knocks", /too many windows/],
    ];
    for (const [code, serverReason, words] of expected) {
      const c = connection();
      await handshake(c);
      c.socket().drop(code, serverReason);
      // a reconnect would be scheduled synchronously in onclose: none is
      assert.equal(c.conn.state, "closed", `${code} ${serverReason}`);
      assert.equal(c.made.length, 1);
      assert.equal(c.closed[0].code, code);
      assert.match(c.closed[0].reason, words);
      assert.equal(c.storage.getItem("attune.resume.s1"), null, `${code} kept its token`);
    }
  },

  async "denied and ended forget the resume token"() {
    for (const code of [4003, 4004]) {
      const c = connection();
      await handshake(c);
      c.socket().drop(code);
      assert.equal(c.storage.getItem("attune.resume.s1"), null, `code ${code}`);
    }
  },

  async "failed attempts back off exponentially up to the cap"() {
    const c = connection({ random: () => 1 });
    c.conn.connect();
    for (let i = 0; i < 5; i += 1) {
      const before = c.made.length;
      c.socket().drop(1006);
      await until(() => c.made.length > before, `attempt ${i + 2}`);
    }
    const delays = c.states.filter((s) => s.state === "reconnecting").map((s) => s.delayMs);
    assert.deepEqual(delays, [8, 16, 32, 64, 64]);
  },

  async "jitter spreads the wait between a quarter of the ceiling and all of it"() {
    const low = connection({ random: () => 0 });
    low.conn.connect();
    low.socket().drop(1006);
    const high = connection({ random: () => 0.999 });
    high.conn.connect();
    high.socket().drop(1006);
    assert.equal(low.states.at(-1).delayMs, 2);
    assert.equal(high.states.at(-1).delayMs, 8);
    low.conn.close();
    high.conn.close();
  },

  async "a socket refused before opening stops when the probe says access is gone"() {
    let probes = 0;
    const c = connection({
      probe: async () => {
        probes += 1;
        return false;
      },
    });
    c.conn.connect();
    c.socket().drop(1006); // e.g. HTTP 401 on the upgrade: the browser only sees 1006
    await until(() => c.closed.length === 1, "closed");
    assert.equal(probes, 1);
    assert.equal(c.closed[0].code, 4401);
    assert.equal(c.made.length, 1);
  },

  async "close() from the page stops for good and does not reconnect"() {
    const c = connection();
    const socket = await handshake(c);
    c.conn.close();
    await sleep(40);
    assert.equal(socket.closedWith, 1000);
    assert.equal(c.made.length, 1);
    assert.equal(c.conn.state, "closed");
    assert.equal(c.storage.getItem("attune.resume.s1"), "RESUME-TOKEN-0123456789");
  },

  async "send() works only while open and queues nothing"() {
    const c = connection();
    assert.equal(c.conn.send({ type: "ping" }), false);
    const socket = await handshake(c);
    assert.equal(c.conn.send({ type: "admit", knock_id: "k1" }), true);
    assert.deepEqual(socket.sentOfType("admit"), [{ type: "admit", knock_id: "k1" }]);
    c.socket().drop(1006);
    assert.equal(c.conn.send({ type: "relay", payload: {} }), false);
    await until(() => c.made.length === 2, "reconnect");
    const next = c.socket();
    next.open();
    next.deliver(WELCOME_WAITING);
    assert.deepEqual(
      next.sent.map((m) => m.type),
      ["hello"],
    );
  },

  async "sendReliable sends at once and resolves with the ack naming its key"() {
    const c = connection();
    const socket = await handshake(c);
    const acked = c.conn.sendReliable({
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: { pulse: 4 },
      idempotency_key: "key-0000000000000001",
    });
    const [sent] = socket.sentOfType("checkin-answer");
    assert.equal(sent.idempotency_key, "key-0000000000000001");
    assert.equal(typeof sent.id, "string");
    assert.equal(c.conn.pendingCount, 1);
    socket.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000001", ref: sent.id });
    const ack = await acked;
    assert.equal(ack.idempotency_key, "key-0000000000000001");
    assert.equal(c.conn.pendingCount, 0);
    assert.equal(c.storage.getItem("attune.outbox.s1"), null);
  },

  async "an unacked message is resent after the reconnect, after the hello"() {
    const c = connection();
    const socket = await handshake(c);
    const acked = c.conn.sendReliable({
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: { pulse: 2 },
      idempotency_key: "key-0000000000000002",
    });
    assert.equal(socket.sentOfType("checkin-answer").length, 1);
    const second = await dropAndReconnect(c);
    assert.equal(second.sent.length, 1, "only the hello before the welcome");
    second.deliver(WELCOME_WAITING);
    assert.deepEqual(
      second.sent.map((m) => m.type),
      ["hello", "checkin-answer"],
    );
    assert.equal(second.sent[1].id, socket.sent[1].id, "the same message, same id");
    second.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000002" });
    await acked;
    assert.deepEqual(c.conn.pendingKeys(), []);
  },

  async "a message given while disconnected waits for the next welcome"() {
    const c = connection();
    await handshake(c);
    c.socket().drop(1006);
    const acked = c.conn.sendReliable({
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: {},
      idempotency_key: "key-0000000000000003",
    });
    await until(() => c.made.length === 2, "reconnect");
    const second = c.socket();
    second.open();
    second.deliver(WELCOME_WAITING);
    assert.equal(second.sentOfType("checkin-answer").length, 1);
    second.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000003" });
    await acked;
  },

  async "the same key twice is one message and one ack for both callers"() {
    const c = connection();
    const socket = await handshake(c);
    const message = {
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: { pulse: 5 },
      idempotency_key: "key-0000000000000004",
    };
    const first = c.conn.sendReliable(message);
    const second = c.conn.sendReliable(message);
    assert.equal(socket.sentOfType("checkin-answer").length, 1);
    socket.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000004" });
    assert.deepEqual(await first, await second);
  },

  async "a refusal for good rejects; a server failure is retried"() {
    const c = connection();
    const socket = await handshake(c);
    const refused = c.conn.sendReliable({
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: { nope: 1 },
      idempotency_key: "key-0000000000000005",
      id: "c5",
    });
    socket.deliver({ type: "error", code: "invalid", message: "no such item", ref: "c5" });
    await assert.rejects(refused, (error) => {
      assert.ok(error instanceof OutboxError);
      assert.equal(/** @type {any} */ (error).serverError.code, "invalid");
      return true;
    });
    assert.equal(c.conn.pendingCount, 0);

    const retried = c.conn.sendReliable({
      type: "checkin-answer",
      instrument_id: "pulse",
      answers: { pulse: 3 },
      idempotency_key: "key-0000000000000006",
      id: "c6",
    });
    socket.deliver({ type: "error", code: "internal", message: "retry", ref: "c6" });
    assert.equal(c.conn.pendingCount, 1);
    await until(() => socket.sentOfType("checkin-answer").length === 3, "the retry", 3000);
    socket.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000006", ref: "c6" });
    await retried;
  },

  async "sendReliable refuses a message without an idempotency key"() {
    const c = connection();
    await handshake(c);
    await assert.rejects(
      c.conn.sendReliable(/** @type {any} */ ({ type: "checkin-answer" })),
      OutboxError,
    );
  },

  async "unacked messages survive a reload in storage and are resent, then acked"() {
    const storage = new MemoryStorage();
    const first = connection({ storage });
    await handshake(first);
    void first.conn
      .sendReliable({
        type: "checkin-answer",
        instrument_id: "after",
        answers: { bond: 8 },
        idempotency_key: "key-0000000000000007",
      })
      .catch(() => {});
    first.conn.close(); // the page goes away before the ack

    const reloaded = connection({ storage });
    /** @type {any[]} */
    const acks = [];
    reloaded.conn.on("ack", (event) => acks.push(event.idempotency_key));
    assert.deepEqual(reloaded.conn.pendingKeys(), ["key-0000000000000007"]);
    const socket = await handshake(reloaded);
    assert.equal(socket.sentOfType("checkin-answer").length, 1);
    socket.deliver({ type: "checkin-ack", idempotency_key: "key-0000000000000007" });
    assert.deepEqual(acks, ["key-0000000000000007"]);
    assert.equal(storage.getItem("attune.outbox.s1"), null);
  },

  async "an idle connection pings, and one that never answers is replaced"() {
    const c = connection({ pingAfterMs: 40, deadAfterMs: 60 });
    const socket = await handshake(c);
    await until(() => socket.sentOfType("ping").length === 1, "a ping");
    await until(() => c.made.length === 2, "a new socket after silence", 3000);
    assert.equal(socket.closedWith, 4000);
    c.conn.close();
  },

  async "an answered ping keeps the connection"() {
    const c = connection({ pingAfterMs: 30, deadAfterMs: 60 });
    const socket = await handshake(c);
    await until(() => socket.sentOfType("ping").length === 1, "a ping");
    socket.deliver({ type: "pong" });
    await sleep(90);
    assert.equal(c.made.length, 1);
    c.conn.close();
  },

  async "after a network change an unanswered socket is replaced within the short deadline"() {
    // idle pings far away: only checkNow() can find the dead socket this soon
    const c = connection({ pingAfterMs: 60_000, deadAfterMs: 60_000 });
    const socket = await handshake(c);
    c.conn.checkNow(30);
    assert.equal(socket.sentOfType("ping").length, 1);
    await until(() => c.made.length === 2, "a new socket after the short deadline", 3000);
    assert.equal(socket.closedWith, 4000);
    c.conn.close();
  },

  async "after a network change an answering socket stays, and a waiting one tries at once"() {
    const c = connection({ pingAfterMs: 60_000, deadAfterMs: 60_000, backoffBaseMs: 60_000 });
    const socket = await handshake(c);
    c.conn.checkNow(30);
    socket.deliver({ type: "pong" });
    await sleep(1100); // past the deadline and a heartbeat tick
    assert.equal(c.made.length, 1);
    socket.drop(1006);
    assert.equal(c.conn.state, "reconnecting");
    c.conn.checkNow();
    await until(() => c.made.length === 2, "an attempt at once, not after the back-off");
    c.conn.close();
  },

  async "frames that are not JSON objects with a type are ignored"() {
    const c = connection();
    /** @type {any[]} */
    const seen = [];
    c.conn.on("message", (m) => seen.push(m.type));
    const socket = await handshake(c);
    for (const frame of ["not json", "[1,2]", "null", '{"no":"type"}', '{"type":7}']) {
      socket.deliver(frame);
    }
    socket.deliver({ type: "lobby", waiting: [] });
    assert.deepEqual(seen, ["welcome", "lobby"]);
  },

  async "a subscriber that throws does not stop the others"() {
    const c = connection();
    /** @type {string[]} */
    const seen = [];
    c.conn.on("lobby", () => {
      throw new Error("broken subscriber");
    });
    c.conn.on("lobby", () => seen.push("second"));
    const socket = await handshake(c);
    const swallow = (/** @type {unknown} */ error) => {
      if (!(error instanceof Error && error.message === "broken subscriber")) throw error;
    };
    process.on("uncaughtException", swallow);
    socket.deliver({ type: "lobby", waiting: [] });
    await sleep(5);
    process.off("uncaughtException", swallow);
    assert.deepEqual(seen, ["second"]);
  },
};

/** @type {Record<string, string>} */
const results = {};
for (const [name, scenario] of Object.entries(scenarios)) {
  try {
    await scenario();
    results[name] = "ok";
  } catch (error) {
    results[name] = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  }
}
process.stdout.write(JSON.stringify(results));
// open timers of abandoned connections must not keep node alive
process.exit(0);
