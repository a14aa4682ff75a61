(question) => {
  // Results older than the question in the box are marked stale (the results carry their question).
  const shown = document.querySelector('#compare-results .results');
  if (shown) shown.classList.toggle('stale', (question || '').trim() !== shown.dataset.question);
  return [];
}
