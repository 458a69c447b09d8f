// @ts-check
/**
 * Safety code for a call: commit-reveal of two nonces and the code derived from them.
 *
 * The browser twin of `server/core/sas.py` (DESIGN.md §3.4); both give the same bytes for the
 * same inputs, pinned by `tests/unit/sas_vectors.json`. The module docstring of sas.py defines
 * the protocol, the exact bytes hashed and the display; in short:
 *
 *   therapist -> client  {"t":"sas-commit","c":b64url(SHA-256("attune-commit-v1" || nT))}
 *   client -> therapist  {"t":"sas-nonce","n":b64url(nC)}    only after the commit
 *   therapist -> client  {"t":"sas-reveal","n":b64url(nT)}   only after the nonce
 *   code = first 24 bits of SHA-256("attune-sas-v1" || FP(therapist) || FP(client) || nT || nC)
 *          as 8 octal digits, "0123 4567"; FP(x) = ASCII "sha-256 AB:CD:…" (uppercase hex).
 *
 * No DOM access; hashing uses WebCrypto (`crypto.subtle.digest`), so hashing functions are
 * async. Nonces are 32 random bytes chosen by the caller:
 * `crypto.getRandomValues(new Uint8Array(NONCE_BYTES))`.
 *
 * Names map to sas.py in camelCase: commitment, canonicalFingerprint, normalizeFingerprint,
 * sasBytes, renderCode, sasCode, groupPairs, encodeB64url, CommitRevealInitiator, CommitRevealResponder,
 * SasProtocolError, SasState. Differences forced by async hashing: the initiator is built with
 * `await CommitRevealInitiator.create(nonce)`, `receive()` and `sasCode()` return promises, and
 * the responder passes through the state "checking" while it hashes a reveal.
 */

export const NONCE_BYTES = 32;
export const SAS_BITS = 24;

export const MSG_COMMIT = "sas-commit";
export const MSG_NONCE = "sas-nonce";
export const MSG_REVEAL = "sas-reveal";

const encoder = new TextEncoder();
const COMMIT_LABEL = encoder.encode("attune-commit-v1");
const SAS_LABEL = encoder.encode("attune-sas-v1");

// ASCII only and explicit blanks, so that Python and JavaScript accept the same strings
const FINGERPRINT = /^(?:sha-256[ \t]+)?((?:[0-9a-f]{2}:){31}[0-9a-f]{2})$/i;
const BLANKS_AROUND = /^[ \t\r\n]+|[ \t\r\n]+$/g;
const B64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;

/** @typedef {{t: "sas-commit", c: string}} CommitMessage */
/** @typedef {{t: "sas-nonce", n: string}} NonceMessage */
/** @typedef {{t: "sas-reveal", n: string}} RevealMessage */
/** @typedef {CommitMessage | NonceMessage | RevealMessage} SasMessage */

/** The safety-code exchange broke its rules: abort, show no code. */
export class SasProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "SasProtocolError";
  }
}

/** Where one side of the commit-reveal exchange stands. */
export const SasState = Object.freeze(/** @type {const} */ ({
  /** the therapist's side before it sends its commitment */
  IDLE: "idle",
  /** the client's side at the start */
  AWAITING_COMMIT: "awaiting-commit",
  AWAITING_NONCE: "awaiting-nonce",
  AWAITING_REVEAL: "awaiting-reveal",
  /** JavaScript only: the client's side while WebCrypto hashes the reveal */
  CHECKING: "checking",
  COMPLETE: "complete",
  ABORTED: "aborted",
}));

/** @typedef {typeof SasState[keyof typeof SasState]} SasStateValue */

/**
 * Refuse a nonce that is not exactly 32 bytes.
 * @param {string} name
 * @param {Uint8Array} nonce
 */
function checkNonce(name, nonce) {
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw new RangeError(`${name} must be ${NONCE_BYTES} bytes`);
  }
}

