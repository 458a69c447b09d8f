// @ts-check
/**
 * Check-in forms for the client and the therapist's private check-in panel.
 * Forms are built from the FHIR Questionnaire the server sends; no innerHTML anywhere.
 */

import { pageLanguage, t } from "./i18n.js";

const EXT = "https://attune.example/fhir/StructureDefinition/";
/** How long "Thank you" stays before the check-in area empties again. */
const THANKS_SHOWN_MS = 4000;
const FHIR_EXT = "http://hl7.org/fhir/StructureDefinition/";
/** FHIR's extension for a primitive's text in another language (sub-extensions lang, content). */
const TRANSLATION = `${FHIR_EXT}translation`;

/**
 * @typedef {{extension?: Extension[]}} PrimitiveExtras  a primitive's `_name` element
 * @typedef {{url: string, valueString?: string, valueInteger?: number, valueCode?: string,
 *   valueCodeableConcept?: {coding: {code: string}[]}, extension?: Extension[],
 *   _valueString?: PrimitiveExtras}} Extension
 * @typedef {{linkId: string, text: string, _text?: PrimitiveExtras, type: string,
 *   extension?: Extension[], maxLength?: number,
 *   answerOption?: {valueCoding: {code: string, display: string, _display?: PrimitiveExtras}}[],
 *   enableWhen?: {question: string, operator: string, answerCoding?: {code: string}}[]}} Item
 * @typedef {{id: string, title: string, _title?: PrimitiveExtras, language?: string,
 *   extension?: Extension[], item: Item[]}} Questionnaire
 * @typedef {Record<string, number | string | null>} Answers
 */

/** @param {Extension[] | undefined} list @param {string} url */
function ext(list, url) {
  return (list ?? []).find((e) => e.url === url);
}

/**
 * A primitive's translation into `language` (FHIR `translation` extension), or null.
 * @param {PrimitiveExtras | undefined} extras  the primitive's `_name` element
 * @param {string} language
 */
function translation(extras, language) {
  for (const entry of extras?.extension ?? []) {
    if (entry.url !== TRANSLATION) continue;
    if (ext(entry.extension, "lang")?.valueCode !== language) continue;
    const content = ext(entry.extension, "content")?.valueString;
    if (content) return content;
  }
  return null;
}

/**
 * The language a questionnaire is shown in: the page's, when the questionnaire carries a
 * translation of its title into it (a translated instrument translates every text), else the
 * questionnaire's own language. The answers say which it was, so the record keeps the wording
 * shown.
 * @param {Questionnaire} questionnaire
 */
export function questionnaireLanguage(questionnaire) {
  const own = questionnaire.language ?? "en";
  const page = pageLanguage();
  return page && page !== own && translation(questionnaire._title, page) ? page : own;
}

/**
 * A text of the questionnaire in the language it is shown in (the text itself without a
 * translation).
 * @param {string} text
 * @param {PrimitiveExtras | undefined} extras  the text's `_name` element
 * @param {string} language
 */
function inLanguage(text, extras, language) {
  return translation(extras, language) ?? text;
}

/**
 * An extension's string value in the language shown.
 * @param {Extension | undefined} extension
 * @param {string} language
 */
function extText(extension, language) {
  const value = extension?.valueString;
  return value === undefined ? undefined : inLanguage(value, extension?._valueString, language);
}

/** @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text] */
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A fresh idempotency key (letters, digits, - and _). */
export function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Render a check-in form into `container`.
 * @param {HTMLElement} container
 * @param {Questionnaire} questionnaire
 * @param {{storing: boolean, onSubmit: (answers: Answers) => void}} options
 */
