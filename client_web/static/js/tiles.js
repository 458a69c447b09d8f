// @ts-check
/**
 * The video tiles of a group call (DOM only, text with `textContent`): one tile per other
 * person, with their name as the tile's caption and accessible label, their pair's safety code
 * on the tile, and a ring while they speak. The page's own remote video (`#remote-video`, the
 * primary pair) becomes the first tile while the call has more than two people and goes back
 * to the plain two-person stage after.
 *
 * Layout (attune.css, `.stage.is-group`): a grid that fits two columns at 360 px and more on
 * a desktop; the own camera stays a small picture on top. Speaking changes only restyle the
 * tile (no live region): announcing every change would drown a screen reader in noise.
 *
 * Each pair's "Codes match" control lives in the safety section (`#pair-codes`), one row per
 * person, with the same code; the tile only shows it.
 */

import { t } from "./i18n.js";

/**
 * One tile: the person's video, name and safety code.
 * @typedef {object} Tile
 * @property {HTMLVideoElement} video
 * @property {(name: string) => void} setName
 * @property {(code: string | null) => void} setCode  null: no code (yet)
 * @property {(speaking: boolean) => void} setSpeaking
 * @property {() => void} confirmedByPeer
 * @property {() => void} remove
 */

/**
 * @param {string} tag
 * @param {string} className
 * @param {string} [text]
 */