/**
 * SHA-256 of the concatenated parts.
 * @param {Uint8Array[]} parts
 * @returns {Promise<Uint8Array>}
 */
async function sha256(...parts) {
  const data = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    data.set(part, offset);
    offset += part.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data));
}

/**
 * The therapist's commitment to its nonce: SHA-256("attune-commit-v1" || nonce).
 * @param {Uint8Array} nonce
 * @returns {Promise<Uint8Array>}
 */
export async function commitment(nonce) {
  checkNonce("nonce", nonce);
  return sha256(COMMIT_LABEL, nonce);
}

/**
 * A SHA-256 fingerprint ("sha-256 ab:…" or "AB:…") as "sha-256 AB:CD:…".
 * @param {string} fingerprint
 * @returns {string}
 */
export function canonicalFingerprint(fingerprint) {
  const match = FINGERPRINT.exec(String(fingerprint).replace(BLANKS_AROUND, ""));
  if (match === null) {
    throw new RangeError(`not a SHA-256 certificate fingerprint: ${JSON.stringify(fingerprint)}`);
  }
  return `sha-256 ${match[1].toUpperCase()}`;
}

/**
 * The exact bytes a fingerprint contributes to the safety code (ASCII, 103 bytes).
 * @param {string} fingerprint
 * @returns {Uint8Array}
 */
export function normalizeFingerprint(fingerprint) {
  return encoder.encode(canonicalFingerprint(fingerprint));
}

/**
 * SHA-256("attune-sas-v1" || FP(therapist) || FP(client) || nT || nC).
 * @param {string} fpTherapist
 * @param {string} fpClient
 * @param {Uint8Array} nT
 * @param {Uint8Array} nC
 * @returns {Promise<Uint8Array>}
 */
export async function sasBytes(fpTherapist, fpClient, nT, nC) {
  checkNonce("nT", nT);
  checkNonce("nC", nC);
  return sha256(
    SAS_LABEL,
    normalizeFingerprint(fpTherapist),
    normalizeFingerprint(fpClient),
    nT,
    nC,
  );
}

/**
 * The first 24 bits of a digest as 8 octal digits, "0123 4567".
 * @param {Uint8Array} digest
 * @returns {string}
 */
export function renderCode(digest) {
  const value = (digest[0] << 16) | (digest[1] << 8) | digest[2];
  const digits = value.toString(8).padStart(8, "0");
  return `${digits.slice(0, 4)} ${digits.slice(4)}`;
}

/**
 * The safety code both people read aloud, e.g. "0123 4567".
 * @param {string} fpTherapist
 * @param {string} fpClient
 * @param {Uint8Array} nT
 * @param {Uint8Array} nC
 * @returns {Promise<string>}
 */
export async function sasCode(fpTherapist, fpClient, nT, nC) {
  return renderCode(await sasBytes(fpTherapist, fpClient, nT, nC));
}

/**
 * Every pair of a group call as [committer, responder], by admission order (sas.py
 * `group_pairs`): the person admitted earlier commits, as the therapist does in a two-person
 * call, and is the pair's impolite side; the pairs come sorted by those two orders.
 * @param {Record<string, number>} orders  peer id → admission order (the therapist 0)
 * @returns {Array<[string, string]>}
 */
export function groupPairs(orders) {
  const people = Object.keys(orders).sort((a, b) => orders[a] - orders[b]);
  if (new Set(Object.values(orders)).size !== people.length) {
    throw new Error("two people in a call never share an order");
  }
  /** @type {Array<[string, string]>} */
  const pairs = [];
  people.forEach((a, i) => {
    for (const b of people.slice(i + 1)) pairs.push([a, b]);
  });
  return pairs;
}

/**
 * Base64url without padding, as on the wire.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function encodeB64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Decode a canonical unpadded base64url value of exactly 32 bytes.
 * @param {unknown} value
 * @returns {Uint8Array}
 */
