// @ts-check
/**
 * Confirmation before destructive actions: a form (or its submit button) with `data-confirm`
 * asks first, in the browser's own dialog (keyboard and screen-reader friendly). Declining
 * sends nothing.
 */
document.addEventListener("submit", (event) => {
  const form = /** @type {HTMLFormElement} */ (event.target);
  const submitter = /** @type {HTMLElement | null} */ (/** @type {SubmitEvent} */ (event).submitter);
  const question = submitter?.dataset.confirm ?? form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
