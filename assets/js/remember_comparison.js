(question, k, retrievers, gold) => {
  // The comparison's inputs go into the page's address, so that the link shows the same comparison.
  const url = new URL(window.location.href);
  const put = (name, value) => value ? url.searchParams.set(name, value) : url.searchParams.delete(name);
  put('q', (question || '').trim());
  put('k', String(k));
  put('r', (retrievers || []).join(','));
  put('gold', (gold || '').trim());
  url.searchParams.set('tab', 'compare');
  window.history.replaceState(null, '', url);
  return [];
}
