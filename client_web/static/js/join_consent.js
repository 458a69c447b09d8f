// @ts-check
/**
 * The visit page's third step: consent (`#step-consent`). The notices come from
 * `GET /api/v1/visit/consents` as blocks rendered on the server (server/web/notice_blocks.py);
 * this module places their text and never reads Markdown. Skipped when the choices are settled.
 */

import { byId } from "./callview.js";
import { t } from "./i18n.js";

/**
 * A notice block rendered on the server: text, never Markdown or HTML.
 * @typedef {{kind: "heading" | "paragraph", text: string} | {kind: "list", items: string[]}} NoticeBlock
 */

/**
 * @typedef {object} ConsentItem
 * @property {string} purpose
 * @property {boolean} required
 * @property {string} state
 * @property {{version: number, language: string, title: string, blocks: NoticeBlock[]}} notice
 *   the notice in the page's language (or English, when it has no translation of this version)
 */

/**
 * @param {object} options
 * @param {() => void} options.show  show this step
 * @param {string} options.csrfToken
 * @param {() => void} options.onAgreed  telehealth is granted and nothing needs reconsent
 * @param {() => void} options.onLinkGone  the link stopped working
 */
export function mountConsentStep({ show, csrfToken, onAgreed, onLinkGone }) {
  const el = {
    form: /** @type {HTMLFormElement} */ (byId("consent-form")),
    parts: byId("consent-parts"),
    error: byId("consent-error"),
  };
  /** @type {ConsentItem[]} */
  let items = [];

  async function start() {
    try {
      const response = await fetch("/api/v1/visit/consents", { credentials: "same-origin" });
      if (response.status === 401) {
        onLinkGone();
        return;
      }
      if (!response.ok) throw new Error(`consents: ${response.status}`);
      items = (await response.json()).items ?? [];
    } catch {
      items = [];
    }
    const settled =
      items.length > 0 &&
      items.every((item) => item.state !== "needs_reconsent") &&
      items.some((item) => item.purpose === "telehealth" && item.state === "granted");
    if (settled) {
      onAgreed();
      return;
    }
    render();
    show();
  }

  function render() {
    if (items.length === 0) {
      const failed = document.createElement("p");
      failed.className = "error";
      failed.textContent = t("The consent text could not be loaded. Please reload the page.");
      el.parts.replaceChildren(failed);
      return;
    }
    el.parts.replaceChildren(...items.map(consentPart));
  }

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    void save();
  });

  async function save() {
    el.error.hidden = true;
    const form = el.form;
    const wanted = new Set(
      items
        .filter((item) => {
          const box = form.elements.namedItem(item.purpose);
          return box instanceof HTMLInputElement && box.checked;
        })
        .map((item) => item.purpose),
    );
    if (!wanted.has("telehealth")) {
      showError(t("To meet by video, please tick the telehealth consent. The other parts are optional."));
      return;
    }
    try {
      for (const item of items) {
        const want = wanted.has(item.purpose);
        const granted = item.state === "granted";
        if (want === granted) continue;
        if (!want && item.state === "never_asked") continue;
        const response = await fetch("/api/v1/visit/consents", {
          method: "POST",
          credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
          body: JSON.stringify({
            purpose: item.purpose,
            decision: want ? "granted" : "withdrawn",
            notice_version: item.notice.version,
            notice_language: item.notice.language,
          }),
        });
        if (response.status === 403) {
          // e.g. this device waits as "another device": the server says what to do
          showError(await refusalText(response));
          return;
        }
        if (!response.ok) throw new Error(`consent: ${response.status}`);
        item.state = want ? "granted" : "withdrawn";
      }
    } catch {
      showError(t("Your choices could not be saved. Please try again."));
      return;
    }
    onAgreed();
  }

  /** @param {string} text */
  function showError(text) {
    el.error.textContent = text;
    el.error.hidden = false;
  }

  return { start };
}

/**
 * The server's words for a refusal, or a general sentence.
 * @param {Response} response
 * @returns {Promise<string>}
 */
async function refusalText(response) {
  try {
    const body = /** @type {{error?: {message?: unknown}}} */ (await response.json());
    if (typeof body.error?.message === "string") return body.error.message;
  } catch {
    // not JSON: fall through
  }
  return t("Your choices could not be saved from this device.");
}

/**
 * One purpose: its title, the full notice behind a disclosure, and its checkbox.
 * @param {ConsentItem} item
 */
function consentPart(item) {
  const fieldset = document.createElement("fieldset");
  fieldset.className = "consent-part";
  const legend = document.createElement("legend");
  legend.textContent = item.notice.title;
  const hint = document.createElement("span");
  hint.className = "hint";
  hint.textContent = " " + (item.required ? t("(needed for video)") : t("(optional)"));
  legend.append(hint);
  fieldset.append(legend);
  if (item.state === "needs_reconsent") {
    const changed = document.createElement("p");
    changed.className = "notice";
    changed.textContent = t("This text has changed since you last agreed. Please read it again.");
    fieldset.append(changed);
  }
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = t("Read the full text");
  details.append(summary, ...item.notice.blocks.map(noticeBlock));
  fieldset.append(details);

  const row = document.createElement("div");
  row.className = "check-row";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `join-consent-${item.purpose}`;
  box.name = item.purpose;
  box.checked = item.state === "granted"; // optional purposes start unticked unless granted
  const label = document.createElement("label");
  label.htmlFor = box.id;
  label.textContent = item.required
    ? t("I agree to the telehealth consent: {title}", { title: item.notice.title })
    : t("Yes, I agree: {title}", { title: item.notice.title });
  row.append(box, label);
  fieldset.append(row);
  return fieldset;
}

/**
 * One notice block as an element; its text is placed as text.
 * @param {NoticeBlock} block
 * @returns {HTMLElement}
 */
function noticeBlock(block) {
  if (block.kind === "list") {
    const list = document.createElement("ul");
    for (const text of block.items) {
      const item = document.createElement("li");
      item.textContent = text;
      list.append(item);
    }
    return list;
  }
  const element = document.createElement(block.kind === "heading" ? "h3" : "p");
  element.textContent = block.text;
  return element;
}
