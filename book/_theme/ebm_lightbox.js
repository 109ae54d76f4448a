// Click (or Enter / Space on) a figure of a lesson to see it enlarged, up to the size of the
// window; click anywhere, press Escape or the close button to go back. Served with the book (book/_theme):
// no library, no network. Figures wider than the text column are shrunk to fit it, so their
// labels are small; the enlarged view shows them at their own resolution (at most 2x upscaled).
(function () {
  "use strict";
  const SELECTOR =
    ".bd-article .cell_output img, .bd-article figure img, .bd-article img.ebm-zoom";

  function zoomable(img) {
    return img.matches(SELECTOR) && !img.closest("a, .ebm-lightbox");
  }

  function mark(root) {
    root.querySelectorAll(SELECTOR).forEach(function (img) {
      if (!zoomable(img) || img.classList.contains("ebm-zoomable")) return;
      img.classList.add("ebm-zoomable");
      img.setAttribute("tabindex", "0");
      img.setAttribute("role", "button");
      const what = img.getAttribute("alt") || "figure";
      img.setAttribute("aria-label", "Enlarge " + what);
      img.title = img.title || "Click to enlarge";
    });
  }

  function open(img) {
    const previous = document.activeElement;
    const box = document.createElement("div");
    box.className = "ebm-lightbox";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-modal", "true");
    box.setAttribute("aria-label", "Enlarged figure");
    const big = document.createElement("img");
    big.src = img.currentSrc || img.src;
    big.alt = img.getAttribute("alt") || "";
    const scale = Math.min(
      (0.96 * window.innerWidth) / img.naturalWidth,
      (0.92 * window.innerHeight) / img.naturalHeight,
      2
    );
    big.style.width = Math.round(img.naturalWidth * scale) + "px";
    big.style.height = Math.round(img.naturalHeight * scale) + "px";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "ebm-lightbox-close";
    close.setAttribute("aria-label", "Close the enlarged figure");
    close.textContent = "\u00d7";
    box.append(big, close);
    function shut() {
      box.remove();
      document.removeEventListener("keydown", onKey, true);
      if (previous && previous.focus) previous.focus();
    }
    function onKey(event) {
      if (event.key === "Escape") {
        event.preventDefault();
        shut();
      }
    }
    box.addEventListener("click", shut);
    document.addEventListener("keydown", onKey, true);
    document.body.append(box);
    close.focus();
  }

  document.addEventListener("click", function (event) {
    const img = event.target.closest && event.target.closest("img");
    if (img && zoomable(img)) {
      event.preventDefault();
      open(img);
    }
  });
  document.addEventListener("keydown", function (event) {
    const img = event.target;
    if ((event.key === "Enter" || event.key === " ") && img.tagName === "IMG" && zoomable(img)) {
      event.preventDefault();
      open(img);
    }
  });
  document.addEventListener("DOMContentLoaded", function () {
    mark(document);
    // Outputs drawn after loading (widget views) get the same treatment.
    new MutationObserver(function () {
      mark(document);
    }).observe(document.body, { childList: true, subtree: true });
  });
})();