function decode32Bytes(value) {
  if (typeof value !== "string" || !B64URL_32_BYTES.test(value)) {
    throw new SasProtocolError("expected 32 bytes as unpadded base64url");
  }
  const binary = atob(value.replace(/-/g, "+").replace(/_/g, "/") + "=");
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  if (encodeB64url(bytes) !== value) {
    // spare bits set: refuse, so both twins agree
    throw new SasProtocolError("base64url value is not in canonical form");
  }
  return bytes;
}

/** @type {Readonly<Record<string, string>>} */
const FIELD = Object.freeze({ [MSG_COMMIT]: "c", [MSG_NONCE]: "n", [MSG_REVEAL]: "n" });

/**
 * A message's type and its 32-byte value, or SasProtocolError.
 * @param {unknown} message
 * @returns {{kind: string, value: Uint8Array}}
 */
function parse(message) {
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    throw new SasProtocolError("a message must be a JSON object");
  }
  const record = /** @type {Record<string, unknown>} */ (message);
  const kind = record.t;
  if (typeof kind !== "string" || !Object.hasOwn(FIELD, kind)) {
    throw new SasProtocolError(`unknown message type ${JSON.stringify(kind)}`);
  }
  const field = FIELD[kind];
  const keys = Object.keys(record);
  if (keys.length !== 2 || !keys.includes("t") || !keys.includes(field)) {
    throw new SasProtocolError(`${kind} must have exactly the keys t and ${field}`);
  }
  return { kind, value: decode32Bytes(record[field]) };
}

/**
 * Compare two byte strings without an early exit.
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** What both sides share: own nonce, state, abort-forever, and the final code. */
class Exchange {
  /**
   * This side's own nonce.
   * @protected
   * @type {Uint8Array}
   */
  nonce;
  /**
   * The other side's nonce, once received and (for the client) checked.
   * @protected
   * @type {Uint8Array | null}
   */
  peerNonce = null;
  /** @type {SasStateValue} */
  #state;
  /** @type {boolean} */
  #isTherapist;

  /**
   * @param {Uint8Array} nonce
   * @param {SasStateValue} state
   * @param {boolean} isTherapist
   */
  constructor(nonce, state, isTherapist) {
    checkNonce("nonce", nonce);
    this.nonce = nonce;
    this.#state = state;
    this.#isTherapist = isTherapist;
  }

  /** Where this side of the exchange stands. */
  get state() {
    return this.#state;
  }

  /**
   * @protected
   * @param {SasStateValue} state
   */
  moveTo(state) {
    this.#state = state;
  }

  /**
   * Abort for good and return the error to throw.
   * @protected
   * @param {string} reason
   * @returns {SasProtocolError}
   */
  abort(reason) {
    this.#state = SasState.ABORTED;
    return new SasProtocolError(reason);
  }

  /**
   * Require a state, aborting when the step is out of order.
   * @protected
   * @param {SasStateValue} state
   * @param {string} what
   */
  expect(state, what) {
    if (this.#state === SasState.ABORTED) {
      throw new SasProtocolError("the safety-code exchange was aborted");
    }
    if (this.#state !== state) throw this.abort(`${what} out of order (state ${this.#state})`);
  }

  /**
   * Parse an incoming message, aborting on anything malformed.
   * @protected
   * @param {unknown} message
   * @returns {{kind: string, value: Uint8Array}}
   */
  parseIncoming(message) {
    if (this.#state === SasState.ABORTED) {
      throw new SasProtocolError("the safety-code exchange was aborted");
    }
    try {
      return parse(message);
    } catch (error) {
      throw this.abort(error instanceof Error ? error.message : String(error));
    }
  }

  /**
   * (nT, nC) once the exchange is complete.
   * @returns {[Uint8Array, Uint8Array]}
   */
  nonces() {
    if (this.#state !== SasState.COMPLETE || this.peerNonce === null) {
      throw new SasProtocolError(`the exchange is not complete (state ${this.#state})`);
    }
    return this.#isTherapist ? [this.nonce, this.peerNonce] : [this.peerNonce, this.nonce];
  }

  /**
   * The safety code to show, once the exchange is complete.
   * @param {string} fpTherapist
   * @param {string} fpClient
   * @returns {Promise<string>}
   */
  async sasCode(fpTherapist, fpClient) {
    const [nT, nC] = this.nonces();
    return sasCode(fpTherapist, fpClient, nT, nC);
  }
}

/** The therapist's side: commits to nT, receives nC, reveals nT. */
export class CommitRevealInitiator extends Exchange {
  /** @type {Uint8Array} */
  #commitment;

