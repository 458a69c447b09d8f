// @ts-check
import { formatLocal } from "./localtime.js";

/**
 * The session form sends the browser's UTC offset so a local start time is stored in UTC: the
 * offset in force at the chosen time, not today's (a July session booked in December is in
 * summer time where the clocks change).
 */
for (const field of document.querySelectorAll("[data-tz-offset]")) {
  const offset = /** @type {HTMLInputElement} */ (field);
  offset.value = String(new Date().getTimezoneOffset());
  const starts = /** @type {HTMLInputElement | null} */ (offset.form?.querySelector("input[name='starts_at']") ?? null);
  offset.form?.addEventListener("submit", () => {
    // "YYYY-MM-DDTHH:MM" without a zone is read as local time
    const chosen = new Date(starts?.value ?? "");
    offset.value = String((Number.isNaN(chosen.getTime()) ? new Date() : chosen).getTimezoneOffset());
  });
}

/** Default the start to "now" in the therapist's own time zone. */
for (const field of document.querySelectorAll("[data-local-now]")) {
  const input = /** @type {HTMLInputElement} */ (field);
  if (!input.value) {
    const now = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
    input.value = now.toISOString().slice(0, 16);
  }
}

/** A stored time shown in a datetime-local field in the therapist's own zone. */
for (const field of document.querySelectorAll("[data-local-value]")) {
  const input = /** @type {HTMLInputElement} */ (field);
  const when = new Date(input.dataset.localValue ?? "");
  if (!input.value && !Number.isNaN(when.getTime())) {
    input.value = new Date(when.getTime() - when.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }
}

const PRESENCE_EVERY_MS = 5000;
const badges = /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll("[data-waiting-for]"));
const banner = document.getElementById("waiting-now");
const baseTitle = document.title;

/**
 * Who is waiting, at the top of the page (the sessions list may be below the fold): one line
 * per session with a way into its room, rewritten only when it changes (it is a live region).
 * @param {{session_id: string, waiting: string[]}[]} items
 */
function showBanner(items) {
  if (!banner) return;
  const waiting = items.filter((item) => item.waiting.length);
  const key = JSON.stringify(waiting.map((item) => [item.session_id, item.waiting]));
  if (banner.dataset.shown === key) return;
  banner.dataset.shown = key;
  banner.replaceChildren(
    ...waiting.map((item) => {
      const line = document.createElement("p");
      const who = item.waiting.join(", ");
      line.append(`${who} ${item.waiting.length === 1 ? "is" : "are"} waiting. `);
      const link = document.createElement("a");
      link.href = `/host/${encodeURIComponent(item.session_id)}`;
      link.className = "button-link primary";
      link.textContent = `Open the room for ${who}`;
      line.append(link);
      return line;
    }),
  );
}

