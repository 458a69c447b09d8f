// @ts-check
/**
 * Shared goals during the call, on both call pages (`#goals`): the list comes from the server
 * (`goals`, after joining and after every change by either person), so both screens always
 * show the same goals; changes go out as `goal-add`, `goal-edit` and `goal-status`. Built with
 * textContent only; every control is a labelled button or input; changes by the other person
 * are announced in a polite live region.
 */

/** @typedef {import("./protocol.js").SessionConnection} SessionConnection */
/** @typedef {import("./protocol_types.js").GoalsMessage["goals"][number]} SharedGoal */

const MAX_GOAL_CHARS = 200;
const STATUS_WORDS = { active: "", reached: "Reached", dropped: "Set aside" };

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
  const other = role === "therapist" ? "The client" : "Your therapist";
  input.maxLength = MAX_GOAL_CHARS;
  /** @type {SharedGoal[]} */
  let goals = [];
  let counter = 0;
  /** @type {string | null} the goal being reworded here, kept open across updates */
  let editing = null;

  /** @param {import("./protocol_types.js").ClientMessage} message */
  const send = (message) => {
    const sent = connection.send({ ...message, id: `goal-${++counter}` });
    if (!sent) status.textContent = "Not connected right now; try again in a moment.";
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
      const save = el("button", { type: "submit" }, "Save");
      const cancel = el("button", { type: "button", class: "link-button" }, "Cancel");
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
      edit.append(el("label", { for: id, class: "visually-hidden" }, "Goal"), field, save, cancel);
      item.append(edit);
      queueMicrotask(() => field.focus());
      return item;
    }
    const words = el("span", { class: "goal-text" }, goal.text);
    item.append(words);
    if (goal.status !== "active") item.append(" ", el("span", { class: "goal-badge" }, STATUS_WORDS[goal.status]));
    const actions = el("span", { class: "goal-actions" });
    /** @param {string} label @param {string} aria @param {() => void} fn */
    const button = (label, aria, fn) => {
      const b = el("button", { type: "button", class: "small", "aria-label": `${aria}: ${goal.text}` }, label);
      b.addEventListener("click", fn);
      actions.append(b);
    };
    if (goal.status === "active") {
      button("Edit", "Edit goal", () => {
        editing = goal.id;
        render();
      });
      button("Reached", "Mark reached", () => send({ type: "goal-status", goal_id: goal.id, status: "reached" }));
      button("Set aside", "Set aside", () => send({ type: "goal-status", goal_id: goal.id, status: "dropped" }));
    } else {
      button("Make active", "Make active again", () => send({ type: "goal-status", goal_id: goal.id, status: "active" }));
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
      if (!was) return `${other} added a goal: ${goal.text}`;
      if (was.text !== goal.text) return `${other} changed a goal to: ${goal.text}`;
      if (was.status !== goal.status) {
        return goal.status === "active"
          ? `${other} made a goal active again: ${goal.text}`
          : `${other} marked a goal ${goal.status === "reached" ? "reached" : "set aside"}: ${goal.text}`;
      }
    }
    return "";
  };

  let first = true;
  connection.on("goals", (message) => {
    const next = [...message.goals];
    const said = first ? "" : describeChange(goals, next);
    first = false;
    goals = next;
    if (editing && !goals.some((g) => g.id === editing && g.status === "active")) editing = null;
    render();
    if (said) status.textContent = said;
  });
  connection.on("error", (error) => {
    if (!error.ref?.startsWith("goal-")) return;
    status.textContent = error.code === "rate-limited"
      ? "Too many changes at once; wait a moment and try again."
      : error.code === "not-admitted"
        ? "Goals can be changed once you are in the call."
        : "That change could not be saved. A goal has at most 200 characters, and at most 5 are active at once.";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) {
      status.textContent = "Write a few words for the goal first.";
      return;
    }
    if (goals.filter((g) => g.status === "active").length >= 5) {
      status.textContent = "There are already 5 active goals; mark one reached or set one aside first.";
      return;
    }
    if (send({ type: "goal-add", text })) {
      input.value = "";
      status.textContent = "";
    }
  });
  render();
}
