// @ts-check
/**
 * The visit page's safety check (`#step-safety`), every session, after consent and before the
 * waiting room: where the client is right now, whether they can talk freely, an emergency
 * contact and an optional code word. Answers go to `POST /api/v1/visit/safety` and only to the
 * session's therapist (docs/privacy.md, "The safety check").
 *
 * The place and the privacy answer are asked fresh every time; the contact and the code word
 * are prefilled from the newest answers with one "Still the same" button. The device's
 * location is asked for only when the client presses "Use my device's location", and then only
 * rounded coordinates are put into the field for the client to edit: nothing is looked up on
 * the internet, and only the text in the field is ever sent.
 */

import { byId } from "./callview.js";
import { t } from "./i18n.js";

/**
 * @typedef {object} SafetyAnswers
 * @property {string} location
 * @property {boolean} private
 * @property {string} contact_name
 * @property {string} contact_phone
 * @property {string} [code_word]
 */

/** The field each of the server's corrections is about (its error code names it). */
const FIELD_OF_CODE = Object.freeze({
  "invalid-location": "safety-location",
  "invalid-private": "safety-private-yes",
  "invalid-contact-name": "safety-contact-name",
  "invalid-contact-phone": "safety-contact-phone",
  "invalid-code-word": "safety-code-word",
});
const PHONE = /^[0-9+()\- ]{1,40}$/;

/**
 * What "Use my device's location" puts in the field: about a kilometre, two decimals.
 * @param {number} latitude
 * @param {number} longitude
 */
export function coarsePlace(latitude, longitude) {
  return `near ${latitude.toFixed(2)}, ${longitude.toFixed(2)}`;
}

/**
 * @param {object} options
 * @param {boolean} options.enabled  the clinic asks the safety check (setting `safety_check`)
 * @param {() => void} options.show  show this step
 * @param {string} options.csrfToken
 * @param {() => void} options.onDone  answered (or not asked here): on to the waiting room
 * @param {() => void} options.onLinkGone  the link stopped working
 */
