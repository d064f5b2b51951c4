/* Starts Swagger UI on /api/docs. A file, not an inline script: the page's CSP allows
   scripts from this server only. */
(function () {
  'use strict';
  var node = document.getElementById('api-docs');
  window.ui = window.SwaggerUIBundle({
    url: node.getAttribute('data-spec'),
    domNode: node,
    deepLinking: true,
    displayOperationId: true,
    // The enums of parameters and bodies, open by default.
    defaultModelsExpandDepth: 2,
    defaultModelExpandDepth: 2,
    docExpansion: 'list',
    filter: true,
    // Swagger UI would otherwise send the document to an outside validator.
    validatorUrl: null
  });
}());
