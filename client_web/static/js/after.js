// @ts-check
/** The after-session check-in page. */
import { mountAfterCheckin } from "./checkins.js";

const area = document.getElementById("after-checkin");
const data = document.getElementById("questionnaire-data");
const csrf = document.querySelector('meta[name="csrf-token"]')?.getAttribute("content") ?? "";
if (area && data?.textContent) {
  mountAfterCheckin(area, JSON.parse(data.textContent), {
    csrfToken: csrf,
    storing: area.dataset.storing === "true",
  });
}