export function renderCheckinForm(container, questionnaire, options) {
  container.replaceChildren();
  const language = questionnaireLanguage(questionnaire);
  const formId = `checkin-${questionnaire.id}`;
  const form = el("form", { class: "checkin-form stack", id: formId, "aria-labelledby": `${formId}-title` });
  if (language !== pageLanguage()) form.setAttribute("lang", language);
  form.append(el("h2", { id: `${formId}-title` }, inLanguage(questionnaire.title, questionnaire._title, language)));
  const isPulse = questionnaire.item.length === 1
    && ext(questionnaire.item[0].extension, `${FHIR_EXT}questionnaire-itemControl`)?.valueCodeableConcept?.coding[0]?.code === "radio-button"
    && questionnaire.item[0].type === "integer";
  // The words around the questions; for the one-tap pulse they fold away under the question,
  // so the question is what a phone shows first.
  const about = isPulse ? el("details", { class: "checkin-about" }) : form;
  if (isPulse) about.append(el("summary", {}, t("About your answer")));
  const intro = extText(ext(questionnaire.extension, `${EXT}intro`), language);
  if (intro) about.append(el("p", {}, intro));
  const note = extText(ext(questionnaire.extension, `${EXT}client-note`), language);
  if (note) about.append(el("p", { class: "hint" }, note));
  about.append(el("p", { class: "hint" }, options.storing
    ? t("Your answers are kept, encrypted, for your therapist.")
    : t("Your answers are shown to your therapist during this session only and are not kept afterwards.")));

  /** @type {Answers} */
  const answers = {};
  /** @type {Map<string, HTMLElement>} */
  const blocks = new Map();

  const refreshEnabled = () => {
    for (const item of questionnaire.item) {
      if (!item.enableWhen) continue;
      const shown = item.enableWhen.some((cond) => answers[cond.question] === cond.answerCoding?.code);
      const block = blocks.get(item.linkId);
      if (block) block.hidden = !shown;
      if (!shown) answers[item.linkId] = null;
    }
  };

  for (const item of questionnaire.item) {
    const block = itemBlock(item, answers, refreshEnabled, isPulse ? () => options.onSubmit({ ...answers }) : null, language);
    blocks.set(item.linkId, block);
    form.append(block);
  }
  refreshEnabled();

  if (!isPulse) {
    const actions = el("div", { class: "checkin-actions" });
    const send = el("button", { type: "submit", class: "primary" }, t("Send to my therapist"));
    const skip = el("button", { type: "button" }, t("Skip this check-in"));
    skip.addEventListener("click", () => {
      /** @type {Answers} */
      const skipped = {};
      for (const item of questionnaire.item) skipped[item.linkId] = null;
      options.onSubmit(skipped);
    });
    actions.append(send, skip);
    form.append(actions);
  } else {
    const skip = el("button", { type: "button" }, t("Skip"));
    skip.addEventListener("click", () => options.onSubmit({ [questionnaire.item[0].linkId]: null }));
    form.append(skip, about);
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    options.onSubmit({ ...answers });
  });
  container.append(form);
  const first = form.querySelector("input, textarea, button");
  if (first instanceof HTMLElement) first.focus();
}

/**
 * @param {Item} item @param {Answers} answers @param {() => void} changed
 * @param {(() => void) | null} submitOnTap
 * @param {string} language  the language the questionnaire is shown in
 */
