// @ts-check
/**
 * Outcome measures on the client's visit page (`/visit`): the questionnaires the therapist
 * asks before this session (PHQ-9, GAD-7), one at a time, as radio groups with legends. Any
 * question, or the whole form ("Not now"), can be skipped. Answers go to
 * `POST /api/v1/visit/measures` with an idempotency key kept in this tab until the server
 * confirms, so a retry is stored once. When the server says the answers need help now (the
 * PHQ-9's question about self-harm above "Not at all"), the help text stays on the page; the
 * therapist is told by the server, not by this page.
 *
 * The card shows before the session (device check, consent, waiting room) and folds away
 * while the call is on screen. The same card answers an emailed link between sessions
 * (`/measures`): its `data-api` names the endpoint, `data-between="yes"` the wording.
 * Every message goes through `t()` (the page's language); the questionnaires come from the
 * server in the client's language.
 */

import { t } from "./i18n.js";

/**
 * @typedef {{valueCoding: {code: string, display: string}}} AnswerOption
 * @typedef {{linkId: string, type: string, text?: string, readOnly?: boolean,
 *   answerOption?: Array<AnswerOption>}} QuestionnaireItem
 * @typedef {{measure_id: string, title: string,
 *   questionnaire: {item: Array<QuestionnaireItem>}}} DueMeasure
 */

const card = /** @type {HTMLElement | null} */ (document.getElementById("measures-card"));
const api = card?.dataset.api || "/api/v1/visit/measures";
const between = card?.dataset.between === "yes";
/** Remembered per session (or per emailed link) in this tab (quick exit clears it). */
const prefix = between
  ? "attune.measures.link"
  : `attune.measures.${document.getElementById("visit")?.dataset.sessionId ?? ""}`;
const SKIP_KEY = `${prefix}.not-now`;
const csrfToken =
  document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";

if (card) void start(card);

/** @param {HTMLElement} root */
async function start(root) {
  if (readSession(SKIP_KEY) === "1") return;
  /** @type {Array<DueMeasure>} */
  let due = [];
  try {
    const response = await fetch(api, { credentials: "same-origin" });
    if (!response.ok) return; // nothing to ask (or not allowed from this device)
    due = (await response.json()).due ?? [];
  } catch {
    return;
  }
  if (!due.length) {
    const none = document.getElementById("measures-none");
    if (none) none.hidden = false;
    return;
  }
  const title = /** @type {HTMLElement} */ (root.querySelector("#measures-title"));
  const body = /** @type {HTMLElement} */ (root.querySelector("#measures-body"));
  const help = /** @type {HTMLElement} */ (root.querySelector("#measures-help"));
  const status = /** @type {HTMLElement} */ (root.querySelector("#measures-status"));
  foldDuringCall(root);
  root.hidden = false;

  let index = 0;
  const next = () => {
    if (index >= due.length) {
      body.replaceChildren();
      root.querySelector("#measures-intro")?.setAttribute("hidden", "");
      title.textContent = t("Thank you");
      status.textContent = t("Your answers went to your therapist.");
      return;
    }
    const measure = due[index];
    title.textContent = between
      ? t("A short form: {title}", { title: measure.title })
      : t("Before your session: {title}", { title: measure.title });
    body.replaceChildren(
      form(measure, {
        onSent: (helpText) => {
          if (helpText) showHelp(help, helpText);
          index += 1;
          status.textContent = index < due.length ? t("Saved. One more short questionnaire.") : "";
          next();
          title.focus();
        },
        onNotNow: () => {
          writeSession(SKIP_KEY, "1");
          root.hidden = !help.textContent; // the help text, once shown, stays
          body.replaceChildren();
          title.textContent = t("Questionnaire skipped");
          status.textContent = t("That is fine. You can talk with your therapist instead.");
        },
      }),
    );
  };
  next();
}

/**
 * @param {DueMeasure} measure
 * @param {{onSent: (help: string | null) => void, onNotNow: () => void}} handlers
 */
