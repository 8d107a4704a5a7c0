// Progressive enhancement only: every page works without it (the server checks every line again).
// Line forms (data-check) get an inline code-set check as the code is typed, from /codes/check: the
// same service as the API's POST /api/v1/codesets/check.
(function () {
  "use strict";

  function field(form, name) { return form.querySelector('[name="' + name + '"]'); }

  function show(out, state, text) {
    out.dataset.state = state;
    out.textContent = text;
  }

  function check(form) {
    var out = form.querySelector(".check");
    var code = field(form, "code");
    if (!out || !code || !code.value.trim()) { return; }
    var system = field(form, "system");
    var modifiers = field(form, "modifiers");
    var params = new URLSearchParams({
      system: system ? system.value : form.dataset.system,
      code: code.value.trim(),
      modifiers: modifiers ? modifiers.value : "",
      dos: form.dataset.dos
    });
    fetch(form.dataset.check + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.json().then(function (body) { return [response.ok, body]; }); })
      .then(function (result) {
        var ok = result[0], body = result[1];
        if (!ok) { show(out, "bad", body.detail || "this code cannot be checked"); code.setAttribute("aria-invalid", "true"); return; }
        if (body.decision === "refused") {
          show(out, "bad", body.code + ": " + body.message);
          code.setAttribute("aria-invalid", "true");
        } else {
          show(out, body.status === "valid" ? "good" : "warn", body.code + ": " + body.status + (body.message ? " – " + body.message : ""));
          code.removeAttribute("aria-invalid");
        }
      })
      .catch(function () { show(out, "warn", "the code could not be checked now; it is checked again when you save"); });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () { clearTimeout(timer); timer = setTimeout(fn, ms); };
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-check]").forEach(function (form) {
      var run = debounce(function () { check(form); }, 300);
      ["code", "system", "modifiers"].forEach(function (name) {
        var input = field(form, name);
        if (input) { input.addEventListener("input", run); input.addEventListener("change", run); }
      });
    });
  });
})();
