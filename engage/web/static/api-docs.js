/* Starts Swagger UI on /api/docs. A file, not an inline script: the page's CSP allows
   scripts from this server only. */
(function () {
  'use strict';
  var node = document.getElementById('api-docs');

  // Through Swagger UI's plugin API: every part of the page in a landmark (the title
  // block a banner, the filter a search; Swagger UI puts the operations in a main), and
  // an h2 between its h1 title and its h3 tags, so screen-reader users get a whole
  // outline.
  function landmarks(system) {
    var h = system.React.createElement;
    function wrap(tag, attrs, before) {
      return function (Original) {
        return function (props) {
          return h(tag, attrs, before, h(Original, props));
        };
      };
    }
    return {
      wrapComponents: {
        InfoContainer: wrap('div', {role: 'banner'}, null),
        FilterContainer: wrap('div', {role: 'search'}, null),
        operations: wrap('section', {'aria-labelledby': 'api-operations'},
          h('h2', {id: 'api-operations', className: 'api-operations'}, 'Operations'))
      }
    };
  }

  window.ui = window.SwaggerUIBundle({
    url: node.getAttribute('data-spec'),
    domNode: node,
    // Deep links put a link inside each operation's summary button, a control nested
    // in a control that keyboard and screen-reader users cannot reach on its own.
    deepLinking: false,
    plugins: [landmarks],
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
