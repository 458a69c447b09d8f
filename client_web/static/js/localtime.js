// @ts-check
/**
 * Times in the viewer's own time zone, with the zone named. The server renders every time as
 * `<time datetime="…Z" data-local="datetime|date|time">… UTC</time>` (readable without
 * JavaScript); this module rewrites each into local time, e.g. "Fri 4 Dec, 07:16 CET", in the
 * page's language ("vie, 4 dic, 07:16 CET", "Fr., 4. Dez., 07:16 MEZ").
 */

import { pageLocale } from "./i18n.js";

/** @typedef {"datetime" | "date" | "time"} TimeStyle */

/** @type {Record<TimeStyle, Intl.DateTimeFormatOptions>} */
const STYLES = {
  datetime: { weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" },
  date: { day: "numeric", month: "short", year: "numeric" },
  time: { hour: "2-digit", minute: "2-digit", timeZoneName: "short" },
};
/** @type {Map<TimeStyle, Intl.DateTimeFormat>} */
const formats = new Map();

/**
 * A time in the viewer's zone, with the zone's name.
 * @param {Date} when
 * @param {TimeStyle} [style]
 */
export function formatLocal(when, style = "datetime") {
  let format = formats.get(style);
  if (!format) {
    format = new Intl.DateTimeFormat(pageLocale(), STYLES[style]);
    formats.set(style, format);
  }
  return format.format(when);
}

/** The viewer's time zone as IANA names it (e.g. "Europe/Berlin"). */
export function zoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? "";
}

/**
 * Rewrite every `time[data-local]` under `root` into local time (the UTC text stays as its
 * title, for anyone comparing with a colleague elsewhere).
 * @param {ParentNode} [root]
 */
export function localizeTimes(root = document) {
  for (const node of root.querySelectorAll("time[data-local]")) {
    const time = /** @type {HTMLTimeElement} */ (node);
    const when = new Date(time.dateTime);
    if (Number.isNaN(when.getTime()) || time.dataset.localized) continue;
    const style = /** @type {TimeStyle} */ (time.dataset.local || "datetime");
    time.title = time.textContent ?? "";
    time.textContent = formatLocal(when, style in STYLES ? style : "datetime");
    time.dataset.localized = "1";
  }
}

localizeTimes();
