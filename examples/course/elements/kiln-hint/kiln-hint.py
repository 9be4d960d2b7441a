"""A collapsible hint: <kiln-hint>text</kiln-hint>."""

import chevron
import lxml.html


def render(element_html, data):
    element = lxml.html.fragment_fromstring(element_html)
    text = element.text_content().strip()
    return chevron.render('<details class="kiln-hint"><summary>Hint</summary>{{text}}</details>', {"text": text})
