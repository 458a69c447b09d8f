// @ts-check
/**
 * Run client_web/static/js/sas.js against tests/unit/sas_vectors.json and print what it
 * computes as JSON on stdout, in the shape of the file's "expected" fields; test_sas.py
 * compares. Usage: node sas_vectors_check.mjs path/to/sas_vectors.json
 */
import { readFile } from "node:fs/promises";

import {
  CommitRevealInitiator,
  CommitRevealResponder,
  SasProtocolError,
  canonicalFingerprint,
  commitment,
  groupPairs,
  sasBytes,
  sasCode,
} from "../../client_web/static/js/sas.js";

/**
 * @param {string} hex
 * @returns {Uint8Array}
 */
function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/**
 * @param {Uint8Array} bytes
 * @returns {string}
 */
function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * The same computations as test_sas.expected_for_vector, in JavaScript.
 * @param {{fp_therapist: string, fp_client: string, n_t: string, n_c: string}} vector
 */
async function expectedForVector(vector) {
  const nT = fromHex(vector.n_t);
  const nC = fromHex(vector.n_c);
  const therapist = await CommitRevealInitiator.create(nT);
  const client = new CommitRevealResponder(nC);
  const commit = therapist.start();
  const nonce = await client.receive(commit);
  const reveal = await therapist.receive(nonce);
  const last = await client.receive(reveal);
  return {
    commitment: toHex(await commitment(nT)),
    fp_therapist: canonicalFingerprint(vector.fp_therapist),
    fp_client: canonicalFingerprint(vector.fp_client),
    sas_bytes: toHex(await sasBytes(vector.fp_therapist, vector.fp_client, nT, nC)),
    sas_code: await sasCode(vector.fp_therapist, vector.fp_client, nT, nC),
    messages: [commit, nonce, reveal, last],
    therapist_code: await therapist.sasCode(vector.fp_therapist, vector.fp_client),
    client_code: await client.sasCode(vector.fp_therapist, vector.fp_client),
  };
}

/**
 * Each pair of a group call, as test_sas.expected_for_group: who commits, and both codes.
 * @param {{people: {peer_id: string, order: number, fp: string, nonce: string}[]}} group
 */
async function expectedForGroup(group) {
  const people = new Map(group.people.map((person) => [person.peer_id, person]));
  const orders = Object.fromEntries(group.people.map((person) => [person.peer_id, person.order]));
  const pairs = [];
  for (const [committerId, responderId] of groupPairs(orders)) {
    const committer = /** @type {{fp: string, nonce: string}} */ (people.get(committerId));
    const responder = /** @type {{fp: string, nonce: string}} */ (people.get(responderId));
    const initiator = await CommitRevealInitiator.create(fromHex(committer.nonce));
    const answerer = new CommitRevealResponder(fromHex(responder.nonce));
    const reveal = await initiator.receive(await answerer.receive(initiator.start()));
    await answerer.receive(reveal);
    pairs.push({
      committer: committerId,
      responder: responderId,
      committer_code: await initiator.sasCode(committer.fp, responder.fp),
      responder_code: await answerer.sasCode(committer.fp, responder.fp),
    });
  }
  return { pairs };
}

/**
 * Play a scripted sequence of calls against one side; record each outcome.
 * @param {{role: string, nonce: string, steps: {call: string, message?: unknown}[]}} scripted
 */
async function runCase(scripted) {
  const nonce = fromHex(scripted.nonce);
  const machine =
    scripted.role === "initiator"
      ? await CommitRevealInitiator.create(nonce)
      : new CommitRevealResponder(nonce);
  /** @type {({out: unknown} | {error: true})[]} */
  const outcomes = [];
  for (const step of scripted.steps) {
    try {
      if (step.call === "start" && machine instanceof CommitRevealInitiator) {
        outcomes.push({ out: machine.start() });
      } else {
        outcomes.push({ out: await machine.receive(step.message) });
      }
    } catch (error) {
      if (!(error instanceof SasProtocolError)) throw error;
      outcomes.push({ error: true });
    }
  }
  return { outcomes, final_state: machine.state };
}

/**
 * @param {string} fingerprint
 * @returns {string | null}
 */
function canonicalOrNull(fingerprint) {
  try {
    return canonicalFingerprint(fingerprint);
  } catch {
    return null;
  }
}

/**
 * JavaScript only: a second reveal that arrives while the first one is still being hashed.
 * @param {{steps: {call: string, message?: unknown}[]}} happyClientCase
 */
async function overlappingReveals(happyClientCase) {
  const [commitStep, revealStep] = happyClientCase.steps;
  const client = new CommitRevealResponder(new Uint8Array(32));
  await client.receive(commitStep.message);
  const settled = await Promise.allSettled([
    client.receive(revealStep.message),
    client.receive(revealStep.message),
  ]);
  return {
    outcomes: settled.map((outcome) =>
      outcome.status === "rejected" && outcome.reason instanceof SasProtocolError
        ? { error: true }
        : { out: outcome.status === "fulfilled" ? outcome.value : String(outcome.reason) },
    ),
    final_state: client.state,
  };
}

const spec = JSON.parse(await readFile(process.argv[2], "utf8"));
/** @type {{id: string, steps: {call: string, message?: unknown}[]}[]} */
const cases = spec.protocol_cases;
const happyClient = cases.find((scripted) => scripted.id === "client: commit, nonce, reveal");
if (happyClient === undefined) throw new Error("the happy client case is missing");
const result = {
  vectors: await Promise.all(spec.vectors.map(expectedForVector)),
  invalid_fingerprints: spec.invalid_fingerprints.map(canonicalOrNull),
  protocol_cases: await Promise.all(spec.protocol_cases.map(runCase)),
  group_vectors: await Promise.all(spec.group_vectors.map(expectedForGroup)),
  overlapping_reveals: await overlappingReveals(happyClient),
};
process.stdout.write(JSON.stringify(result));
