// @ts-check
/**
 * Shared goals during the call, on both call pages (`#goals`): the list comes from the server
 * (`goals`, after joining and after every change by either person), so both screens always
 * show the same goals; changes go out as `goal-add`, `goal-edit` and `goal-status`. Built with
 * textContent only; every control is a labelled button or input; changes by the other person
 * are announced in a polite live region. Every message goes through `t()`: the client's call
 * page is in their language; the therapist's page has no catalogue and stays English.
 */

import { t } from "./i18n.js";

/** @typedef {import("./protocol.js").SessionConnection} SessionConnection */
/** @typedef {import("./protocol_types.js").GoalsMessage["goals"][number]} SharedGoal */

const MAX_GOAL_CHARS = 200;
/** @returns {Record<string, string>} */
const statusWords = () => ({ active: "", reached: t("Reached"), dropped: t("Set aside") });

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {string} [text]
 */
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * @param {SessionConnection} connection
 * @param {HTMLElement} section  the `#goals` section (goals_section.html)
 * @param {"therapist" | "client"} role  whose page this is
 */
export function mountGoals(connection, section, role) {
  const list = /** @type {HTMLUListElement} */ (section.querySelector("#goals-list"));
  const empty = /** @type {HTMLElement} */ (section.querySelector("#goals-empty"));
  const form = /** @type {HTMLFormElement} */ (section.querySelector("#goal-form"));
  const input = /** @type {HTMLInputElement} */ (section.querySelector("#goal-input"));
  const status = /** @type {HTMLElement} */ (section.querySelector("#goals-status"));
  /** What the other person did, said from this page's side (whole sentences translate). */
  const said = role === "therapist"
    ? {
        added: (/** @type {string} */ text) => t("The client added a goal: {text}", { text }),
        changed: (/** @type {string} */ text) => t("The client changed a goal to: {text}", { text }),
        active: (/** @type {string} */ text) => t("The client made a goal active again: {text}", { text }),
        reached: (/** @type {string} */ text) => t("The client marked a goal reached: {text}", { text }),
        dropped: (/** @type {string} */ text) => t("The client set a goal aside: {text}", { text }),
      }
    : {
        added: (/** @type {string} */ text) => t("Your therapist added a goal: {text}", { text }),
        changed: (/** @type {string} */ text) => t("Your therapist changed a goal to: {text}", { text }),
        active: (/** @type {string} */ text) => t("Your therapist made a goal active again: {text}", { text }),
        reached: (/** @type {string} */ text) => t("Your therapist marked a goal reached: {text}", { text }),
        dropped: (/** @type {string} */ text) => t("Your therapist set a goal aside: {text}", { text }),
      };
  input.maxLength = MAX_GOAL_CHARS;
  /** @type {SharedGoal[]} */
  let goals = [];
  let counter = 0;
  /** @type {string | null} the goal being reworded here, kept open across updates */
  let editing = null;

  /** @param {import("./protocol_types.js").ClientMessage} message */
  const send = (message) => {
    const sent = connection.send({ ...message, id: `goal-${++counter}` });
    if (!sent) status.textContent = t("Not connected right now; try again in a moment.");
    return sent;
  };

  /** @param {SharedGoal} goal */
  const row = (goal) => {
    const item = el("li", { class: `goal goal-${goal.status}`, "data-goal-id": goal.id });
    if (editing === goal.id) {
      const edit = el("form", { class: "goal-edit" });
      const id = `goal-edit-${goal.id}`;
      const field = /** @type {HTMLInputElement} */ (el("input", { id, type: "text", maxlength: String(MAX_GOAL_CHARS), autocomplete: "off" }));
      field.value = goal.text;
      const save = el("button", { type: "submit" }, t("Save"));
      const cancel = el("button", { type: "button", class: "link-button" }, t("Cancel"));
      cancel.addEventListener("click", () => {
        editing = null;
        render();
      });
      edit.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = field.value.trim();
        if (!text) return;
        if (send({ type: "goal-edit", goal_id: goal.id, text })) {
          editing = null;
          render();
        }
      });
      edit.append(el("label", { for: id, class: "visually-hidden" }, t("Goal")), field, save, cancel);
      item.append(edit);
      queueMicrotask(() => field.focus());
      return item;
    }
    const words = el("span", { class: "goal-text" }, goal.text);
    item.append(words);
    if (goal.status !== "active") item.append(" ", el("span", { class: "goal-badge" }, statusWords()[goal.status]));
    const actions = el("span", { class: "goal-actions" });
    /** @param {string} label @param {string} aria  the action with the goal's words @param {() => void} fn */
    const button = (label, aria, fn) => {
      const b = el("button", { type: "button", class: "small", "aria-label": aria }, label);
      b.addEventListener("click", fn);
      actions.append(b);
    };
    if (goal.status === "active") {
      const text = goal.text;
      button(t("Edit"), t("Edit goal: {text}", { text }), () => {
        editing = goal.id;
        render();
      });
      button(t("Reached"), t("Mark reached: {text}", { text }), () => send({ type: "goal-status", goal_id: goal.id, status: "reached" }));
      button(t("Set aside"), t("Set aside: {text}", { text }), () => send({ type: "goal-status", goal_id: goal.id, status: "dropped" }));
    } else {
      button(t("Make active"), t("Make active again: {text}", { text: goal.text }), () => send({ type: "goal-status", goal_id: goal.id, status: "active" }));
    }
    item.append(actions);
    return item;
  };

  const render = () => {
    const ordered = [...goals.filter((g) => g.status === "active"), ...goals.filter((g) => g.status !== "active")];
    list.replaceChildren(...ordered.map(row));
    empty.hidden = goals.length > 0;
  };

  /** @param {SharedGoal[]} before @param {SharedGoal[]} after */
  const describeChange = (before, after) => {
    const old = new Map(before.map((g) => [g.id, g]));
    for (const goal of after) {
      const was = old.get(goal.id);
      if (goal.updated_by === role) continue;
      if (!was) return said.added(goal.text);
      if (was.text !== goal.text) return said.changed(goal.text);
      if (was.status !== goal.status) {
        if (goal.status === "active") return said.active(goal.text);
        return goal.status === "reached" ? said.reached(goal.text) : said.dropped(goal.text);
      }
    }
    return "";
  };

  let first = true;
  connection.on("goals", (message) => {
    const next = [...message.goals];
    const news = first ? "" : describeChange(goals, next);
    first = false;
    goals = next;
    if (editing && !goals.some((g) => g.id === editing && g.status === "active")) editing = null;
    render();
    if (news) status.textContent = news;
  });
  connection.on("error", (error) => {
    if (!error.ref?.startsWith("goal-")) return;
    status.textContent = error.code === "rate-limited"
      ? t("Too many changes at once; wait a moment and try again.")
      : error.code === "not-admitted"
        ? t("Goals can be changed once you are in the call.")
        : t("That change could not be saved. A goal has at most 200 characters, and at most 5 are active at once.");
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      status.textContent = t("Write a few words for the goal first.");
      return;
    }
    if (goals.filter((g) => g.status === "active").length >= 5) {
      status.textContent = t("There are already 5 active goals; mark one reached or set one aside first.");
      return;
    }
    if (send({ type: "goal-add", text })) {
      input.value = "";
      status.textContent = "";
    }
  });
  render();
}