/** Who is waiting, live: the badge beside each upcoming session, and a count in the tab title. */
async function showPresence() {
  try {
    const response = await fetch("/api/v1/sessions/presence", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    /** @type {{items: {session_id: string, waiting: string[], in_call: boolean}[]}} */
    const body = await response.json();
    const bySession = new Map(body.items.map((item) => [item.session_id, item]));
    let waitingCount = 0;
    for (const badge of badges) {
      const item = bySession.get(badge.dataset.waitingFor ?? "");
      const text = item?.waiting.length
        ? `${item.waiting.join(", ")} ${item.waiting.length === 1 ? "is" : "are"} waiting`
        : item?.in_call ? "in the call" : "";
      waitingCount += item?.waiting.length ?? 0;
      if (badge.textContent !== text) badge.textContent = text;
      badge.hidden = !text;
      badge.classList.toggle("is-waiting", Boolean(item?.waiting.length));
    }
    showBanner(body.items.filter((item) => [...badges].some((b) => b.dataset.waitingFor === item.session_id)));
    document.title = waitingCount ? `(${waitingCount} waiting) ${baseTitle}` : baseTitle;
  } catch {
    // offline for a moment: the next poll tries again
  }
}

if (badges.length) {
  void showPresence();
  setInterval(() => void showPresence(), PRESENCE_EVERY_MS);
}

/**
 * The alert list, live: unseen safety alerts (PHQ-9 item 9) and clients flagged not on track,
 * polled with "who is waiting" so an open dashboard shows a new one without a reload. What is
 * new is announced: safety alerts assertively (`role="alert"`), flags politely (`role="status"`).
 * @typedef {{id: string, client_id: string, alias: string, measure: string, raised_at: string}} SafetyItem
 * @typedef {{client_id: string, alias: string, measures: string[]}} FlagItem
 */
const alertsSection = /** @type {HTMLElement | null} */ (document.querySelector("[data-live-alerts]"));
const alertList = document.getElementById("safety-alert-list");
const flagsSection = document.getElementById("not-on-track");
const flagList = document.getElementById("not-on-track-list");
const alertsAnnouncer = document.getElementById("alerts-announcer");
const flagsAnnouncer = document.getElementById("flags-announcer");
const ALERTS_EVERY_MS = 5000;

/** @param {string} clientId @param {string} alias */
function clientLink(clientId, alias) {
  const link = document.createElement("a");
  link.href = `/dashboard/clients/${encodeURIComponent(clientId)}`;
  link.textContent = alias;
  return link;
}

/** @param {SafetyItem} item @param {string} csrf */
function safetyRow(item, csrf) {
  const row = document.createElement("li");
  row.className = "safety-alert";
  row.dataset.alertId = item.id;
  const when = new Date(item.raised_at);
  const time = document.createElement("time");
  time.dateTime = item.raised_at;
  time.textContent = Number.isNaN(when.getTime()) ? item.raised_at : formatLocal(when);
  const form = document.createElement("form");
  form.method = "post";
  form.action = `/dashboard/safety-alerts/${encodeURIComponent(item.id)}/seen`;
  form.className = "inline-form";
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrf_token";
  token.value = csrf;
  const button = document.createElement("button");
  button.type = "submit";
  const hidden = document.createElement("span");
  hidden.className = "visually-hidden";
  hidden.textContent = ` (${item.alias})`;
  button.append("Mark as seen", hidden);
  form.append(token, button);
  row.append(clientLink(item.client_id, item.alias), ` · ${item.measure} · `, time, "\n", form);
  return row;
}

/** @param {FlagItem} item */
function flagRow(item) {
  const row = document.createElement("li");
  row.dataset.clientId = item.client_id;
  row.append(clientLink(item.client_id, item.alias), ` · ${item.measures.join(", ")}`);
  return row;
}

/** @param {HTMLElement | null} announcer @param {string} text */
function announce(announcer, text) {
  if (!announcer) return;
  announcer.textContent = "";
  // a fresh text node after clearing, so screen readers read it even when it repeats
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

async function showAlerts() {
  if (!alertsSection || !alertList || !flagsSection || !flagList) return;
  try {
    const response = await fetch("/api/v1/dashboard/alerts", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    /** @type {{safety: SafetyItem[], not_on_track: FlagItem[]}} */
    const body = await response.json();
    const shownAlerts = new Set(
      Array.from(alertList.querySelectorAll("[data-alert-id]"), (n) => /** @type {HTMLElement} */ (n).dataset.alertId),
    );
    const newAlerts = body.safety.filter((item) => !shownAlerts.has(item.id));
    const wantedAlerts = new Set(body.safety.map((item) => item.id));
    for (const node of alertList.querySelectorAll("[data-alert-id]")) {
      if (!wantedAlerts.has(/** @type {HTMLElement} */ (node).dataset.alertId ?? "")) node.remove();
    }
    const csrf = alertsSection.dataset.csrf ?? "";
    for (const item of newAlerts) alertList.prepend(safetyRow(item, csrf));
    alertsSection.hidden = body.safety.length === 0;
    if (newAlerts.length) {
      announce(
        alertsAnnouncer,
        `New safety alert: ${newAlerts.map((item) => `${item.alias} (${item.measure})`).join(", ")}`,
      );
    }

    const shownFlags = new Map(
      Array.from(flagList.querySelectorAll("[data-client-id]"), (n) => [
        /** @type {HTMLElement} */ (n).dataset.clientId ?? "",
        n.textContent ?? "",
      ]),
    );
    const newFlags = body.not_on_track.filter((item) => !shownFlags.has(item.client_id));
    flagList.replaceChildren(...body.not_on_track.map(flagRow));
    flagsSection.hidden = body.not_on_track.length === 0;
    if (newFlags.length) {
      announce(
        flagsAnnouncer,
        `Not on track: ${newFlags.map((item) => `${item.alias} (${item.measures.join(", ")})`).join(", ")}`,
      );
    }
  } catch {
    // offline for a moment: the next poll tries again
  }
}

if (alertsSection) {
  setInterval(() => void showAlerts(), ALERTS_EVERY_MS);
}
