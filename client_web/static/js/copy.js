// @ts-check
/** Copy buttons: `data-copy-target` names the input whose value to copy. */
for (const button of document.querySelectorAll("[data-copy-target]")) {
  button.addEventListener("click", async () => {
    const id = button.getAttribute("data-copy-target") ?? "";
    const input = /** @type {HTMLInputElement | null} */ (document.getElementById(id));
    const status = document.querySelector("[data-copy-status]");
    if (!input) return;
    input.select();
    let copied = false;
    try {
      await navigator.clipboard.writeText(input.value);
      copied = true;
    } catch {
      copied = document.execCommand("copy");
    }
    if (status) status.textContent = copied ? "Link copied." : "Select the link and copy it.";
  });
}
