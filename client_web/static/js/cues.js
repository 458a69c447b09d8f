// @ts-check
/**
 * Nonverbal cues in the session page: the client's signal buttons and the therapist's private
 * prompt panel. Prompts are suggestions, shown discreetly; every control is a real button.
 */
import { t } from "./i18n.js";
import { formatLocal } from "./localtime.js";

/** @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text] */
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The client's signal buttons: wire value → what the button says. */
export const SIGNALS = /** @type {const} */ ([
  ["need-a-moment", t("I need a moment")],
  ["that-landed", t("That landed")],
  ["confused", t("I'm confused")],
  ["slow-down", t("Slow down")],
  ["hard-to-hear-see", t("Hard to hear/see")],
]);

/** @typedef {import("./protocol.js").SessionConnection} SessionConnection */

/**
 * Signal buttons for the client: one press sends a discreet signal to the therapist only.
 * @param {SessionConnection} connection
 * @param {HTMLElement} section
 */
export function mountSignalButtons(connection, section) {
  section.replaceChildren();
  section.setAttribute("aria-labelledby", "signals-title");
  section.append(el("h2", { id: "signals-title", class: "visually-hidden" }, t("Signals to your therapist")));
  const row = el("div", { class: "signal-row" });
  const status = el("p", { class: "hint", role: "status" });
  for (const [value, label] of SIGNALS) {
    const button = el("button", { type: "button", class: "signal-button", "data-signal": value }, label);
    button.addEventListener("click", () => {
      connection.send({ type: "signal", signal: value });
      status.textContent = t("Sent to your therapist: “{signal}”.", { signal: label });
    });
    row.append(button);
  }
  section.append(row, status);
}

/** @typedef {import("./protocol_types.js").PromptMessage["prompt"]} Prompt */

/**
 * One prompt with its feedback controls; in a session with several clients, whom it is about.
 * @param {SessionConnection} connection
 * @param {Prompt} prompt
 * @param {Map<string, string>} [labels] peer id → the name the roster shows
 */
function promptCard(connection, prompt, labels = new Map()) {
  const { id, text, category } = prompt;
  const card = el("article", { class: "prompt-card", "data-category": category });
  if (prompt.peers?.length) {
    const names = prompt.peers.map((peer) => labels.get(peer) ?? "a client");
    card.append(el("p", { class: "prompt-about" }, `About: ${names.join(" and ")}`));
  }
  card.append(el("p", {}, text));
  const actions = el("div", { class: "prompt-actions" });
  /** @type {[string, import("./protocol_types.js").PromptFeedbackMessage["feedback"], {minutes?: number}][]} */
  const choices = [
    ["Helpful", "helpful", {}],
    ["Not now", "not-now", {}],
    ["Snooze 10 min", "snooze-category", { minutes: 10 }],
    ["Mute this kind", "mute-category", {}],
  ];
  for (const [label, feedback, extra] of choices) {
    const button = el("button", { type: "button", class: "small" }, label);
    button.addEventListener("click", () => {
      connection.send({ type: "prompt-feedback", prompt_id: id, feedback, ...extra });
      actions.replaceChildren(el("span", { class: "hint" }, `Noted: ${label.toLowerCase()}.`));
    });
    actions.append(button);
  }
  card.append(actions);
  return card;
}

/** @param {string} signal */
function signalLabel(signal) {
  return SIGNALS.find(([value]) => value === signal)?.[1] ?? signal;
}

/**
 * A client's signal, with the local time it was shown.
 * @param {string} signal
 * @param {number} atMs
 */
function signalNote(signal, atMs) {
  return el("p", { class: "signal-note", "data-signal": signal },
    `${formatLocal(new Date(atMs), "time")} · Client: “${signalLabel(signal)}”`);
}

/**
 * The therapist's private panel: prompts with their feedback controls, and client signals;
 * `panel-state` rebuilds both (after a reload), newest first.
 * @param {SessionConnection} connection
 * @param {HTMLElement} panel
 * @param {(text: string, options?: {urgent?: boolean, item?: Element | null}) => void} [notify]
 */
export function mountPromptPanel(connection, panel, notify = () => {}) {
  const section = el("section", { class: "stack", "aria-labelledby": "prompts-title" });
  section.append(el("h2", { id: "prompts-title" }, "Cues and signals"));
  const log = el("div", { class: "prompt-log", "aria-live": "polite" });
  section.append(log);
  // signals and prompts above the check-ins: they are about this very moment
  panel.prepend(section);

  /** @type {Map<string, string>} who is who in the room (labels of the prompts' `peers`) */
  const labels = new Map();
  connection.on("roster", (msg) => {
    for (const person of msg.people) labels.set(person.peer_id, person.label);
  });

  connection.on("prompt", (msg) => {
    const card = promptCard(connection, msg.prompt, labels);
    log.prepend(card);
    notify(`Cue: ${msg.prompt.text}`, { item: card });
  });

  connection.on("client-signal", (msg) => {
    const item = signalNote(msg.signal, Date.now());
    log.prepend(item);
    notify(`Client: “${signalLabel(msg.signal)}”`, { urgent: msg.signal === "need-a-moment", item });
  });

  connection.on("panel-state", (msg) => {
    /** @type {Array<[number, Element]>} */
    const items = [
      ...msg.prompts.map((prompt) => /** @type {[number, Element]} */ ([prompt.t_ms, promptCard(connection, prompt, labels)])),
      ...msg.signals.map((s) => /** @type {[number, Element]} */ ([s.at_ms, signalNote(s.signal, s.at_ms)])),
    ];
    // prompts carry session time and signals wall-clock time: keep each kind's own order
    log.replaceChildren(...items.map(([, node]) => node).reverse());
  });
}
