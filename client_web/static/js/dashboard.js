// @ts-check
/** The session form sends the browser's UTC offset so a local start time is stored in UTC. */
for (const field of document.querySelectorAll("[data-tz-offset]")) {
  /** @type {HTMLInputElement} */ (field).value = String(new Date().getTimezoneOffset());
}

/** Default the start to "now" in the therapist's own time zone. */
for (const field of document.querySelectorAll("[data-local-now]")) {
  const input = /** @type {HTMLInputElement} */ (field);
  if (!input.value) {
    const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
    input.value = now.toISOString().slice(0, 16);
  }
}
