// @ts-check
/**
 * A typed event emitter for the page's long-lived objects (`SessionConnection` in
 * protocol.js, `Call` in call.js): listeners by event name, each handed the payload of its
 * own type. Touches no DOM.
 */

/**
 * @template {object} Events  event name → payload type
 */
export class Emitter {
  /** @type {Map<PropertyKey, Set<(payload: unknown) => void>>} */
  #listeners = new Map();

  /**
   * Subscribe; returns the function that unsubscribes.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(payload: Events[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    // stored by type name; emit hands each listener the payload of its own type
    const listener = /** @type {(payload: unknown) => void} */ (fn);
    set.add(listener);
    return () => set?.delete(listener);
  }

  /**
   * Call every listener of `type` with `payload`, in the order they subscribed.
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} payload
   */
  emit(type, payload) {
    for (const fn of [...(this.#listeners.get(type) ?? [])]) {
      try {
        fn(payload);
      } catch (error) {
        // one broken subscriber must not stop the others or its emitter
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
