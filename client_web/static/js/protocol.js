// @ts-check
/**
 * The session WebSocket (`/ws/session/<id>`, docs/protocol.md) as an object the pages subscribe
 * to. No DOM access: the UI listens with `on(type, fn)` and renders.
 *
 *   const connection = new SessionConnection({ sessionId });
 *   connection.on("state", ({ state }) => …);        // connecting | open | reconnecting | closed
 *   connection.on("welcome", (message) => …);        // any server message type, by its `type`
 *   connection.on("closed", ({ code, reason }) => …); // for good: show the reason
 *   connection.connect();
 *   connection.send({ type: "admit", knock_id: "k1" });
 *   await connection.sendReliable({ type: "checkin-answer", …, idempotency_key: "…" });
 *
 * What it does for the pages:
 *   - sends `hello` first, with the resume token of an earlier `welcome` (kept in
 *     sessionStorage, so a reload of the same tab resumes too);
 *   - reconnects after a drop with exponential backoff and full jitter, except after the close
 *     codes that mean "stop" (4001–4004 replaced / resumed elsewhere / denied / ended, and
 *     4400 / 4401 / 4403 / 4429 where a retry cannot succeed), and except when a socket that never opened
 *     turns out to have lost its access (the `probe`, by default `GET /api/v1/ice`);
 *   - sends `ping` after 20 s without sending, and treats a socket that answers nothing for
 *     `deadAfterMs` after a ping as dead (a half-open connection after a network change);
 *   - an outbox for messages that must arrive (`sendReliable`): kept until the server's
 *     `checkin-ack` names their `idempotency_key`, resent after every reconnect, and kept in
 *     sessionStorage so a reload resends them too.
 */

import { Emitter } from "./events.js";
import { t } from "./i18n.js";
import {
  AccessEnd,
  CloseCode,
  NO_RECONNECT_CLOSE_CODES,
  PING_AFTER_IDLE_MS,
  PROTOCOL_VERSION,
} from "./protocol_types.js";

// The contract generated from the Python protocol (server/core/protocol/), re-exported for the
// pages: nothing here repeats a code, a version or a message shape by hand.
export { AccessEnd, CloseCode, NO_RECONNECT_CLOSE_CODES, PING_AFTER_IDLE_MS, PROTOCOL_VERSION };

/**
 * @typedef {import("./protocol_types.js").ServerMessage} ServerMessage
 * @typedef {import("./protocol_types.js").ClientMessage} ClientMessage
 * @typedef {import("./protocol_types.js").WelcomeMessage} WelcomeMessage
 * @typedef {import("./protocol_types.js").CheckinAckMessage} CheckinAckMessage
 * @typedef {import("./protocol_types.js").ErrorMessage} ErrorMessage
 */

/**
 * Close codes after which the connection stays closed: a retry cannot succeed.
 * @type {ReadonlySet<number>}
 */
const FINAL_CLOSE_CODES = new Set(NO_RECONNECT_CLOSE_CODES);
/**
 * After these nothing is left to resume: the stored resume token is forgotten.
 * @type {ReadonlySet<number>}
 */
const FORGET_RESUME_CLOSE_CODES = new Set([
  CloseCode.RESUMED_ELSEWHERE,
  CloseCode.DENIED,
  CloseCode.SESSION_ENDED,
  CloseCode.UNAUTHORIZED,
  CloseCode.NOT_FOUND,
  CloseCode.FORBIDDEN,
  CloseCode.TOO_MANY_MESSAGES,
]);
/**
 * Local only, never sent by the server and so not in the protocol contract: this module closes
 * a socket that stopped answering with it, then reconnects.
 */
export const CLOSE_DEAD = 4000;

/** What each final close means, in words for people; the UI may word them its own way. */
export const CLOSE_REASONS = Object.freeze({
  [CloseCode.REPLACED]: t("The session was opened in another tab."),
  [CloseCode.RESUMED_ELSEWHERE]: t("The session continued in another window or device."),
  [CloseCode.DENIED]: t("Your therapist did not let this device in."),
  [CloseCode.SESSION_ENDED]: t("The session has ended."),
  [CloseCode.HANDSHAKE_FAILED]: t("Something went wrong while connecting. Please reload the page."),
  [CloseCode.UNAUTHORIZED]: t("This link does not work any more."),
  [CloseCode.NOT_FOUND]: t("This session could not be found. Please check the link you opened."),
  [CloseCode.CONSENT_REQUIRED]: t("Please agree to the telehealth consent first, then reload the page."),
  [CloseCode.FORBIDDEN]: t("You are no longer part of this session."),
  [CloseCode.TOO_MANY_MESSAGES]: t("Too many messages were sent; reload the page."),
});

