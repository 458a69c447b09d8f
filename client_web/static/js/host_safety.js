// @ts-check
/**
 * The client's safety check in the therapist's side column (`#safety-check`, under the clinic's
 * emergency number): where the client is, whether they can talk freely, their emergency
 * contact and the agreed code word. It arrives live (`safety-check`, when the client answers
 * while the therapist is in the room) and with `panel-state` after every (re)connect. Both are
 * therapist-only messages. "Not really" private is a highlighted line, announced politely: a
 * signal to adapt, not an alarm.
 */

import { byId } from "./callview.js";
import { formatLocal } from "./localtime.js";

/** @typedef {import("./protocol_types.js").SafetyCheckMessage["check"]} SafetyCheck */

/**
 * @param {object} options
 * @param {() => string} options.label  the client's alias, as the room knows it now
 * @param {(text: string, options?: {urgent?: boolean, item?: Element | null}) => void} options.notify
 */
export function mountSafetyPanel({ label, notify }) {
  const el = {
    section: byId("safety-check"),
    empty: byId("safety-check-empty"),
    private: byId("safety-check-private"),
    answers: byId("safety-check-answers"),
  };
  /** @type {SafetyCheck | null} */
  let current = null;

  /** @param {SafetyCheck} check */
  function render(check) {
    current = check;
    el.section.hidden = false;
    el.empty.hidden = true;
    el.private.hidden = check.private;
    el.private.textContent = check.private
      ? ""
      : `May not be able to talk freely: ${label()} answered "Not really".`;
    const phone = document.createElement("a");
    phone.href = `tel:${check.contact_phone.replace(/ /g, "")}`;
    phone.textContent = check.contact_phone;
    const contact = document.createElement("span");
    contact.append(`${check.contact_name}, `, phone);
    /** @type {Array<[string, string | Node]>} */
    const rows = [
      ["Where", check.location],
      ["Private", check.private ? "Yes" : "Not really"],
      ["Contact", contact],
    ];
    if (check.code_word) rows.push(["Code word", check.code_word]);
    rows.push(["Answered", formatLocal(new Date(check.submitted_at_ms), "time")]);
    el.answers.replaceChildren(
      ...rows.flatMap(([term, value]) => {
        const dt = document.createElement("dt");
        dt.textContent = term;
        const dd = document.createElement("dd");
        dd.append(value);
        return [dt, dd];
      }),
    );
    el.answers.hidden = false;
  }

  return {
    /** @param {import("./protocol.js").SessionConnection} connection */
    listen(connection) {
      connection.on("safety-check", ({ check }) => {
        render(check);
        notify(
          check.private
            ? `${label()} answered the safety check`
            : `${label()} answered the safety check: may not be able to talk freely`,
          { item: el.section },
        );
      });
      connection.on("panel-state", ({ safety }) => {
        if (safety) render(safety);
      });
    },
    /** The agreed code word, if the client gave one this session ("" otherwise). */
    codeWord() {
      return current?.code_word ?? "";
    },
  };
}
