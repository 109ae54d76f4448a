// The widget views (ipywidgets 8 / @jupyter-widgets/html-manager) typeset their labels with
// the MathJax 2 API, MathJax.Hub.Queue; this book loads MathJax 3, which has no Hub. Give the
// widgets a Hub that forwards to MathJax 3, before and after MathJax has started.
(function () {
  const hub = {
    Queue: function () {
      if (window.MathJax && window.MathJax.typesetPromise) {
        window.MathJax.typesetPromise();
      }
    },
  };
  window.MathJax = window.MathJax || {};
  window.MathJax.Hub = hub;
  window.MathJax.startup = Object.assign(window.MathJax.startup || {}, {
    ready: function () {
      window.MathJax.startup.defaultReady();
      window.MathJax.Hub = hub;
    },
  });
})();