function itemBlock(item, answers, changed, submitOnTap, language) {
  const id = `q-${item.linkId}`;
  const text = inLanguage(item.text, item._text, language);
  answers[item.linkId] = null;
  if (item.type === "integer") {
    const min = ext(item.extension, `${FHIR_EXT}minValue`)?.valueInteger ?? 0;
    const max = ext(item.extension, `${FHIR_EXT}maxValue`)?.valueInteger ?? 10;
    const low = extText(ext(item.extension, `${EXT}anchor-low`), language) ?? String(min);
    const high = extText(ext(item.extension, `${EXT}anchor-high`), language) ?? String(max);
    if (submitOnTap) {
      const group = el("fieldset", { class: "pulse-group" });
      group.append(el("legend", {}, text));
      const row = el("div", { class: "pulse-row" });
      for (let value = min; value <= max; value++) {
        const anchor = value === min ? low : value === max ? high : "";
        const button = el("button", { type: "button", class: "pulse-button" });
        button.append(el("span", { class: "pulse-number" }, String(value)));
        if (anchor) {
          // the name comes from what the button shows ("1 – Not well"): no aria-label that
          // could drift from the visible words (WCAG 2.5.3)
          button.append(el("span", { class: "visually-hidden" }, " – "), el("span", { class: "pulse-anchor" }, anchor));
        }
        button.addEventListener("click", () => {
          answers[item.linkId] = value;
          submitOnTap();
        });
        row.append(button);
      }
      group.append(row);
      return group;
    }
    const block = el("div", { class: "slider-item" });
    const label = el("label", { for: id }, text);
    const anchors = el("div", { class: "anchors", id: `${id}-anchors` });
    anchors.append(el("span", {}, `${min}: ${low}`), el("span", {}, `${max}: ${high}`));
    const input = /** @type {HTMLInputElement} */ (el("input", {
      type: "range", id, min: String(min), max: String(max), step: "1",
      value: String(Math.round((min + max) / 2)), "aria-describedby": `${id}-anchors ${id}-value`,
    }));
    const output = el("output", { id: `${id}-value`, for: id, class: "slider-value" }, t("Not answered yet"));
    const update = () => {
      answers[item.linkId] = Number(input.value);
      output.textContent = t("Your answer: {value}", { value: input.value });
      input.setAttribute("aria-valuetext", t("{value} of {max}", { value: input.value, max }));
    };
    input.addEventListener("input", update);
    input.addEventListener("change", update);
    const clear = el("button", { type: "button", class: "link-button" }, t("Skip this question"));
    clear.addEventListener("click", () => {
      answers[item.linkId] = null;
      output.textContent = t("Skipped");
    });
    block.append(label, input, anchors, output, clear);
    return block;
  }
  if (item.type === "choice") {
    const group = el("fieldset", { class: "choice-group" });
    group.append(el("legend", {}, text));
    for (const option of item.answerOption ?? []) {
      const optionId = `${id}-${option.valueCoding.code}`;
      const row = el("div", { class: "check-row" });
      const radio = /** @type {HTMLInputElement} */ (el("input", { type: "radio", name: id, id: optionId, value: option.valueCoding.code }));
      radio.addEventListener("change", () => {
        answers[item.linkId] = option.valueCoding.code;
        changed();
      });
      const display = inLanguage(option.valueCoding.display, option.valueCoding._display, language);
      row.append(radio, el("label", { for: optionId }, display));
      group.append(row);
    }
    return group;
  }
  const block = el("div", { class: "stack" });
  const area = /** @type {HTMLTextAreaElement} */ (el("textarea", { id, rows: "4", maxlength: String(item.maxLength ?? 2000) }));
  area.addEventListener("input", () => {
    answers[item.linkId] = area.value.trim() ? area.value : null;
  });
  block.append(el("label", { for: id }, t("{question} (optional)", { question: text })), area);
  return block;
}

/** @typedef {import("./protocol.js").SessionConnection} SessionConnection */

/**
 * The client's side: open forms when the server says so, send answers reliably.
 * @param {SessionConnection} connection
 * @param {HTMLElement} area
 * @param {{storing: () => boolean, handles?: (kind: string) => boolean}} options
 */
export function mountClientCheckins(connection, area, options) {
  connection.on("checkin-open", (msg) => {
    if (options.handles && !options.handles(msg.kind)) return;
    if (!msg.questionnaire) return;
    // The protocol carries the FHIR Questionnaire as an opaque object (server/core/checkins/
    // fhir.py builds it); its shape is the Questionnaire typedef above.
    const questionnaire = /** @type {Questionnaire} */ (/** @type {unknown} */ (msg.questionnaire));
    const language = questionnaireLanguage(questionnaire);
    renderCheckinForm(area, questionnaire, {
      storing: options.storing(),
      onSubmit: (answers) => {
        const key = newIdempotencyKey();
        area.replaceChildren(el("p", { role: "status" }, t("Sending…")));
        connection.sendReliable({ type: "checkin-answer", instrument_id: msg.instrument_id, answers, idempotency_key: key, language })
          .then(() => {
            area.replaceChildren(el("p", { role: "status" }, afterSending(answers)));
            // the thank-you folds away by itself, so the sheet never stays over the call
            setTimeout(() => {
              if (area.querySelector("form") === null) area.replaceChildren();
            }, THANKS_SHOWN_MS);
          });
      },
    });
  });
}