  /**
   * Use `await CommitRevealInitiator.create(nonce)`: the commitment needs async hashing.
   * @param {Uint8Array} nonce
   * @param {Uint8Array} nonceCommitment
   */
  constructor(nonce, nonceCommitment) {
    super(nonce, SasState.IDLE, true);
    this.#commitment = nonceCommitment;
  }

  /**
   * The therapist's side for a fresh 32-byte nonce.
   * @param {Uint8Array} nonce
   * @returns {Promise<CommitRevealInitiator>}
   */
  static async create(nonce) {
    return new CommitRevealInitiator(nonce, await commitment(nonce));
  }

  /**
   * The commitment message that opens the exchange.
   * @returns {CommitMessage}
   */
  start() {
    this.expect(SasState.IDLE, "a second commit");
    this.moveTo(SasState.AWAITING_NONCE);
    return { t: MSG_COMMIT, c: encodeB64url(this.#commitment) };
  }

  /**
   * Take the client's nonce and answer with the reveal; anything else aborts.
   * @param {unknown} message
   * @returns {Promise<RevealMessage>}
   */
  async receive(message) {
    const { kind, value } = this.parseIncoming(message);
    if (kind !== MSG_NONCE) throw this.abort(`the therapist's side never receives ${kind}`);
    this.expect(SasState.AWAITING_NONCE, "a nonce");
    this.peerNonce = value;
    this.moveTo(SasState.COMPLETE);
    return { t: MSG_REVEAL, n: encodeB64url(this.nonce) };
  }
}

/** The client's side: receives the commitment, sends nC, checks the reveal. */
export class CommitRevealResponder extends Exchange {
  /** @type {Uint8Array | null} */
  #commitment = null;

  /** @param {Uint8Array} nonce */
  constructor(nonce) {
    super(nonce, SasState.AWAITING_COMMIT, false);
  }

  /**
   * Answer a commit with the nonce; check a reveal (resolves to null when complete).
   * State changes happen before any await, so a message arriving meanwhile is out of order.
   * @param {unknown} message
   * @returns {Promise<NonceMessage | null>}
   */
  async receive(message) {
    const { kind, value } = this.parseIncoming(message);
    if (kind === MSG_COMMIT) {
      this.expect(SasState.AWAITING_COMMIT, "a commit");
      this.#commitment = value;
      this.moveTo(SasState.AWAITING_REVEAL);
      return { t: MSG_NONCE, n: encodeB64url(this.nonce) };
    }
    if (kind === MSG_REVEAL) {
      this.expect(SasState.AWAITING_REVEAL, "a reveal");
      const committed = /** @type {Uint8Array} */ (this.#commitment);
      this.moveTo(SasState.CHECKING);
      const revealed = await commitment(value);
      if (this.state !== SasState.CHECKING) {
        throw new SasProtocolError("the safety-code exchange was aborted");
      }
      if (!equalBytes(revealed, committed)) {
        throw this.abort("the revealed nonce does not match the commitment");
      }
      this.peerNonce = value;
      this.moveTo(SasState.COMPLETE);
      return null;
    }
    throw this.abort(`the client's side never receives ${kind}`);
  }
}
