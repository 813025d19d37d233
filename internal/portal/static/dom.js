// Small DOM helpers: elements are built with text nodes only, never from HTML strings.

// h makes an element: attrs set properties (on…: listeners; class, for, aria-*, data-*, role: attributes).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class' || k === 'for' || k === 'role' || k.startsWith('aria-') || k.startsWith('data-') ||
      k === 'scope' || k === 'colspan' || k === 'title' || k === 'list') el.setAttribute(k, v === true ? '' : v);
    else el[k] = v;
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// table makes a table with a caption, column headers and rows of cells; empty is shown when
// there are no rows.
export function table(caption, headers, rows, empty) {
  return h('div', {class: 'table-wrap'},
    h('table', {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map(x => h('th', {scope: 'col'}, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', {colspan: headers.length, class: 'muted'}, empty || 'None.')))));
}

// parseID splits an ARM resource ID into its parts.
export function parseID(id) {
  const seg = (id || '').split('/').filter(Boolean);
  const out = {id, name: seg[seg.length - 1] || ''};
  for (let i = 0; i + 1 < seg.length; i += 2) {
    const k = seg[i].toLowerCase();
    if (k === 'subscriptions') out.subscription = seg[i + 1];
    else if (k === 'resourcegroups') out.group = seg[i + 1];
    else if (k === 'virtualnetworks') out.vnet = seg[i + 1];
    else if (k === 'subnets') out.subnet = seg[i + 1];
  }
  return out;
}

// when formats an ISO time in the user's locale.
export function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? (iso || '') : d.toLocaleString();
}