/**
 * What the client is told once the server has the answers: a skip is not called an answer.
 * @param {Answers} answers
 */
function afterSending(answers) {
  return Object.values(answers).every((value) => value === null)
    ? t("Skipped — that is fine. Your therapist only sees that this check-in was skipped.")
    : t("Thank you. Your answers reached your therapist.");
}

/** @param {{scores: Record<string, any>, kind: string}} result */
function headline(result) {
  const s = result.scores;
  if (s.alliance_total !== null && s.alliance_total !== undefined) return `Alliance ${s.alliance_total}/${s.alliance_max}`;
  if (s.wellbeing_total !== null && s.wellbeing_total !== undefined) return `Wellbeing ${s.wellbeing_total}/${s.wellbeing_max}`;
  if (s.pulse !== null && s.pulse !== undefined) return `Pulse ${s.pulse}/5`;
  return "Skipped";
}

/**
 * Render one check-in result (scores and alerts) for the therapist.
 * @param {PanelResult} result
 */
export function resultCard(result) {
  const card = el("article", { class: `checkin-result severity-${result.alerts.length ? "attention" : "none"}` });
  card.append(el("h3", {}, `${kindName(result.kind)} check-in: ${headline(result)}`));
  /** @type {{answers: {label: string, text: string}[], skipped: string[], rupture: string | null, repair: string | null} | null} */
  const words = result.scores.readable ?? null;
  /** @type {[string, string][]} */
  const values = words
    ? words.answers.map((a) => [a.label, a.text])
    : Object.entries(result.scores.values ?? {}).map(([name, value]) => [name, String(value)]);
  if (words?.rupture) values.push(["Uneasy moment", words.repair ? `${words.rupture} (talked through: ${words.repair})` : words.rupture]);
  if (values.length) {
    const list = el("dl", { class: "facts" });
    for (const [name, value] of values) list.append(el("dt", {}, name), el("dd", {}, value));
    card.append(list);
  }
  if (typeof result.scores.free_text === "string" && result.scores.free_text) card.append(el("blockquote", {}, result.scores.free_text));
  const skipped = words ? words.skipped : (result.scores.skipped ?? []);
  if (skipped.length) card.append(el("p", { class: "hint" }, `Skipped: ${skipped.join(", ")}`));
  for (const alert of result.alerts) {
    const box = el("div", { class: "alert", role: "note" });
    box.append(el("p", {}, alert.reason), el("p", { class: "repair" }, `Try: ${alert.repair}`));
    card.append(box);
  }
  return card;
}

/**
 * @typedef {{kind: string, instrument_id: string, scores: Record<string, any>,
 *   alerts: {reason: string, repair: string, severity: string}[], client_id?: string,
 *   label?: string}} PanelResult
 */

/**
 * The therapist's private panel: results as they arrive and a one-click pulse; `panel-state`
 * rebuilds the results so far (after a reload), newest first. With several clients (a couple,
 * a family) each client's results stand in a column of their own under their name, side by
 * side where there is room, and a split alliance (`alliance-split`) is shown above them.
 * @param {SessionConnection} connection
 * @param {HTMLElement} panel
 * @param {(text: string, options?: {urgent?: boolean, item?: Element | null}) => void} [notify]
 */