function form(measure, handlers) {
  const node = document.createElement("form");
  node.className = "measure-form stack";
  node.noValidate = true;
  const items = measure.questionnaire.item ?? [];
  for (const item of items) {
    if (item.type === "display" && item.text) {
      const stem = document.createElement("p");
      stem.className = "lead";
      stem.textContent = item.text;
      node.append(stem);
    }
  }
  let number = 0;
  for (const item of items) {
    if (item.type !== "choice" || !item.answerOption) continue;
    number += 1;
    const group = document.createElement("fieldset");
    group.className = "choice-group measure-item";
    const legend = document.createElement("legend");
    legend.textContent = `${number}. ${item.text ?? ""}`;
    group.append(legend);
    for (const option of item.answerOption) {
      const id = `m-${measure.measure_id}-${item.linkId}-${option.valueCoding.code}`;
      const label = document.createElement("label");
      label.className = "measure-option";
      label.htmlFor = id;
      const input = document.createElement("input");
      input.type = "radio";
      input.id = id;
      input.name = item.linkId;
      input.value = option.valueCoding.code;
      label.append(input, ` ${option.valueCoding.display}`);
      group.append(label);
    }
    node.append(group);
  }
  const error = document.createElement("p");
  error.className = "error";
  error.setAttribute("role", "alert");
  error.hidden = true;
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "primary";
  send.textContent = t("Send to my therapist");
  const notNow = document.createElement("button");
  notNow.type = "button";
  notNow.textContent = t("Not now");
  notNow.addEventListener("click", handlers.onNotNow);
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(send, notNow);
  node.append(error, actions);

  const keyName = `${prefix}.key.${measure.measure_id}`;
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    /** @type {Record<string, string | null>} */
    const answers = {};
    for (const item of items) {
      if (item.type !== "choice") continue;
      const chosen = /** @type {HTMLInputElement | null} */ (
        node.querySelector(`input[name="${CSS.escape(item.linkId)}"]:checked`)
      );
      answers[item.linkId] = chosen ? chosen.value : null;
    }
    const key = readSession(keyName) ?? newKey();
    writeSession(keyName, key);
    send.disabled = true;
    error.hidden = true;
    try {
      const response = await fetch(api, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify({ measure_id: measure.measure_id, answers, idempotency_key: key }),
      });
      const reply = await response.json().catch(() => ({}));
      if (!response.ok) {
        throw new Error(reply.error?.message || t("Your answers could not be sent."));
      }
      removeSession(keyName);
      handlers.onSent(typeof reply.help === "string" ? reply.help : null);
    } catch (problem) {
      error.textContent =
        problem instanceof Error && problem.message
          ? t("{problem} Please try again.", { problem: problem.message })
          : t("Your answers could not be sent. Please try again.");
      error.hidden = false;
      send.disabled = false;
    }
  });
  return node;
}

/**
 * Where to get help right now; it stays on the page.
 * @param {HTMLElement} help
 * @param {string} text
 */
function showHelp(help, text) {
  const heading = document.createElement("h2");
  heading.textContent = t("Help is available now");
  const line = document.createElement("p");
  line.textContent = text;
  const told = document.createElement("p");
  told.textContent = t("Your therapist will see your answers and talk with you about them.");
  help.replaceChildren(heading, line, told);
  help.hidden = false;
}

/**
 * Fold the card away while the call is on screen (it is for before the session).
 * @param {HTMLElement} root
 */
function foldDuringCall(root) {
  const call = document.getElementById("step-call");
  if (!call) return;
  const update = () => root.classList.toggle("is-folded", !call.hidden);
  new MutationObserver(update).observe(call, { attributes: true, attributeFilter: ["hidden"] });
  update();
}

function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `m-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** @param {string} key */
function readSession(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * @param {string} key
 * @param {string} value
 */
function writeSession(key, value) {
  try {
    sessionStorage.setItem(key, value);
  } catch {
    // storage disabled: a retry gets a fresh key
  }
}

/** @param {string} key */
function removeSession(key) {
  try {
    sessionStorage.removeItem(key);
  } catch {
    // ignore
  }
}
