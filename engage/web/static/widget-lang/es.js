// The widget's words in one more language, loaded by widget.js when a page asks for it.
window.engage.words('es', {question: '¿Te gusta este artículo?', yes: 'Sí', no: 'No',
  why: '¿Qué podríamos mejorar? (opcional)', thanks: 'Gracias, tu voto se ha registrado.',
  removed: 'Tu voto se ha retirado.', retry: 'No se pudo guardar. Inténtalo de nuevo en un momento.',
  related: 'Relacionados', closed: 'Esta encuesta está cerrada.', vote: 'Votar', votes_one: 'voto', votes: 'votos',
  outdated: 'Desactualizado', inaccurate: 'Inexacto', biased: 'Sesgado', unclear: 'Poco claro',
  not_relevant: 'No relevante', data: 'Tus datos'});
