// @ts-check
/**
 * The visit page's waiting room (`#step-waiting`): a status line, and a Join button when the
 * browser has seen no user gesture yet (after a reload), since sound may need one.
 */

import { byId } from "./callview.js";
import { t } from "./i18n.js";

/**
 * @param {object} options
 * @param {HTMLElement} options.step  the waiting room's section
 * @param {() => void} options.show  show this step
 * @param {() => void} options.onJoinPressed  the gesture happened: resume audio
 * @param {() => string} options.statusAfterJoin  the status line once Join was pressed
 */
export function mountWaitingRoom({ step, show, onJoinPressed, statusAfterJoin }) {
  const el = {
    status: byId("waiting-status"),
    joinButton: /** @type {HTMLButtonElement} */ (byId("join-button")),
    joinHint: byId("join-hint"),
    note: byId("waiting-note"),
  };

  el.joinButton.addEventListener("click", () => {
    onJoinPressed();
    el.joinButton.hidden = true;
    el.joinHint.hidden = true;
    el.status.textContent = statusAfterJoin();
  });

  return {
    /** Whether the waiting room is the step on screen. */
    get shown() {
      return !step.hidden;
    },
    /**
     * Show the waiting room (if it is not shown) with this status.
     * @param {string} status
     */
    show(status) {
      el.status.textContent = status;
      if (step.hidden) show();
      // Sound needs a user gesture in some browsers; after a reload there has been none.
      const activated = navigator.userActivation?.hasBeenActive ?? true;
      el.joinButton.hidden = activated;
      el.joinHint.hidden = activated;
    },
    /**
     * The therapist's note to the waiting room (`therapist-note`), replacing any earlier one.
     * @param {string} text
     */
    showNote(text) {
      el.note.textContent = t("Note from your therapist: {text}", { text });
    },
    /**
     * Change the status line only.
     * @param {string} status
     */
    setStatus(status) {
      el.status.textContent = status;
    },
  };
}