/** Why access ended, as the server names it in the close reason (4401, 4403, 4429). */
export const ACCESS_END_WORDS = Object.freeze({
  [AccessEnd.SIGNED_OUT]: t("Your sign-in ended — sign in again."),
  [AccessEnd.ACCOUNT_DISABLED]: t("Your account was disabled; ask your administrator."),
  [AccessEnd.PASSWORD_CHANGED]: t("Your password was changed, so this sign-in ended — sign in again."),
  [AccessEnd.LINK_REVOKED]: t("Your therapist withdrew this link. Please ask for a new one."),
  [AccessEnd.LINK_REPLACED]: t("This link was replaced by a new one. Please use the new link."),
  [AccessEnd.ANOTHER_DEVICE]: t("The session was opened on another device, and that device was let in."),
  [AccessEnd.CONSENT_WITHDRAWN]: t("You withdrew your consent to video sessions, so you have left the session."),
  [AccessEnd.TOO_MANY_MESSAGES]: t("Too many messages were sent; reload the page."),
  [AccessEnd.TOO_MANY_KNOCKS]: t("This link is open in too many windows. Close the others and reload this page."),
});

/** @typedef {"connecting" | "open" | "reconnecting" | "closed"} ConnectionState */

/**
 * @typedef {object} StateEvent
 * @property {ConnectionState} state
 * @property {number} attempt  reconnect attempts since the last open (0 while open)
 * @property {number} [delayMs]  with "reconnecting": the wait before the next attempt
 * @property {number} [code]  with "reconnecting" and "closed": the close code that caused it
 */

/**
 * @typedef {object} ClosedEvent
 * @property {number} code  the WebSocket close code (1000 after `close()`)
 * @property {string} reason  the server's reason, or a sentence from CLOSE_REASONS
 */

/**
 * @typedef {object} AckEvent
 * @property {string} idempotency_key
 * @property {ClientMessage} message  the message the ack settled
 * @property {CheckinAckMessage} ack
 */

/**
 * Each server message by its `type` (docs/protocol.md, "Server → client messages").
 * @typedef {{[K in ServerMessage["type"]]: Extract<ServerMessage, {type: K}>}} ServerMessagesByType
 */

/**
 * What `on(type, fn)` hands to `fn`: a server message by its type, or one of this module's
 * own events.
 * @typedef {ServerMessagesByType & {message: ServerMessage, state: StateEvent, closed: ClosedEvent, ack: AckEvent}} ConnectionEvents
 */

/**
 * A message for `sendReliable`: one that carries an idempotency key.
 * @typedef {Extract<ClientMessage, {idempotency_key: string}>} ReliableMessage
 */

/**
 * The parts of WebSocket this module uses (a fake one in tests).
 * @typedef {object} SocketLike
 * @property {number} readyState
 * @property {(data: string) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {((event: Event) => void) | null} onopen
 * @property {((event: MessageEvent) => void) | null} onmessage
 * @property {((event: CloseEvent) => void) | null} onclose
 * @property {((event: Event) => void) | null} onerror
 */

/**
 * @typedef {object} StorageLike
 * @property {(key: string) => string | null} getItem
 * @property {(key: string, value: string) => void} setItem
 * @property {(key: string) => void} removeItem
 */

/**
 * @typedef {object} ConnectionOptions
 * @property {string} sessionId
 * @property {string} [url]  default: ws(s)://<this host>/ws/session/<sessionId>
 * @property {(url: string) => SocketLike} [createSocket]  default: `new WebSocket(url)`
 * @property {StorageLike | null} [storage]  default: sessionStorage (null: keep nothing)
 * @property {() => Promise<boolean>} [probe]  after a socket failed before opening: may we
 *   still connect? false ends the connection (code 4401). Default: `GET /api/v1/ice` is not
 *   401/403/404. Network errors count as "yes, keep trying".
 * @property {number} [backoffBaseMs]  first reconnect waits up to this (default 500)
 * @property {number} [backoffMaxMs]  cap (default 15000)
 * @property {number} [pingAfterMs]  idle time before a `ping` (default 20000)
 * @property {number} [deadAfterMs]  silence after a ping that counts as a dead socket (10000)
 * @property {number} [resendAfterMs]  an unacked reliable message is resent after this (15000)
 * @property {() => number} [random]  for the jitter (default Math.random)
 */

