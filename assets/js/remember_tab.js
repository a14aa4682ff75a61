() => {
  // The open tab goes into the page's address (?tab=...), so that a link opens it again; on a
  // phone, where the tab bar scrolls sideways, the open tab is scrolled into the bar's view.
  const names = __TAB_IDS__;
  setTimeout(() => {
    const tab = document.querySelector('#tabs [role=tab][aria-selected=true]');
    const id = tab && names[tab.innerText.trim()];
    if (!id) return;
    tab.scrollIntoView({block: 'nearest', inline: 'nearest'});
    const url = new URL(window.location.href);
    url.searchParams.set('tab', id);
    window.history.replaceState(null, '', url);
  }, 0);
  return [];
}
