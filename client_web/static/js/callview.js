// @ts-check
/**
 * The in-call controls both pages share: video elements, mute and camera toggles, the safety
 * code with its "Codes match" control, and the connection-quality indicator. DOM only through
 * the elements passed in; text with `textContent`.
 */

import { setTracksEnabled } from "./call.js";
import { pageLocale, t } from "./i18n.js";

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
}

/**
 * Show exactly one of several sections, and move focus to its heading for screen readers.
 * @param {HTMLElement[]} sections
 * @param {HTMLElement} shown
 * @param {{focus?: boolean}} [options]
 */
export function showOnly(sections, shown, { focus = true } = {}) {
  for (const section of sections) section.hidden = section !== shown;
  if (focus) {
    const heading = shown.querySelector("h1, h2");
    if (heading instanceof HTMLElement) {
      if (!heading.hasAttribute("tabindex")) heading.tabIndex = -1;
      heading.focus({ preventScroll: false });
    }
  }
}

/**
 * Play a stream in a <video>. If the browser refuses sound without a user gesture, play it
 * muted and call `needsGesture` (the page shows a button that calls `unmute`).
 * @param {HTMLVideoElement} video
 * @param {MediaStream | null} stream
 * @param {{muted?: boolean, needsGesture?: () => void}} [options]
 */
export function playStream(video, stream, { muted = false, needsGesture } = {}) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.muted = muted;
  if (!stream) return;
  video.play().catch((error) => {
    if (muted || error?.name !== "NotAllowedError") return;
    video.muted = true;
    void video.play().catch(() => {});
    needsGesture?.();
  });
}

/**
 * A switch that says what pressing it does next ("Mute microphone" / "Unmute microphone"),
 * so its words and its colour never disagree; the state is in `data-on` for the styling.
 * @param {HTMLButtonElement} button
 * @param {[string, string]} labels  [while off, while on]
 * @param {(on: boolean) => void} onChange
 */
export function bindSwitch(button, labels, onChange) {
  const render = (/** @type {boolean} */ on) => {
    button.dataset.on = String(on);
    button.textContent = on ? labels[1] : labels[0];
  };
  render(button.dataset.on === "true");
  button.addEventListener("click", () => {
    const on = button.dataset.on !== "true";
    render(on);
    onChange(on);
  });
}

/**
 * Mute and camera switches for the local stream (`track.enabled`, nothing renegotiated).
 * `changed` hears the new state (for telling the other side).
 * @param {{mute: HTMLButtonElement, camera: HTMLButtonElement}} buttons
 * @param {() => MediaStream | null} localStream
 * @param {(state: {audio: boolean, video: boolean}) => void} [changed]
 */
export function bindMediaToggles(buttons, localStream, changed) {
  const state = () => ({ audio: buttons.mute.dataset.on !== "true", video: buttons.camera.dataset.on !== "true" });
  bindSwitch(buttons.mute, [t("Mute microphone"), t("Unmute microphone")], (muted) => {
    setTracksEnabled(localStream(), "audio", !muted);
    changed?.(state());
  });
  bindSwitch(buttons.camera, [t("Turn off camera"), t("Turn on camera")], (off) => {
    setTracksEnabled(localStream(), "video", !off);
    changed?.(state());
  });
  return {
    /** Reflect which devices exist (a toggle for a missing device is disabled). */
    refresh() {
      const stream = localStream();
      buttons.mute.disabled = !stream?.getAudioTracks().length;
      buttons.camera.disabled = !stream?.getVideoTracks().length;
      const now = state();
      setTracksEnabled(stream, "audio", now.audio);
      setTracksEnabled(stream, "video", now.video);
    },
    /** What this person sends now: microphone on, camera on. */
    state,
  };
}

/**
 * The safety code, its "Codes match" control and a line saying who confirmed.
 * @param {{code: HTMLElement, confirm: HTMLButtonElement, note: HTMLElement, peerName: string}} parts
 */
