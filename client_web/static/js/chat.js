// @ts-check
/**
 * Chat during the call, on both call pages (`#chat`): end to end over the call's WebRTC data
 * channel (call.js `sendChat` / "peer-chat"), never through the server and never stored — the
 * section says so. New messages go into a log (`role="log"`, read by screen readers as they
 * arrive); the input is labelled and Enter sends. Messages live in this page only: a reload or
 * the end of the call clears them.
 */

import { MAX_CHAT_CHARS } from "./call.js";
import { t } from "./i18n.js";

/**
 * @typedef {object} ChatParts
 * @property {HTMLElement} log  the messages (role="log")
 * @property {HTMLFormElement} form
 * @property {HTMLInputElement} input
 * @property {HTMLElement} status  a line saying why a message was not sent
 * @property {HTMLAnchorElement | null} unread  a link to the chat with the count of messages
 *   that arrived while the chat was out of view (the phone's call step), or null
 */

/**
 * @param {ChatParts} parts
 * @param {object} options
 * @param {(text: string) => boolean} options.send  false: not sent (no connected call)
 * @param {() => string} options.peerName  how the other person's messages are labelled
 * @param {(text: string) => void} [options.onReceived]  after a message is shown
 */
export function mountChat(parts, { send, peerName, onReceived = () => {} }) {
  const { log, form, input, status, unread } = parts;
  input.maxLength = MAX_CHAT_CHARS;
  let unseen = 0;
  let inView = false;
  const renderUnread = () => {
    if (!unread) return;
    unread.hidden = unseen === 0;
    unread.textContent = unseen === 1 ? t("1 new message") : t("{count} new messages", { count: unseen });
  };
  if (unread) {
    new IntersectionObserver((entries) => {
      inView = entries.some((entry) => entry.isIntersecting);
      if (inView) {
        unseen = 0;
        renderUnread();
      }
    }).observe(form);
    unread.addEventListener("click", (event) => {
      event.preventDefault();
      form.scrollIntoView({ block: "end" });
      input.focus();
    });
  }

  /**
   * @param {string} who
   * @param {string} text
   * @param {"mine" | "theirs"} side
   */
  const add = (who, text, side) => {
    const item = document.createElement("p");
    item.className = `chat-message is-${side}`;
    const name = document.createElement("span");
    name.className = "chat-who";
    name.textContent = t("{name}: ", { name: who });
    item.append(name, text);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    if (!send(text)) {
      status.textContent = t("Not sent: messages go once the video call is connected.");
      return;
    }
    status.textContent = "";
    add(t("You"), text, "mine");
    input.value = "";
    input.focus();
  });

  return {
    /**
     * A message from the other person arrived (peer to peer).
     * @param {string} text
     */
    received(text) {
      add(peerName(), text, "theirs");
      if (!inView) {
        unseen += 1;
        renderUnread();
      }
      onReceived(text);
    },
    /** The call is over: the messages go with it. */
    clear() {
      log.replaceChildren();
      status.textContent = "";
      unseen = 0;
      renderUnread();
    },
  };
}

/** The chat section's parts, or null on a page without one. */
export function chatParts() {
  const log = document.getElementById("chat-log");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const status = document.getElementById("chat-status");
  if (!log || !(form instanceof HTMLFormElement) || !(input instanceof HTMLInputElement) || !status) {
    return null;
  }
  const unread = document.getElementById("chat-unread");
  return { log, form, input, status, unread: unread instanceof HTMLAnchorElement ? unread : null };
}
