(question, gold) => {
  // A gold answer filled in with its question (an example, a link) belongs to that question:
  // remember which, so that editing the question drops it (fresh_gold.js).
  window.lfqaGoldFor = (gold || '').trim() ? (question || '').trim() : null;
  return [];
}
