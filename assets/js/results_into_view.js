() => {
  // Installed once per page: a click on Compare, or Enter in the question box, asks for the
  // results to come into view when they arrive (show_results.js). A listener of the page's own,
  // because Gradio runs a click's browser-side functions only after its server call has ended.
  if (window.lfqaResultsIntoView) return [];
  window.lfqaResultsIntoView = true;
  const asked = () => { window.lfqaShowResults = true; };
  document.addEventListener('click', (event) => {
    if (event.target instanceof Element && event.target.closest('#compare-button')) asked();
  }, true);
  document.addEventListener('keydown', (event) => {
    const inQuestion = event.target instanceof Element && event.target.closest('#compare-question');
    if (inQuestion && event.key === 'Enter' && !event.shiftKey) asked();
  }, true);
  return [];
}