export function mountTherapistCheckins(connection, panel, notify = () => {}) {
  const section = el("section", { class: "stack", "aria-labelledby": "checkins-title" });
  section.append(el("h2", { id: "checkins-title" }, "Check-ins"));
  const launch = el("button", { type: "button" }, "Ask a pulse question");
  launch.addEventListener("click", () => connection.send({ type: "checkin-launch", instrument_id: "pulse" }));
  const split = el("div", { class: "alert split-alliance", role: "note" });
  split.hidden = true;
  const log = el("div", { class: "checkin-log", "aria-live": "polite" });
  section.append(launch, split, log);
  panel.append(section);
  /** Each client's cards, newest first, in the order the clients first appeared. */
  /** @type {Map<string, {label: string, cards: HTMLElement[]}>} */
  let people = new Map();

  /** @param {PanelResult} result */
  const add = (result) => {
    const key = result.client_id ?? "";
    const person = people.get(key) ?? { label: result.label ?? "", cards: [] };
    people.set(key, person);
    const card = resultCard(result);
    person.cards.unshift(card);
    return card;
  };
  const render = () => {
    const several = people.size > 1;
    log.classList.toggle("is-side-by-side", several);
    if (!several) {
      log.replaceChildren(...[...people.values()].flatMap((person) => person.cards));
      return;
    }
    log.replaceChildren(
      ...[...people.values()].map((person, n) => {
        const column = el("section", { class: "checkin-person", "aria-labelledby": `checkin-person-${n}` });
        column.append(el("h3", { id: `checkin-person-${n}` }, person.label || "Client"), ...person.cards);
        return column;
      }),
    );
  };
  /** @param {{reason: string, repair: string} | null | undefined} alert */
  const showSplit = (alert) => {
    split.hidden = !alert;
    if (alert) {
      split.replaceChildren(
        el("h3", {}, "Split alliance"),
        el("p", {}, alert.reason),
        el("p", { class: "repair" }, `Try: ${alert.repair}`),
      );
    }
  };

  connection.on("checkin-result", (msg) => {
    const card = add(msg);
    render();
    const alerts = msg.alerts.length ? ` (${msg.alerts.length === 1 ? "an alert" : `${msg.alerts.length} alerts`})` : "";
    const who = people.size > 1 && msg.label ? `${msg.label}: ` : "";
    notify(`${who}${kindName(msg.kind)} check-in: ${headline(msg)}${alerts}`, { urgent: msg.alerts.length > 0, item: card });
  });
  connection.on("alliance-split", (msg) => {
    showSplit(msg.alert);
    notify(`Split alliance: ${msg.alert.reason}`, { urgent: true, item: split });
  });
  connection.on("panel-state", (msg) => {
    people = new Map();
    for (const result of msg.checkins) add(/** @type {PanelResult} */ (result));
    render();
    showSplit(msg.alliance_split);
  });
}

/** @param {string} kind */
function kindName(kind) {
  return `${kind[0].toUpperCase()}${kind.slice(1)}`;
}

/**
 * The after-session page: the form is posted over HTTP, kept in localStorage until the server
 * confirms, and resent on the next visit (so an answer is never lost nor counted twice).
 * @param {HTMLElement} area
 * @param {Questionnaire} questionnaire
 * @param {{csrfToken: string, storing: boolean}} options
 */
export function mountAfterCheckin(area, questionnaire, options) {
  const outboxKey = "attune-after-outbox";
  const send = async (/** @type {{instrument_id: string, answers: Answers, idempotency_key: string, language?: string}} */ body) => {
    localStorage.setItem(outboxKey, JSON.stringify(body));
    const response = await fetch("/api/v1/visit/checkins", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": options.csrfToken },
      body: JSON.stringify(body),
    });
    if (response.ok) {
      localStorage.removeItem(outboxKey);
      area.replaceChildren(el("p", { role: "status" }, afterSending(body.answers)));
    } else {
      area.replaceChildren(el("p", { role: "alert" }, t("That did not go through. Please try again in a moment.")));
    }
  };
  const pending = localStorage.getItem(outboxKey);
  if (pending) {
    void send(JSON.parse(pending));
    return;
  }
  renderCheckinForm(area, questionnaire, {
    storing: options.storing,
    onSubmit: (answers) =>
      void send({
        instrument_id: questionnaire.id,
        answers,
        idempotency_key: newIdempotencyKey(),
        language: questionnaireLanguage(questionnaire),
      }),
  });
}
