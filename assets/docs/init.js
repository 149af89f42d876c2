// Starts Swagger UI on gatehouse's own description. A file of its own, not an inline
// script, so that the page's Content-Security-Policy can refuse every inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/schema/",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default sends the description to validator.swagger.io: nothing leaves the page.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