export function safetyCodeView(parts) {
  const { code, confirm, note } = parts;
  let peerName = parts.peerName;
  let confirmedHere = false;
  let confirmedThere = false;
  const renderNote = () => {
    if (confirmedHere && confirmedThere) note.textContent = t("You both confirmed the codes match.");
    else if (confirmedHere) note.textContent = t("You confirmed the codes match.");
    else if (confirmedThere) note.textContent = t("{name} confirmed the codes match.", { name: peerName });
    else note.textContent = t("Read the code aloud: you should both see the same eight digits.");
  };
  const reset = (/** @type {string} */ text) => {
    code.textContent = text;
    confirm.disabled = true;
    confirmedHere = false;
    confirmedThere = false;
    renderNote();
  };
  reset(t("Not connected yet"));
  return {
    /** @param {string} name */
    setPeerName(name) {
      peerName = name;
      renderNote();
    },
    /** @param {string} value */
    show(value) {
      code.textContent = value;
      confirm.disabled = false;
      renderNote();
    },
    waiting() {
      reset(t("Working it out…"));
    },
    failed() {
      reset(t("Unavailable"));
      note.textContent = t(
        "The safety code could not be worked out. If this keeps happening, end the call.",
      );
    },
    idle() {
      reset(t("Not connected yet"));
    },
    confirmedByMe() {
      confirmedHere = true;
      confirm.disabled = true;
      renderNote();
    },
    confirmedByPeer() {
      confirmedThere = true;
      renderNote();
    },
  };
}

const LEVEL_WORDS = Object.freeze({
  good: t("Good"),
  fair: t("Fair"),
  poor: t("Poor"),
  unknown: t("Measuring…"),
});

/**
 * Render a quality sample: a word (and a class for its colour) plus the figures.
 * @param {{level: HTMLElement, detail: HTMLElement}} parts
 * @param {import("./call.js").Quality | null} quality
 */
export function renderQuality(parts, quality) {
  const level = quality?.level ?? "unknown";
  parts.level.textContent = quality ? LEVEL_WORDS[level] : "—";
  parts.level.className = `quality-level quality-${level}`;
  if (!quality || level === "unknown") {
    parts.detail.textContent = "";
    return;
  }
  const figures = [];
  const number = (/** @type {number} */ value, digits = 0) =>
    value.toLocaleString(pageLocale(), { minimumFractionDigits: digits, maximumFractionDigits: digits });
  if (quality.rttMs !== null) figures.push(t("round trip {ms} ms", { ms: number(quality.rttMs) }));
  if (quality.lossPercent !== null) figures.push(t("loss {percent} %", { percent: number(quality.lossPercent, 1) }));
  if (quality.framesPerSecond !== null) figures.push(t("{fps} fps", { fps: number(quality.framesPerSecond) }));
  parts.detail.textContent = figures.join(", ");
}

/**
 * Minutes and seconds since `startMs` (before it: the time until it), in an element, every second.
 * @param {HTMLElement} element
 * @param {number} startMs
 */
export function runSessionTimer(element, startMs) {
  const render = () => {
    const ms = Date.now() - startMs;
    const total = Math.floor(Math.abs(ms) / 1000);
    const text = `${Math.floor(total / 60)}:${String(total % 60).padStart(2, "0")}`;
    element.textContent = ms < 0 ? t("starts in {time}", { time: text }) : text;
  };
  render();
  return setInterval(render, 1000);
}

/**
 * How long a connection may try before the person is told what they can do: within 10 s of a
 * reload or a network change the call is back or the page says what to do.
 */
export const STALL_HELP_MS = 8_000;

/**
 * Say what to do when something keeps trying for too long, instead of spinning forever:
 * `arm()` when trying starts, `disarm()` when it worked; after `ms` the text is shown.
 * @param {HTMLElement} element  a status line
 * @param {string} text
 * @param {number} [ms]
 */
export function stallHelp(element, text, ms = STALL_HELP_MS) {
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  let unhidden = false;
  return {
    /** The help is what the line says now (callers keep it there until `disarm()`). */
    get shown() {
      return element.textContent === text;
    },
    /** Trying (again): the help comes after `ms`, or stays if it is already shown. */
    arm() {
      if (timer !== null || element.textContent === text) return;
      timer = setTimeout(() => {
        timer = null;
        element.textContent = text;
        element.classList.add("is-warning");
        if (element.hidden) {
          element.hidden = false;
          unhidden = true;
        }
      }, ms);
    },
    /** It worked: stop waiting, and take the help back if it is still what the line says. */
    disarm() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      if (element.textContent !== text) return;
      element.textContent = "";
      element.classList.remove("is-warning");
      if (unhidden) element.hidden = true;
      unhidden = false;
    },
  };
}
