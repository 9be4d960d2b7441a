// The render service's pages: study guides (an index and its sections, one producer group
// per guide, as in the seed's study-guide example) and a deck of cards. `node pages.mjs N`
// prints N pages as JSON.

/** `n` pages: guides of 9 sections plus their index, then cards. */
export function makePages(n) {
  const pages = [];
  for (let g = 0; pages.length < n; g++) {
    const guide = `guide-${String(g).padStart(4, '0')}`;
    const sections = [];
    for (let s = 0; s < 9 && pages.length < n - 1; s++) {
      const title = `Section ${s + 1} of ${guide}`;
      sections.push(title);
      pages.push({
        key: `guides/${guide}/s${s}`,
        group: guide,
        props: { component: 'Section', guide, title, body: `What ${guide} says in part ${s + 1}.` },
      });
    }
    pages.push({ key: `guides/${guide}/index`, group: guide, props: { component: 'GuideIndex', title: guide, sections } });
    if (g % 3 === 2 && pages.length < n) {
      pages.push({ key: `cards/${g}`, group: 'cards', props: { component: 'Card', front: `Q${g}`, back: `A${g}` } });
    }
  }
  return pages.slice(0, n);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(makePages(Number(process.argv[2] ?? 100))));
}
