() => {
  // Installed once per page. Gradio 6.31 renders a few widgets that accessibility checkers
  // (axe-core) flag, and offers no option to fix them; each is fixed here as it appears:
  // - a table's search box has a placeholder but no label: it gets aria-label "Search the table";
  // - an empty plot's or file's placeholder is a <div> with aria-label and no role: role "img";
  // - a table that scrolls inside itself has nothing the Tab key reaches: its first column
  //   header becomes the grid's tab stop (the ARIA grid pattern; arrow keys go on from there).
  if (window.lfqaAccessibleWidgets) return [];
  window.lfqaAccessibleWidgets = true;
  const fix = (root) => {
    root.querySelectorAll('input.search-input:not([aria-label])').forEach((e) => e.setAttribute('aria-label', 'Search the table'));
    root.querySelectorAll('div.empty[aria-label]:not([role])').forEach((e) => e.setAttribute('role', 'img'));
    root.querySelectorAll('.virtual-table-viewport').forEach((e) => {
      const scrolls = e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1;
      const header = e.querySelector('th[role=columnheader]');
      if (scrolls && header && !e.querySelector('[tabindex="0"]')) header.setAttribute('tabindex', '0');
    });
  };
  fix(document);
  let queued = false;  // one pass per frame, however many changes came in it
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; fix(document); });
  }).observe(document.body, {childList: true, subtree: true});
  return [];
}