export function mountSafetyStep({ enabled, show, csrfToken, onDone, onLinkGone }) {
  const el = {
    title: byId("safety-step-title"),
    form: /** @type {HTMLFormElement} */ (byId("safety-form")),
    location: /** @type {HTMLInputElement} */ (byId("safety-location")),
    locationStatus: byId("safety-location-status"),
    samePlace: /** @type {HTMLButtonElement} */ (byId("safety-same-place")),
    locate: /** @type {HTMLButtonElement} */ (byId("safety-locate")),
    privateYes: /** @type {HTMLInputElement} */ (byId("safety-private-yes")),
    privateNo: /** @type {HTMLInputElement} */ (byId("safety-private-no")),
    previous: byId("safety-previous"),
    previousText: byId("safety-previous-text"),
    change: /** @type {HTMLButtonElement} */ (byId("safety-change")),
    contactFields: byId("safety-contact-fields"),
    contactName: /** @type {HTMLInputElement} */ (byId("safety-contact-name")),
    contactPhone: /** @type {HTMLInputElement} */ (byId("safety-contact-phone")),
    codeWord: /** @type {HTMLInputElement} */ (byId("safety-code-word")),
    submitRow: byId("safety-submit-row"),
    error: byId("safety-error"),
  };
  /** @type {SafetyAnswers | null} */
  let previous = null;
  let sending = false;

  async function start() {
    if (!enabled) {
      onDone();
      return;
    }
    try {
      const response = await fetch("/api/v1/visit/safety", { credentials: "same-origin" });
      if (response.status === 401) {
        onLinkGone();
        return;
      }
      if (!response.ok) throw new Error(`safety: ${response.status}`);
      const body = await response.json();
      if (body.enabled === false) {
        onDone();
        return;
      }
      previous = body.previous ?? null;
    } catch {
      previous = null; // nothing to prefill: the client answers afresh
    }
    render();
    show();
    el.title.focus();
  }

  function render() {
    el.error.hidden = true;
    el.samePlace.hidden = !previous;
    if (previous) {
      el.contactName.value = previous.contact_name;
      el.contactPhone.value = previous.contact_phone;
      el.codeWord.value = previous.code_word ?? "";
      // the code word is a secret between client and therapist: not shown on the screen here
      const last = { name: previous.contact_name, phone: previous.contact_phone };
      el.previousText.textContent = previous.code_word
        ? t("Last time: {name}, {phone}. Your code word is kept too.", last)
        : t("Last time: {name}, {phone}.", last);
    }
    editingContact(!previous);
  }

  /** @param {boolean} editing */
  function editingContact(editing) {
    el.previous.hidden = editing;
    el.contactFields.hidden = !editing;
    el.submitRow.hidden = !editing;
  }

  el.change.addEventListener("click", () => {
    editingContact(true);
    el.contactName.focus();
  });

  el.samePlace.addEventListener("click", () => {
    if (!previous) return;
    el.location.value = previous.location;
    el.locationStatus.textContent = t("Filled in from last time. Please check it is where you are now.");
    el.location.focus();
  });

  el.locate.addEventListener("click", () => {
    if (!("geolocation" in navigator)) {
      el.locationStatus.textContent = t("This device cannot share its location. Please type where you are.");
      el.location.focus();
      return;
    }
    el.locate.disabled = true;
    el.locationStatus.textContent = t("Asking your browser for your location…");
    navigator.geolocation.getCurrentPosition(
      (position) => {
        el.locate.disabled = false;
        el.location.value = coarsePlace(position.coords.latitude, position.coords.longitude);
        el.locationStatus.textContent =
          t("Filled in roughly (to about a kilometre). Please add the address or correct it: only what is in the field is sent, when you continue.");
        el.location.focus();
      },
      (failure) => {
        el.locate.disabled = false;
        el.locationStatus.textContent =
          failure.code === failure.PERMISSION_DENIED
            ? t("Your browser did not share your location. That is fine: please type where you are.")
            : t("Your location could not be found just now. Please type where you are.");
        el.location.focus();
      },
      { enableHighAccuracy: false, timeout: 10_000, maximumAge: 60_000 },
    );
  });

  // a correction under way: the old words go (the field keeps its own state)
  el.form.addEventListener("input", () => {
    el.error.hidden = true;
  });

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    void send();
  });

  /** @returns {SafetyAnswers | null} the answers, or null after pointing at what to correct */
  function answers() {
    const location = el.location.value.trim();
    if (!location) return correct(t("Please write where you are right now."), el.location);
    if (!el.privateYes.checked && !el.privateNo.checked) {
      return correct(t("Please say whether you can talk freely where you are."), el.privateYes);
    }
    const name = el.contactName.value.trim();
    const phone = el.contactPhone.value.trim();
    if (!name) return correct(t("Please write your emergency contact's name."), el.contactName, true);
    if (!PHONE.test(phone) || (phone.match(/[0-9]/g) ?? []).length < 3) {
      return correct(
        t("Please write your emergency contact's phone number with digits (spaces and + - ( ) are fine)."),
        el.contactPhone,
        true,
      );
    }
    return {
      location,
      private: el.privateYes.checked,
      contact_name: name,
      contact_phone: phone,
      code_word: el.codeWord.value.trim(),
    };
  }

  /**
   * Say what to correct and move to it.
   * @param {string} text
   * @param {HTMLElement} field
   * @param {boolean} [contact]  the field is one of the contact's (shown if folded away)
   * @returns {null}
   */
  function correct(text, field, contact = false) {
    if (contact) editingContact(true);
    el.error.textContent = text;
    el.error.hidden = false;
    field.focus();
    return null;
  }

  async function send() {
    if (sending) return;
    el.error.hidden = true;
    const body = answers();
    if (!body) return;
    sending = true;
    try {
      const response = await fetch("/api/v1/visit/safety", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
        body: JSON.stringify(body),
      });
      if (response.status === 401) {
        onLinkGone();
        return;
      }
      if (response.status === 404) {
        onDone(); // the clinic switched the step off meanwhile
        return;
      }
      if (!response.ok) {
        const error = await errorOf(response);
        const id = FIELD_OF_CODE[/** @type {keyof typeof FIELD_OF_CODE} */ (error.code)];
        const field = id ? document.getElementById(id) : null;
        correct(error.message, field ?? el.location, id?.startsWith("safety-contact") || id === "safety-code-word");
        return;
      }
    } catch {
      correct(t("Your answers could not be sent. Please check that you are online and try again."), el.location);
      return;
    } finally {
      sending = false;
    }
    onDone();
  }

  return { start };
}

/**
 * The server's error (code and words), or general words.
 * @param {Response} response
 * @returns {Promise<{code: string, message: string}>}
 */
async function errorOf(response) {
  try {
    const body = /** @type {{error?: {code?: unknown, message?: unknown}}} */ (await response.json());
    if (typeof body.error?.message === "string") {
      return { code: String(body.error.code ?? ""), message: body.error.message };
    }
  } catch {
    // not JSON: fall through
  }
  return { code: "", message: t("Your answers could not be saved. Please try again.") };
}
