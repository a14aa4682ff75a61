() => {
  // The results were updated. After Compare (or Enter in the question box: results_into_view.js
  // notes it), they come into view once, when they start below the middle of the screen (on a
  // phone the form fills the first screen; a wide page is left as it is); later updates never
  // scroll against the visitor.
  const results = document.querySelector('#compare-results .results');
  if (!window.lfqaShowResults || !results) return [];
  window.lfqaShowResults = false;
  if (window.innerWidth <= 720 && results.getBoundingClientRect().top > window.innerHeight * 0.5) {
    results.scrollIntoView({block: 'start', behavior: 'smooth'});
  }
  return [];
}