/** A message for `sendReliable` must carry an idempotency key. */
export class OutboxError extends Error {
  /**
   * @param {string} message
   * @param {ServerMessage | null} [serverError]  the server's `error`, when it refused
   */
  constructor(message, serverError = null) {
    super(message);
    this.name = "OutboxError";
    this.serverError = serverError;
  }
}

/** Server error codes after which a reliable message is worth sending again. */
const RETRYABLE_ERRORS = new Set(["internal", "rate-limited"]);
const RETRY_AFTER_ERROR_MS = 1000;

/** The default `probe`: does the server still let this browser in? */
async function defaultProbe() {
  try {
    const response = await fetch("/api/v1/ice", { credentials: "same-origin", cache: "no-store" });
    return ![401, 403, 404].includes(response.status);
  } catch {
    return true; // offline: keep trying
  }
}

/**
 * @param {string} sessionId
 * @returns {string}
 */
function defaultUrl(sessionId) {
  const { protocol, host } = globalThis.location;
  return `${protocol === "https:" ? "wss" : "ws"}://${host}/ws/session/${encodeURIComponent(sessionId)}`;
}

/** @returns {StorageLike | null} */
function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage disabled: resume and the persistent outbox simply do not survive
  }
}

let idCounter = 0;
/**
 * A message id, unique in this page.
 * @param {string} prefix
 */
function nextId(prefix) {
  idCounter += 1;
  return `${prefix}${idCounter.toString(36)}.${Date.now().toString(36)}`;
}

/**
 * One session's WebSocket, reconnecting and resuming until the session says stop.
 */
export class SessionConnection {
  /** @type {Emitter<ConnectionEvents>} */
  #events = new Emitter();
  /** @type {Required<Omit<ConnectionOptions, "storage">> & {storage: StorageLike | null}} */
  #options;
  /** @type {SocketLike | null} */
  #socket = null;
  /** @type {ConnectionState} */
  #state = "closed";
  #started = false;
  #final = false;
  #attempt = 0;
  /** @type {ReturnType<typeof setTimeout> | null} */
  #retryTimer = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  #heartbeat = null;
  #lastSentAt = 0;
  #pingSentAt = 0;
  /** When the socket counts as dead if that ping is still unanswered. */
  #pingDeadAt = 0;
  /** @type {WelcomeMessage | null} */
  #welcome = null;
  /**
   * Unacked reliable messages by idempotency key, in the order they were first sent.
   * @type {Map<string, {message: ReliableMessage, sentAt: number, resolve: (ack: CheckinAckMessage) => void, reject: (error: Error) => void}>}
   */
  #outbox = new Map();

