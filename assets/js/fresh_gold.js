() => {
  // Installed once per page. A gold answer filled in with its question (an example, a link:
  // remember_gold.js) belongs to that question: once the visitor edits the question (typing,
  // pasting, anything that fires an input event) the gold answer is cleared, so that no verdict
  // and no share link pairs it with another question. A gold answer the visitor typed stays.
  // Gradio's own "input" event fires for keystrokes only (not for a paste), hence the listener.
  if (window.lfqaFreshGold) return [];
  window.lfqaFreshGold = true;
  document.addEventListener('input', (event) => {
    const target = event.target;
    if (!(target instanceof Element)) return;
    if (target.closest('#compare-gold')) {
      if (event.isTrusted) window.lfqaGoldFor = null;  // typed by the visitor: theirs now
      return;
    }
    if (!target.closest('#compare-question')) return;
    const paired = window.lfqaGoldFor;
    if (typeof paired !== 'string' || (target.value || '').trim() === paired) return;
    window.lfqaGoldFor = null;
    const gold = document.querySelector('#compare-gold textarea, #compare-gold input');
    if (gold && gold.value) {
      gold.value = '';
      gold.dispatchEvent(new Event('input', {bubbles: true}));  // Gradio's value follows the box
    }
  }, true);
  return [];
}
