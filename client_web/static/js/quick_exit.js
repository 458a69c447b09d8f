// @ts-check
/**
 * The client's quick exit: a "Quick exit" button in the waiting room and the call, or Escape
 * pressed three times within a moment, leaves at once. The page says goodbye (`leave` with
 * `quick-exit`, so the therapist sees a safety notice rather than a dropped connection),
 * releases camera and microphone, forgets this tab's session state, and replaces itself with
 * a neutral page (`location.replace`, so Back does not return to the session).
 */

/** Escape presses needed, and the time they must fall within. */
export const ESCAPE_PRESSES = 3;
export const ESCAPE_WINDOW_MS = 1500;

/**
 * @param {object} options
 * @param {Iterable<HTMLElement>} options.buttons  the Quick exit buttons
 * @param {() => void} options.onExit  leave now (called once)
 */
export function mountQuickExit({ buttons, onExit }) {
  let gone = false;
  /** @type {number[]} */
  let presses = [];
  const exit = () => {
    if (gone) return;
    gone = true;
    onExit();
  };
  for (const button of buttons) button.addEventListener("click", exit);
  document.addEventListener(
    "keydown",
    (event) => {
      if (event.key !== "Escape" || event.repeat) return;
      const now = performance.now();
      presses = [...presses.filter((at) => now - at < ESCAPE_WINDOW_MS), now];
      if (presses.length >= ESCAPE_PRESSES) exit();
    },
    { capture: true },
  );
}

/**
 * Replace this page, and its place in the tab's history, with the neutral page.
 * @param {string} url  the setting `quick_exit_url` (a path here, or an https:// address)
 */
export function replaceWithNeutralPage(url) {
  try {
    sessionStorage.clear(); // this tab's passed checks, resume token and unsent answers
  } catch {
    // storage disabled: nothing was kept
  }
  location.replace(url || "/weather");
}