  /** @param {ConnectionOptions} options */
  constructor(options) {
    if (!options || typeof options.sessionId !== "string" || !options.sessionId) {
      throw new TypeError("sessionId is required");
    }
    this.#options = {
      url: options.url ?? defaultUrl(options.sessionId),
      createSocket: options.createSocket ?? ((url) => new WebSocket(url)),
      storage: options.storage === undefined ? defaultStorage() : options.storage,
      probe: options.probe ?? defaultProbe,
      backoffBaseMs: options.backoffBaseMs ?? 500,
      backoffMaxMs: options.backoffMaxMs ?? 15_000,
      pingAfterMs: options.pingAfterMs ?? PING_AFTER_IDLE_MS,
      deadAfterMs: options.deadAfterMs ?? 10_000,
      resendAfterMs: options.resendAfterMs ?? 15_000,
      random: options.random ?? Math.random,
      sessionId: options.sessionId,
    };
    this.#restoreOutbox();
  }

  // --- subscribing ---------------------------------------------------------------------

  /**
   * Call `fn` for every event of this type; returns a function that unsubscribes.
   * Types: any server message type ("welcome", "lobby", "admitted", "signal-relay", "error",
   * …) with the message; "message" for every server message; "state" (StateEvent);
   * "closed" (ClosedEvent, once, when the connection gives up for good); "ack" (a
   * `checkin-ack` that settled an outbox entry, also for entries restored after a reload).
   * @template {keyof ConnectionEvents} K
   * @param {K} type
   * @param {(payload: ConnectionEvents[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    return this.#events.on(type, fn);
  }

  /**
   * @template {keyof ConnectionEvents} K
   * @param {K} type
   * @param {ConnectionEvents[K]} payload
   */
  #emit(type, payload) {
    this.#events.emit(type, payload);
  }

  // --- state -----------------------------------------------------------------------------

  /** @returns {ConnectionState} */
  get state() {
    return this.#state;
  }

  /** The last `welcome` (role, state, peer, knock id, …), or null before the first one. */
  get welcome() {
    return this.#welcome;
  }

  /** The current socket, for diagnostics and tests (closing it simulates a network drop). */
  get socket() {
    return this.#socket;
  }

  /** How many reliable messages wait for their ack. */
  get pendingCount() {
    return this.#outbox.size;
  }

  /** The idempotency keys still waiting for an ack, oldest first. */
  pendingKeys() {
    return [...this.#outbox.keys()];
  }

  /**
   * @param {ConnectionState} state
   * @param {Partial<StateEvent>} [extra]
   */
  #setState(state, extra = {}) {
    this.#state = state;
    this.#emit("state", { state, attempt: this.#attempt, ...extra });
  }

  // --- connecting ------------------------------------------------------------------------

  /** Open the connection (once; later calls do nothing). */
  connect() {
    if (this.#started) return;
    this.#started = true;
    this.#open("connecting");
  }

  /** If waiting to reconnect, try now (e.g. when the browser says it is back online). */
  reconnectNow() {
    if (this.#final || this.#retryTimer === null) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#open("reconnecting");
  }

  /**
   * The network may have changed (the browser is back online, or on another network): if
   * waiting to reconnect, try now; if open, ping at once and give the socket `withinMs` to
   * answer, so a socket that died silently in the change is replaced within seconds instead
   * of at the next idle ping.
   * @param {number} [withinMs]
   */
  checkNow(withinMs = 3000) {
    if (this.#final) return;
    if (this.#retryTimer !== null) {
      this.reconnectNow();
      return;
    }
    if (this.#state !== "open" || !this.#socket) return;
    const now = Date.now();
    this.#write({ type: "ping" });
    this.#pingDeadAt = this.#pingSentAt ? Math.min(this.#pingDeadAt, now + withinMs) : now + withinMs;
    this.#pingSentAt = this.#pingSentAt || now;
  }

  /** Close for good, from this side (leaving the page, or the session is over). */
  close() {
    if (this.#final) return;
    this.#finish(1000, "closed by the page");
  }

  /**
   * @param {ConnectionState} state  the state to report while this attempt runs
   */
  #open(state) {
    if (this.#state !== state) this.#setState(state);
    let socket;
    try {
      socket = this.#options.createSocket(this.#options.url);
    } catch {
      this.#scheduleReconnect(1006, false);
      return;
    }
    this.#socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.#pingSentAt = 0;
      /** @type {import("./protocol_types.js").HelloMessage} */
      const hello = { type: "hello", version: PROTOCOL_VERSION };
      const resume = this.#storageGet(this.#resumeKey());
      if (resume) hello.resume = resume;
      this.#write(hello);
    };
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      this.#pingSentAt = 0;
      this.#receive(event.data);
    };
    socket.onerror = () => {
      // a close event always follows; it decides what happens next
    };
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = null;
      this.#stopHeartbeat();
      if (this.#final) return;
      const code = Number(event.code) || 1006;
      if (FINAL_CLOSE_CODES.has(code)) {
        this.#finish(code, event.reason || "");
        return;
      }
      this.#scheduleReconnect(code, opened);
    };
  }

  /**
   * @param {number} code
   * @param {boolean} opened  whether the socket that closed had opened
   */
  #scheduleReconnect(code, opened) {
    const exponent = Math.min(this.#attempt, 16);
    const ceiling = Math.min(this.#options.backoffMaxMs, this.#options.backoffBaseMs * 2 ** exponent);
    // full jitter, with a floor so a flapping network does not turn into a busy loop
    const delayMs = Math.round(ceiling / 4 + this.#options.random() * ((ceiling * 3) / 4));
    this.#attempt += 1;
    this.#setState("reconnecting", { delayMs, code });
    const retry = async () => {
      this.#retryTimer = null;
      if (this.#final) return;
      if (!opened) {
        let allowed = true;
        try {
          allowed = await this.#options.probe();
        } catch {
          allowed = true;
        }
        if (this.#final) return;
        if (!allowed) {
          this.#finish(CloseCode.UNAUTHORIZED, "");
          return;
        }
      }
      this.#open("reconnecting");
    };
    this.#retryTimer = setTimeout(() => void retry(), delayMs);
  }

  /**
   * Stop for good and tell the subscribers why.
   * @param {number} code
   * @param {string} reason
   */
  #finish(code, reason) {
    this.#final = true;
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#stopHeartbeat();
    const socket = this.#socket;
    this.#socket = null;
    if (socket && socket.readyState <= 1) {
      try {
        socket.close(1000);
      } catch {
        // already closing
      }
    }
    if (FORGET_RESUME_CLOSE_CODES.has(code)) {
      this.#storageRemove(this.#resumeKey()); // nothing left to resume
    }
    const words = /** @type {Record<string, string>} */ (ACCESS_END_WORDS)[reason];
    const known = words ?? /** @type {Record<number, string>} */ (CLOSE_REASONS)[code];
    this.#setState("closed", { code });
    this.#emit("closed", { code, reason: known ?? reason ?? "" });
    for (const entry of this.#outbox.values()) {
      entry.reject(new OutboxError("the connection closed for good before the server acked"));
    }
    // entries stay stored: a later page load in this tab resends them
  }

  // --- receiving ---------------------------------------------------------------------------

  /** @param {unknown} data */
  #receive(data) {
    if (typeof data !== "string") return;
    /** @type {unknown} */
    let parsed;
    try {
      parsed = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return;
    const message = /** @type {ServerMessage} */ (parsed);
    if (typeof message.type !== "string") return;

    if (message.type === "welcome") {
      this.#welcome = message;
      if (typeof message.resume_token === "string") {
        this.#storageSet(this.#resumeKey(), message.resume_token);
      }
      this.#attempt = 0;
      this.#setState("open");
      this.#startHeartbeat();
      this.#flushOutbox(true);
    } else if (message.type === "checkin-ack") {
      this.#settleAck(message);
    } else if (message.type === "error") {
      this.#outboxRefused(message);
    }
    this.#emit("message", message);
    this.#emit(message.type, message);
  }

  // --- sending -----------------------------------------------------------------------------

  /**
   * Send a message now if the connection is open; false if it could not be sent (nothing is
   * queued: signaling that missed a dropped socket is renegotiated, not replayed).
   * @param {ClientMessage} message
   * @returns {boolean}
   */
  send(message) {
    if (this.#state !== "open") return false;
    return this.#write(message);
  }

  /**
   * @param {ClientMessage} message
   * @returns {boolean}
   */
  #write(message) {
    const socket = this.#socket;
    if (!socket || socket.readyState !== 1) return false;
    try {
      socket.send(JSON.stringify(message));
    } catch {
      return false;
    }
    this.#lastSentAt = Date.now();
    return true;
  }

  /**
   * Send a message that must arrive: it carries an `idempotency_key` and is kept until the
   * server's `checkin-ack` names that key, resent after each reconnect (and after
   * `resendAfterMs` without an ack), and after a page reload in this tab. Resolves with the
   * ack; rejects with OutboxError when the server refuses it for good (an `error` whose `ref`
   * is this message's `id`, other than `internal` / `rate-limited`, which are retried) or
   * when the connection closes for good.
   * @param {ReliableMessage} message
   * @returns {Promise<CheckinAckMessage>}
   */
  sendReliable(message) {
    const key = message?.idempotency_key;
    if (typeof key !== "string" || key === "") {
      return Promise.reject(new OutboxError("sendReliable needs an idempotency_key"));
    }
    if (this.#final) {
      return Promise.reject(new OutboxError("the connection is closed"));
    }
    const existing = this.#outbox.get(key);
    if (existing) {
      // the same submission again: one entry, one ack for both callers
      return new Promise((resolve, reject) => {
        const { resolve: first, reject: firstReject } = existing;
        existing.resolve = (ack) => {
          first(ack);
          resolve(ack);
        };
        existing.reject = (error) => {
          firstReject(error);
          reject(error);
        };
      });
    }
    const stored = { ...message, id: message.id ?? nextId("r") };
    return new Promise((resolve, reject) => {
      this.#outbox.set(key, { message: stored, sentAt: 0, resolve, reject });
      this.#saveOutbox();
      this.#flushOutbox(false);
    });
  }

  /**
   * Send outbox entries: all of them after a (re)connect, else those never sent or unacked
   * for too long.
   * @param {boolean} all
   */
  #flushOutbox(all) {
    if (this.#state !== "open") return;
    const now = Date.now();
    for (const entry of this.#outbox.values()) {
      if (all || entry.sentAt === 0 || now - entry.sentAt >= this.#options.resendAfterMs) {
        if (this.#write(entry.message)) entry.sentAt = now;
      }
    }
  }

  /** @param {CheckinAckMessage} ack */
  #settleAck(ack) {
    const entry = this.#outbox.get(ack.idempotency_key);
    if (!entry) return;
    this.#outbox.delete(ack.idempotency_key);
    this.#saveOutbox();
    entry.resolve(ack);
    this.#emit("ack", { idempotency_key: ack.idempotency_key, message: entry.message, ack });
  }

  /** @param {ErrorMessage} error */
  #outboxRefused(error) {
    if (typeof error.ref !== "string") return;
    for (const [key, entry] of this.#outbox) {
      if (entry.message.id !== error.ref) continue;
      if (RETRYABLE_ERRORS.has(error.code)) {
        // resend soon (the heartbeat's resend rule would wait resendAfterMs)
        entry.sentAt = Date.now() - this.#options.resendAfterMs + RETRY_AFTER_ERROR_MS;
        setTimeout(() => this.#flushOutbox(false), RETRY_AFTER_ERROR_MS);
      } else {
        this.#outbox.delete(key);
        this.#saveOutbox();
        entry.reject(new OutboxError(`the server refused it: ${error.code}`, error));
      }
      return;
    }
  }

  // --- liveness ----------------------------------------------------------------------------

  #startHeartbeat() {
    this.#stopHeartbeat();
    this.#lastSentAt = Date.now();
    const tick = Math.max(50, Math.min(1000, this.#options.pingAfterMs / 4));
    this.#heartbeat = setInterval(() => this.#beat(), tick);
  }

  #stopHeartbeat() {
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat);
    this.#heartbeat = null;
  }

  #beat() {
    const now = Date.now();
    const socket = this.#socket;
    if (!socket || this.#state !== "open") return;
    if (this.#pingSentAt && now >= this.#pingDeadAt) {
      // nothing came back after our ping: the socket is dead even if the browser has not
      // noticed (a network change); close it and reconnect
      this.#pingSentAt = 0;
      this.#socket = null;
      this.#stopHeartbeat();
      try {
        socket.close(CLOSE_DEAD, "no answer");
      } catch {
        // ignore
      }
      this.#scheduleReconnect(CLOSE_DEAD, true);
      return;
    }
    if (!this.#pingSentAt && now - this.#lastSentAt >= this.#options.pingAfterMs) {
      // a socket that cannot even take the ping (closing, but no close event yet) is as
      // good as dead: it gets the same deadline
      this.#write({ type: "ping" });
      this.#pingSentAt = now;
      this.#pingDeadAt = now + this.#options.deadAfterMs;
    }
    this.#flushOutbox(false);
  }

  // --- storage -----------------------------------------------------------------------------

  #resumeKey() {
    return `attune.resume.${this.#options.sessionId}`;
  }

  #outboxKey() {
    return `attune.outbox.${this.#options.sessionId}`;
  }

  #saveOutbox() {
    const messages = [...this.#outbox.values()].map((entry) => entry.message);
    if (messages.length) this.#storageSet(this.#outboxKey(), JSON.stringify(messages));
    else this.#storageRemove(this.#outboxKey());
  }

  #restoreOutbox() {
    const raw = this.#storageGet(this.#outboxKey());
    if (!raw) return;
    let messages;
    try {
      messages = JSON.parse(raw);
    } catch {
      this.#storageRemove(this.#outboxKey());
      return;
    }
    if (!Array.isArray(messages)) return;
    for (const message of messages) {
      const key = message?.idempotency_key;
      if (typeof key !== "string" || typeof message.type !== "string") continue;
      // nobody awaits these any more: the "ack" event tells the page they arrived
      this.#outbox.set(key, { message, sentAt: 0, resolve: () => {}, reject: () => {} });
    }
  }

  /** @param {string} key */
  #storageGet(key) {
    try {
      return this.#options.storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  /**
   * @param {string} key
   * @param {string} value
   */
  #storageSet(key, value) {
    try {
      this.#options.storage?.setItem(key, value);
    } catch {
      // full or disabled storage: in-memory only
    }
  }

  /** @param {string} key */
  #storageRemove(key) {
    try {
      this.#options.storage?.removeItem(key);
    } catch {
      // ignore
    }
  }
}
