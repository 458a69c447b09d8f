// @ts-check
/**
 * The therapist's "send back to the waiting room" (host.js). With two people it is one button
 * for the client in the call, as it always was. In a group (a roster of more than two) each
 * person in the call has their own button, named for them, under the call; it asks first, as
 * ending the session does, and sends `send-back` with that person's `peer_id`: only they go
 * back, everyone else's call goes on.
 */

/** @typedef {import("./pairs.js").RosterPerson} RosterPerson */

/**
 * @typedef {object} SendBackParts
 * @property {HTMLButtonElement} single  the two-person call's button
 * @property {HTMLElement} list  the group's list, one item per person in the call
 * @property {HTMLDialogElement} dialog  asks before sending someone back
 * @property {HTMLElement} dialogTitle
 * @property {HTMLButtonElement} confirm
 * @property {HTMLButtonElement} cancel
 */

/**
 * The people a group call's page offers to send back: everyone present but the therapist,
 * in admission order (pure).
 * @param {RosterPerson[]} roster
 */
export function sendBackable(roster) {
  return roster.filter((person) => person.kind !== "therapist" && person.present);
}

/**
 * @param {SendBackParts} parts
 * @param {(peerId: string | null) => void} sendBack  send this person back (null: the one
 *   client of a two-person call)
 */
export function mountSendBack(parts, sendBack) {
  /** @type {{peerId: string, label: string} | null} whom the open dialog is about */
  let asking = null;
  /** @type {string | null} whose button opened the dialog: focused again after it */
  let opener = null;

  parts.single.addEventListener("click", () => sendBack(null));
  parts.cancel.addEventListener("click", () => parts.dialog.close());
  parts.confirm.addEventListener("click", () => {
    const whom = asking;
    parts.dialog.close();
    if (whom) sendBack(whom.peerId);
  });
  parts.dialog.addEventListener("close", () => {
    asking = null;
    // the list may have been drawn again meanwhile: find the button by the person
    const button = opener ? buttonOf(opener) : undefined;
    (button ?? parts.list.querySelector("button") ?? parts.single).focus();
    opener = null;
  });

  /** @param {string} peerId */
  function buttonOf(peerId) {
    return [...parts.list.querySelectorAll("button")].find((b) => b.dataset.peerId === peerId);
  }

  /**
   * @param {RosterPerson} person
   */
  function item(person) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.peerId = person.peer_id;
    button.textContent = `Send ${person.label} back to the waiting room`;
    button.addEventListener("click", () => {
      asking = { peerId: person.peer_id, label: person.label };
      opener = person.peer_id;
      parts.dialogTitle.textContent = `Send ${person.label} back to the waiting room?`;
      parts.dialog.showModal();
    });
    li.append(button);
    return li;
  }

  return {
    /**
     * The call's people changed: a group gets a button per person, two people the one button.
     * @param {RosterPerson[]} roster
     */
    update(roster) {
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      const focusedPeer = focused && parts.list.contains(focused) ? focused.dataset.peerId : undefined;
      const group = roster.length > 2;
      parts.single.hidden = group;
      parts.list.hidden = !group;
      if (!group) {
        parts.list.replaceChildren();
        if (focusedPeer) parts.single.focus(); // the list is gone: the one button
        if (parts.dialog.open) parts.dialog.close();
        return;
      }
      const people = sendBackable(roster);
      parts.list.replaceChildren(...people.map(item));
      // drawn again under the keyboard's focus: it stays on that person's button (or the
      // next one, if they left)
      if (focusedPeer) (buttonOf(focusedPeer) ?? parts.list.querySelector("button"))?.focus();
      // the person asked about left meanwhile: nothing to confirm any more
      if (asking && !people.some((person) => person.peer_id === asking?.peerId)) parts.dialog.close();
    },
  };
}
