// Rendering one page: its component with its props, to HTML with react-dom/server.

import { createElement } from 'react';
import { renderToString } from 'react-dom/server';

import { assets, components } from './components.mjs';

/** Thrown for a page the renderer cannot render (an unknown component): a 422. */
export class BadPage extends Error {}

/** `{html, assets}` of `props` (`{component, ...componentProps}`). */
export function render(props) {
  const { component, ...rest } = props ?? {};
  const c = components[component];
  if (c === undefined) throw new BadPage(`no component ${JSON.stringify(component)}`);
  return { html: `<!doctype html>${renderToString(createElement(c, rest))}`, assets: assets[component] };
}
