// Starts Swagger UI on /docs (a file, not an inline script: the page's CSP forbids inline scripts).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  // validatorUrl null: Swagger UI would otherwise fetch a badge from validator.swagger.io (offline networks).
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
  });
});
