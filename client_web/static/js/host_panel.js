// @ts-check
/**
 * The therapist's side column: collapsible, and it announces the newest item (a check-in
 * result, a cue prompt, a client's signal) without covering faces — a highlighted line at its
 * top (read by screen readers), a count in the tab title until the therapist looks at the
 * column, and, if they chose it, a soft sound.
 */

const SOUND_KEY = "attune.panel.sound";
const COLLAPSED_KEY = "attune.panel.collapsed";

/**
 * @param {{column: HTMLElement, toggle: HTMLButtonElement, content: HTMLElement,
 *   latest: HTMLElement, sound: HTMLInputElement | null}} parts
 */
export function mountSidePanel(parts) {
  const { column, toggle, content, latest, sound } = parts;
  const baseTitle = document.title;
  let unseen = 0;

  const renderTitle = () => {
    document.title = unseen ? `(${unseen} new) ${baseTitle}` : baseTitle;
    toggle.textContent = column.classList.contains("is-collapsed")
      ? unseen ? `Show panel (${unseen} new)` : "Show panel"
      : "Hide panel";
  };

  /** @param {boolean} collapsed */
  const setCollapsed = (collapsed) => {
    column.classList.toggle("is-collapsed", collapsed);
    content.hidden = collapsed;
    toggle.setAttribute("aria-expanded", String(!collapsed));
    store(COLLAPSED_KEY, collapsed ? "1" : null);
    renderTitle();
  };

  const seen = () => {
    if (column.classList.contains("is-collapsed") || !unseen) return;
    unseen = 0;
    latest.classList.remove("is-new");
    for (const item of content.querySelectorAll(".is-new")) item.classList.remove("is-new");
    renderTitle();
  };

  toggle.addEventListener("click", () => {
    setCollapsed(!column.classList.contains("is-collapsed"));
    if (!column.classList.contains("is-collapsed")) seen();
  });
  column.addEventListener("pointerenter", seen);
  column.addEventListener("pointermove", seen);
  column.addEventListener("focusin", seen);

  if (sound) {
    sound.checked = read(SOUND_KEY) === "1";
    sound.addEventListener("change", () => store(SOUND_KEY, sound.checked ? "1" : null));
  }
  setCollapsed(read(COLLAPSED_KEY) === "1");

  return {
    /**
     * Something new arrived in the panel.
     * @param {string} text  one line saying what
     * @param {{urgent?: boolean, item?: Element | null}} [options]  `item`: the panel's element
     */
    announce(text, { urgent = false, item = null } = {}) {
      unseen += 1;
      latest.textContent = text;
      latest.classList.add("is-new");
      latest.classList.toggle("is-urgent", urgent);
      item?.classList.add("is-new");
      renderTitle();
      if (sound?.checked) softChime();
    },
    /**
     * The newest line stopped being true (someone waiting was let in): say what is true now,
     * once, calmly — no new count, no sound, no longer urgent. A newer line is left alone.
     * @param {string} previous  the line as announced
     * @param {string} text  what replaces it
     */
    replace(previous, text) {
      if (latest.textContent !== previous) return;
      latest.textContent = text;
      latest.classList.remove("is-urgent");
    },
  };
}

/** A short, quiet two-note chime (Web Audio; nothing is loaded). */
function softChime() {
  try {
    const audio = new AudioContext();
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0.0001, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.06, audio.currentTime + 0.03);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.6);
    gain.connect(audio.destination);
    for (const [frequency, at] of [[660, 0], [880, 0.15]]) {
      const tone = audio.createOscillator();
      tone.type = "sine";
      tone.frequency.value = frequency;
      tone.connect(gain);
      tone.start(audio.currentTime + at);
      tone.stop(audio.currentTime + 0.6);
    }
    setTimeout(() => void audio.close(), 800);
  } catch {
    // no audio output: the highlight and the title still tell
  }
}

/** @param {string} key */
function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** @param {string} key @param {string | null} value */
function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
}
