// @ts-check
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