function element(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * The tiles of one stage.
 * @param {{stage: HTMLElement, primaryVideo: HTMLVideoElement, codes: HTMLElement | null}} parts
 *   `codes`: a list for each pair's code and "Codes match" (absent: codes on tiles only)
 */
export function mountTiles(parts) {
  const { stage, primaryVideo, codes } = parts;
  const grid = element("div", "tiles");
  /** @type {Map<string, {figure: HTMLElement, row: HTMLElement | null}>} */
  const tiles = new Map();
  /** @type {HTMLElement | null} the figure around the primary video while in group mode */
  let primaryFigure = null;
  const primaryCaption = element("figcaption", "tile-name");
  const primaryCode = element("p", "tile-code");
  let primaryName = "";

  const render = () => {
    const group = tiles.size > 0;
    stage.classList.toggle("is-group", group);
    stage.dataset.people = String(tiles.size + (group ? 2 : 0));
    if (group && !primaryFigure) {
      primaryFigure = element("figure", "tile tile-primary");
      primaryFigure.setAttribute("aria-label", primaryName);
      stage.prepend(grid);
      grid.prepend(primaryFigure);
      primaryFigure.append(primaryVideo, primaryCaption, primaryCode);
      void primaryVideo.play().catch(() => {});
    } else if (!group && primaryFigure) {
      stage.prepend(primaryVideo);
      primaryFigure = null;
      grid.replaceChildren();
      grid.remove();
      void primaryVideo.play().catch(() => {});
    }
    if (codes) codes.hidden = !group;
  };

  return {
    /**
     * The primary person's name (shown on their tile while in group mode).
     * @param {string} name
     */
    setPrimaryName(name) {
      primaryName = name;
      primaryCaption.textContent = name;
      primaryFigure?.setAttribute("aria-label", name);
    },
    /** @param {boolean} speaking  ring the primary person's tile (group mode only) */
    setPrimarySpeaking(speaking) {
      primaryFigure?.classList.toggle("is-speaking", speaking);
    },
    /** @param {string | null} code  the primary pair's safety code, for its tile */
    setPrimaryCode(code) {
      primaryCode.textContent = code ? t("Code {code}", { code }) : "";
    },
    /**
     * A tile for another person; `confirm` runs when this person presses their pair's
     * "Codes match".
     * @param {string} peerId
     * @param {string} name
     * @param {() => void} confirm
     * @returns {Tile}
     */
    add(peerId, name, confirm) {
      const figure = element("figure", "tile");
      figure.dataset.peerId = peerId;
      const video = /** @type {HTMLVideoElement} */ (element("video", "tile-video"));
      video.autoplay = true;
      video.playsInline = true;
      const caption = element("figcaption", "tile-name", name);
      const code = element("p", "tile-code");
      figure.append(video, caption, code);
      grid.append(figure);
      /** @type {HTMLElement | null} */
      let row = null;
      /** @type {HTMLOutputElement | null} */
      let rowCode = null;
      /** @type {HTMLButtonElement | null} */
      let button = null;
      /** @type {HTMLElement | null} */
      let note = null;
      let confirmedHere = false;
      let confirmedThere = false;
      let currentName = name;
      const renderNote = () => {
        if (!note) return;
        note.textContent =
          confirmedHere && confirmedThere
            ? t("You both confirmed the codes match.")
            : confirmedHere
              ? t("You confirmed the codes match.")
              : confirmedThere
                ? t("{name} confirmed the codes match.", { name: currentName })
                : "";
      };
      if (codes) {
        row = element("li", "pair-code");
        row.dataset.peerId = peerId;
        const who = element("span", "pair-name", name);
        rowCode = /** @type {HTMLOutputElement} */ (element("output", "safety-code", t("Working it out…")));
        button = /** @type {HTMLButtonElement} */ (element("button", "small", t("Codes match")));
        button.type = "button";
        button.disabled = true;
        note = element("span", "hint");
        button.addEventListener("click", () => {
          confirm();
          confirmedHere = true;
          if (button) button.disabled = true;
          renderNote();
        });
        row.append(who, rowCode, button, note);
        codes.querySelector("ul")?.append(row);
      }
      tiles.set(peerId, { figure, row });
      /** @param {string} value */
      const label = (value) => {
        figure.setAttribute("aria-label", value);
        button?.setAttribute("aria-label", t("Codes match with {name}", { name: value }));
      };
      label(name);
      render();
      return {
        video,
        setName(value) {
          currentName = value;
          caption.textContent = value;
          if (row) /** @type {HTMLElement} */ (row.firstChild).textContent = value;
          label(value);
          renderNote();
        },
        setCode(value) {
          code.textContent = value ? t("Code {code}", { code: value }) : "";
          if (rowCode) rowCode.textContent = value ?? t("Working it out…");
          if (button) button.disabled = value === null || confirmedHere;
          if (value === null) {
            confirmedHere = false;
            confirmedThere = false;
            renderNote();
          }
        },
        setSpeaking(speaking) {
          figure.classList.toggle("is-speaking", speaking);
        },
        confirmedByPeer() {
          confirmedThere = true;
          renderNote();
        },
        remove() {
          video.srcObject = null;
          figure.remove();
          row?.remove();
          tiles.delete(peerId);
          render();
        },
      };
    },
  };
}

/** Above this RTP audio level (0..1, RFC 6464) a person counts as speaking. */
export const SPEAKING_LEVEL = 0.02;

/**
 * Whether the person behind a peer connection is speaking now: the audio level of the last
 * packets received (`RTCRtpReceiver.getSynchronizationSources`), computed by the browser from
 * what it already plays. Nothing is sent for it and nothing leaves the device.
 * @param {RTCPeerConnection | null} pc
 * @returns {boolean}
 */
export function remoteSpeaking(pc) {
  if (!pc) return false;
  for (const receiver of pc.getReceivers()) {
    if (receiver.track.kind !== "audio" || receiver.track.muted) continue;
    for (const source of receiver.getSynchronizationSources()) {
      if ((source.audioLevel ?? 0) > SPEAKING_LEVEL) return true;
    }
  }
  return false;
}

/**
 * A person's pair and how to mark their tile.
 * @typedef {object} SpeakingPair
 * @property {RTCPeerConnection | null} pc
 * @property {(speaking: boolean) => void} setSpeaking
 */

/**
 * Follows who speaks: every `intervalMs`, each pair's tile is ringed from the audio level
 * received on that pair (`remoteSpeaking`). Reads only what the browser already has; sends
 * nothing and announces nothing.
 * @param {() => Iterable<SpeakingPair>} pairs  the pairs now (asked again at every check)
 * @param {number} intervalMs
 * @returns {() => void} stops following
 */
export function watchSpeaking(pairs, intervalMs) {
  const timer = setInterval(() => {
    for (const { pc, setSpeaking } of pairs()) setSpeaking(remoteSpeaking(pc));
  }, intervalMs);
  return () => clearInterval(timer);
}
