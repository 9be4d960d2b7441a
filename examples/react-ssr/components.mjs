// The component library: a few React components, written with createElement so that the
// example needs no build step. A page names its component and carries its props.

import { createElement as h } from 'react';

/** A study guide's index: its title and the list of its sections. */
export function GuideIndex({ title, sections }) {
  return h('main', { className: 'guide' },
    h('h1', null, title),
    h('ol', null, (sections ?? []).map((s) => h('li', { key: s }, h('a', { href: `#${s}` }, s)))));
}

/** One section of a guide. */
export function Section({ guide, title, body }) {
  return h('article', { className: 'section', 'data-guide': guide },
    h('h2', null, title),
    h('p', null, body));
}

/** A flash card. */
export function Card({ front, back }) {
  return h('div', { className: 'card' },
    h('div', { className: 'front' }, front),
    h('div', { className: 'back' }, back));
}

/** Components by the name a page gives. */
export const components = { GuideIndex, Section, Card };

/** The stylesheets each component needs: returned beside the HTML as metadata. */
export const assets = {
  GuideIndex: ['guide.css'],
  Section: ['guide.css', 'section.css'],
  Card: ['card.css'],
};
