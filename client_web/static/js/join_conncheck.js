// @ts-check
/**
 * The visit page's second step: the connection check (`#step-network`). conncheck.js is loaded
 * only now, and a check that cannot run says so and lets the person continue.
 */

import { byId } from "./callview.js";
import { t } from "./i18n.js";

/** A check the server does not offer (or a network that cannot reach it) is not a verdict. */
const UNAVAILABLE_CHECK = /answered (404|405|501|503)\b|Failed to fetch/;

/**
 * @param {object} options
 * @param {() => void} options.show  show this step
 * @param {Promise<RTCConfiguration>} options.iceConfiguration
 * @param {string} options.csrfToken
 * @param {() => void} options.onDone  Continue or Skip was pressed
 */
export function mountConnectionCheck({ show, iceConfiguration, csrfToken, onDone }) {
  const el = {
    progress: /** @type {HTMLProgressElement} */ (byId("network-progress")),
    result: byId("network-result"),
    continue: /** @type {HTMLButtonElement} */ (byId("network-continue")),
    skip: /** @type {HTMLButtonElement} */ (byId("network-skip")),
  };
  let done = false;

  async function start() {
    show();
    el.continue.disabled = true;
    el.progress.value = 0;
    el.result.textContent = t("Checking…");
    done = false;
    /** @type {typeof import("./conncheck.js") | null} */
    let conncheck = null;
    try {
      conncheck = await import("./conncheck.js");
    } catch {
      conncheck = null;
    }
    if (done) return;
    if (!conncheck) {
      unavailable();
      return;
    }
    const ice = await iceConfiguration;
    const result = await conncheck.runConnectionCheck({
      csrfToken,
      iceServers: ice.iceServers ?? [],
      iceTransportPolicy: ice.iceTransportPolicy ?? "all",
      onProgress: ({ fraction }) => {
        if (!done) el.progress.value = Math.round(fraction * 100);
      },
    });
    if (done) return; // skipped meanwhile
    el.progress.value = 100;
    if (result.verdict === "failed" && UNAVAILABLE_CHECK.test(result.detail)) {
      unavailable();
      return;
    }
    el.result.textContent = result.message;
    el.continue.disabled = false;
    el.continue.focus();
  }

  function unavailable() {
    el.progress.value = 100;
    el.result.textContent = t("Connection check unavailable. You can continue.");
    el.continue.disabled = false;
  }

  function leave() {
    done = true;
    onDone();
  }
  el.continue.addEventListener("click", leave);
  el.skip.addEventListener("click", leave);

  return { start };
}
