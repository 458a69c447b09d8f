// @ts-check
/**
 * The page's language for the browser modules. The server puts the page's translations in a
 * JSON block (`<script type="application/json" id="i18n-messages">`, from the catalogue
 * `client_web/locales/<lang>/LC_MESSAGES/js.po`); nothing is fetched. A message's key is its
 * English text, so an English page (no block) and a missing translation both show English.
 *
 * Placeholders are written `{name}` and filled from `params`: `t("Note: {text}", {text})`.
 * Keep every message one string literal in the call, so `pybabel extract` finds it.
 */

/** @type {Record<string, string> | null} */
let messages = null;

/** @returns {Record<string, string>} */
function catalogue() {
  if (messages) return messages;
  messages = {};
  const block = globalThis.document?.getElementById("i18n-messages");
  if (block?.textContent) {
    try {
      const parsed = JSON.parse(block.textContent);
      if (parsed && typeof parsed === "object") messages = parsed;
    } catch {
      // a broken block leaves the page in English
    }
  }
  return /** @type {Record<string, string>} */ (messages);
}

/**
 * A message in the page's language, with its `{name}` placeholders filled.
 * @param {string} key  the English text
 * @param {Record<string, string | number>} [params]
 * @returns {string}
 */
export function t(key, params) {
  const text = Object.hasOwn(catalogue(), key) ? catalogue()[key] : key;
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(params, name) ? String(params[name]) : whole,
  );
}

/** The page's language as `<html lang>` says (e.g. "de"), or "" when it says nothing. */
export function pageLanguage() {
  return globalThis.document?.documentElement.lang ?? "";
}

/**
 * The locale for dates and numbers: the browser's own regional variant of the page's
 * language when it has one (a "de" page in a de-AT browser formats as de-AT), else the
 * page's language.
 * @returns {string | undefined}
 */
export function pageLocale() {
  const lang = pageLanguage();
  if (!lang) return undefined;
  const regional = (globalThis.navigator?.languages ?? []).find(
    (tag) => tag.toLowerCase().split("-")[0] === lang.toLowerCase(),
  );
  return regional ?? lang;
}
