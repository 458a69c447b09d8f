// @ts-check
/**
 * Nonverbal cues in the session page: the client's signal buttons and the therapist's private
 * prompt panel. Prompts are suggestions, shown discreetly; every control is a real button.
 */

/** @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text] */
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** The client's signal buttons: wire value → what the button says. */
export const SIGNALS = /** @type {const} */ ([
  ["need-a-moment", "I need a moment"],
  ["that-landed", "That landed"],
  ["confused", "I'm confused"],
  ["slow-down", "Slow down"],
  ["hard-to-hear-see", "Hard to hear/see"],
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
  section.append(el("h2", { id: "signals-title", class: "visually-hidden" }, "Signals to your therapist"));
  const row = el("div", { class: "signal-row" });
  const status = el("p", { class: "hint", role: "status" });
  for (const [value, label] of SIGNALS) {
    const button = el("button", { type: "button", class: "signal-button", "data-signal": value }, label);
    button.addEventListener("click", () => {
      connection.send({ type: "signal", signal: value });
      status.textContent = `Sent to your therapist: “${label}”.`;
    });
    row.append(button);
  }
  section.append(row, status);
}

/** @param {number} ms */
function clock(ms) {
  const minutes = Math.floor(ms / 60000);
  const seconds = Math.floor((ms % 60000) / 1000);
  return `${minutes}:${String(seconds).padStart(2, "0")}`;
}

/**
 * The therapist's private panel: prompts with their feedback controls, and client signals.
 * @param {SessionConnection} connection
 * @param {HTMLElement} panel
 */
export function mountPromptPanel(connection, panel) {
  const section = el("section", { class: "stack", "aria-labelledby": "prompts-title" });
  section.append(el("h2", { id: "prompts-title" }, "Cues"));
  const log = el("div", { class: "prompt-log", "aria-live": "polite" });
  section.append(log);
  panel.append(section);
  const shownAt = Date.now();

  connection.on("prompt", (msg) => {
    const { id, text, category } = msg.prompt;
    const card = el("article", { class: "prompt-card", "data-category": category });
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
    log.prepend(card);
  });

  connection.on("client-signal", (msg) => {
    const label = SIGNALS.find(([value]) => value === msg.signal)?.[1] ?? msg.signal;
    const item = el("p", { class: "signal-note", "data-signal": msg.signal },
      `${clock(Date.now() - shownAt)} · Client: “${label}”`);
    log.prepend(item);
  });
}
