// The pglink portal: a single page that signs in with PKCE and calls the public ARM API.
import {Auth, claims} from './auth.js';
import {API, V} from './api.js';
import {reason} from './perms.js';
import {h, table, parseID, when} from './dom.js';

const auth = new Auth();
const api = new API(auth, () => showSignIn('Your session has ended. Sign in again.'));
const main = document.getElementById('main');
const topnav = document.getElementById('topnav');
const identity = document.getElementById('identity');
const signoutButton = document.getElementById('signout');
const notes = document.getElementById('notifications');
const dlg = document.getElementById('dialog');

// POLL_MS is how often the current view is reloaded, so changes made elsewhere show.
const POLL_MS = 3000;

const A = {
  serverWrite: 'Microsoft.DBforPostgreSQL/flexibleServers/write',
  start: 'Microsoft.DBforPostgreSQL/flexibleServers/start/action',
  stop: 'Microsoft.DBforPostgreSQL/flexibleServers/stop/action',
  restart: 'Microsoft.DBforPostgreSQL/flexibleServers/restart/action',
  ruleWrite: 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules/write',
  ruleDelete: 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules/delete',
  connWrite: 'Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/write',
  connDelete: 'Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnections/delete',
  approve: 'Microsoft.DBforPostgreSQL/flexibleServers/privateEndpointConnectionsApproval/action',
  peWrite: 'Microsoft.Network/privateEndpoints/write',
};

// ---- notifications

// notify shows a notification and returns it: kind is 'info' (an operation in progress),
// 'success' or 'error' (an alert). A result passes its operation's progress notification as
// `progress`, which then leaves, once it has been seen for 3 s. A success leaves after 15 s,
// an alert after 2 minutes, a progress notification after a minute at most, any of them
// sooner when dismissed: notifications cover the page only while they have news.
function notify(kind, text, progress) {
  const span = h('span', {class: 'text'});
  const n = h('div', {class: `note ${kind}`, role: kind === 'error' ? 'alert' : 'status'}, span,
    h('button', {type: 'button', class: 'close', 'aria-label': 'Dismiss notification', onclick: () => n.remove()}, '×'));
  n.shown = Date.now();
  notes.prepend(n);
  // Set the text once the live region is in the page, so screen readers announce it.
  setTimeout(() => { span.textContent = text; }, 20);
  while (notes.children.length > 8) notes.lastChild.remove();
  setTimeout(() => n.remove(), {info: 60000, success: 15000}[kind] || 120000);
  if (progress) setTimeout(() => progress.remove(), Math.max(0, progress.shown + 3000 - Date.now()));
  return n;
}

// ---- dialog

// ask opens the confirmation dialog and resolves to {description} when confirmed, null otherwise.
function ask({title, text, description, confirm}) {
  document.getElementById('dialog-title').textContent = title;
  document.getElementById('dialog-text').textContent = text;
  document.getElementById('dialog-description-field').hidden = !description;
  const box = document.getElementById('dialog-description');
  box.value = '';
  document.getElementById('dialog-confirm').textContent = confirm || 'Yes';
  const opener = document.activeElement;
  return new Promise(resolve => {
    const onClose = () => {
      dlg.removeEventListener('close', onClose);
      resolve(dlg.returnValue === 'confirm' ? {description: box.value.trim()} : null);
      if (opener && opener.isConnected) opener.focus();
    };
    dlg.returnValue = '';
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    (description ? box : document.getElementById('dialog-confirm')).focus();
  });
}

document.getElementById('dialog-cancel').addEventListener('click', () => dlg.close('cancel'));
// Keep Tab and Shift+Tab inside the open dialog.
dlg.addEventListener('keydown', e => {
  if (e.key !== 'Tab') return;
  const f = [...dlg.querySelectorAll('button, textarea, input, select')].filter(x => !x.disabled && x.offsetParent !== null);
  if (!f.length) return;
  const first = f[0], last = f[f.length - 1];
  if (e.shiftKey && document.activeElement === first) { last.focus(); e.preventDefault(); }
  else if (!e.shiftKey && document.activeElement === last) { first.focus(); e.preventDefault(); }
});

// ---- views and live updates

let view = null; // {load(): data, render(data): Node, title}
let lastJSON = '';
let loading = false;
let timer = null;

function setView(v) {
  view = v;
  lastJSON = '';
  document.title = `${v.title} – pglink portal`;
  main.replaceChildren(h('p', {class: 'muted'}, 'Loading…'));
  refresh(true).then(() => {
    const t = document.getElementById('view-title');
    if (t) t.focus();
  });
  clearInterval(timer);
  timer = setInterval(() => { if (!document.hidden) refresh(false); }, POLL_MS);
}

// refresh reloads the current view and renders it again if anything changed.
async function refresh(force) {
  const v = view;
  if (!v || (loading && !force) || (!force && (dlg.open || v.busy))) return;
  loading = true;
  try {
    const data = await v.load();
    if (v !== view) return;
    const json = JSON.stringify(data);
    if (json === lastJSON && !force) return;
    lastJSON = json;
    rerender(v, data);
  } catch (e) {
    if (v === view && force) main.replaceChildren(h('h1', {id: 'view-title', tabindex: -1}, v.title), h('p', {role: 'alert'}, e.message));
  } finally {
    loading = false;
  }
}

// rerender draws the view again from data, keeping the focused control.
function rerender(v, data) {
  v.data = data;
  const focused = document.activeElement && main.contains(document.activeElement) ? document.activeElement.id : '';
  main.replaceChildren(v.render(data));
  if (focused) {
    const el = document.getElementById(focused);
    if (el) el.focus();
  }
}

function redraw() {
  if (view && view.data) rerender(view, view.data);
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  const hash = location.hash || '#/';
  const [path, query] = hash.slice(1).split('?');
  const q = new URLSearchParams(query || '');
  for (const a of topnav.querySelectorAll('a')) {
    const p = a.getAttribute('href').slice(1);
    if (p === path || (p === '/' && path === '/server')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (path === '/server' && q.get('id')) setView(serverView(q.get('id'), q.get('tab') || 'overview'));
  else if (path === '/network') setView(networkView());
  else if (path === '/activity') setView(activityView());
  else setView(resourcesView());
}

// ---- shared pieces

// action makes a button (a form's submit button without onclick), disabled with its reason
// shown beside it when why is not ''.
function action(id, label, why, onclick, primary) {
  const b = h('button', {type: onclick ? 'button' : 'submit', id, class: primary ? 'primary' : '', disabled: !!why, onclick,
    'aria-describedby': why ? `${id}-why` : undefined, title: why || undefined}, label);
  return h('span', {class: 'action'}, b, why ? h('span', {id: `${id}-why`, class: 'why'}, why) : null);
}

function stateBadge(s) {
  return h('span', {class: `state state-${String(s || 'unknown').toLowerCase()}`}, s || 'Unknown');
}

function serverLink(id, name, tab) {
  return h('a', {href: `#/server?id=${encodeURIComponent(id)}${tab ? '&tab=' + tab : ''}`}, name);
}

async function subscriptions() {
  return api.list('/subscriptions', V.resources);
}

// optional runs a list and turns an error into {error} so one denied list does not hide the others.
async function optional(p) {
  try { return await p; } catch (e) { return {error: e.message}; }
}

function listOr(x, f) {
  return x && x.error ? h('p', {class: 'why', role: 'note'}, x.error) : f(x || []);
}

// ---- resources

function resourcesView() {
  return {
    title: 'Resources',
    async load() {
      const subs = await subscriptions();
      const per = await Promise.all(subs.map(async s => {
        const base = `/subscriptions/${s.subscriptionId}`;
        const [groups, servers, vnets, pes] = await Promise.all([
          optional(api.list(`${base}/resourcegroups`, V.resources)),
          optional(api.list(`${base}/providers/Microsoft.DBforPostgreSQL/flexibleServers`, V.postgresql)),
          optional(api.list(`${base}/providers/Microsoft.Network/virtualNetworks`, V.network)),
          optional(api.list(`${base}/providers/Microsoft.Network/privateEndpoints`, V.network)),
        ]);
        return {s, groups, servers, vnets, pes};
      }));
      return {subs: per.map(x => ({id: x.s.subscriptionId, name: x.s.displayName, state: x.s.state})), per};
    },
    render(d) {
      const out = [h('h1', {id: 'view-title', tabindex: -1}, 'Resources'),
        table('Subscriptions', ['Name', 'Subscription ID', 'State'],
          d.subs.map(s => h('tr', {}, h('td', {}, s.name), h('td', {class: 'mono'}, s.id), h('td', {}, s.state))))];
      for (const p of d.per) {
        out.push(h('h2', {}, `Subscription ${p.s.displayName || p.s.subscriptionId}`));
        out.push(listOr(p.groups, gs => table('Resource groups', ['Name', 'Location', 'State'],
          gs.map(g => h('tr', {}, h('td', {}, g.name), h('td', {}, g.location), h('td', {}, g.properties && g.properties.provisioningState))))));
        out.push(listOr(p.servers, ss => table('Azure Database for PostgreSQL flexible servers', ['Name', 'Resource group', 'Status', 'Version', 'Location'],
          ss.map(s => h('tr', {}, h('td', {}, serverLink(s.id, s.name)), h('td', {}, parseID(s.id).group),
            h('td', {}, stateBadge(s.properties.state)), h('td', {}, s.properties.version), h('td', {}, s.location))), 'No servers.')));
        out.push(listOr(p.vnets, vs => table('Virtual networks', ['Name', 'Resource group', 'Address space', 'Subnets'],
          vs.map(v => h('tr', {}, h('td', {}, v.name), h('td', {}, parseID(v.id).group),
            h('td', {class: 'mono'}, ((v.properties.addressSpace || {}).addressPrefixes || []).join(', ')),
            h('td', {}, (v.properties.subnets || []).map(s => s.name).join(', ')))), 'No virtual networks.')));
        out.push(listOr(p.pes, ps => peTable(ps)));
      }
      return h('div', {}, out);
    },
  };
}

// peConnections returns a private endpoint's connections (manual and automatic).
function peConnections(pe) {
  const p = pe.properties || {};
  return [...(p.manualPrivateLinkServiceConnections || []), ...(p.privateLinkServiceConnections || [])];
}

// peTable lists private endpoints; with dns, also their DNS configuration (customDnsConfigs:
// the names a client resolves to reach the endpoint, and the addresses they resolve to).
function peTable(ps, dns) {
  const headers = ['Name', 'Resource group', 'Network', 'Target', 'Connection state', 'Request message', 'Description'];
  if (dns) headers.push('DNS configuration');
  return table('Private endpoints', headers,
    ps.map(pe => {
      const c = peConnections(pe)[0] || {properties: {}};
      const st = c.properties.privateLinkServiceConnectionState || {};
      const sub = parseID(((pe.properties || {}).subnet || {}).id);
      const cells = [h('td', {}, pe.name), h('td', {}, parseID(pe.id).group), h('td', {}, sub.vnet ? `${sub.vnet} / ${sub.subnet}` : ''),
        h('td', {}, parseID(c.properties.privateLinkServiceId).name), h('td', {}, stateBadge(st.status)),
        h('td', {}, c.properties.requestMessage || ''), h('td', {}, st.description || '')];
      if (dns) {
        const cfg = (pe.properties || {}).customDnsConfigs || [];
        cells.push(h('td', {class: 'mono'}, cfg.map(d => `${d.fqdn} → ${(d.ipAddresses || []).join(', ')}`).join('; ')));
      }
      return h('tr', {}, cells);
    }), 'No private endpoints.');
}

// dnsTable lists the record sets of the private DNS zones.
function dnsTable(rs) {
  const values = p => [
    ...(p.aRecords || []).map(r => r.ipv4Address),
    ...(p.aaaaRecords || []).map(r => r.ipv6Address),
    ...(p.cnameRecord ? [p.cnameRecord.cname] : []),
    ...(p.mxRecords || []).map(r => `${r.preference} ${r.exchange}`),
    ...(p.ptrRecords || []).map(r => r.ptrdname),
    ...(p.srvRecords || []).map(r => `${r.priority} ${r.weight} ${r.port} ${r.target}`),
    ...(p.txtRecords || []).map(r => (r.value || []).join('')),
    ...(p.soaRecord ? [`${p.soaRecord.host} ${p.soaRecord.email}`] : []),
  ];
  return table('Private DNS zones and their records', ['Zone', 'Resource group', 'Name', 'Type', 'TTL', 'Records'],
    rs.map(({zone, set}) => {
      const p = set.properties || {};
      return h('tr', {}, h('td', {}, zone.name), h('td', {}, parseID(zone.id).group), h('td', {}, set.name),
        h('td', {}, (set.type || '').split('/').pop()), h('td', {}, String(p.ttl ?? '')),
        h('td', {class: 'mono'}, values(p).join(', ')));
    }), 'No private DNS zones.');
}

// ---- server

function serverView(id, tab) {
  const v = {
    title: parseID(id).name,
    selected: new Set(),
    rule: {name: '', start: '', end: '', editing: false},
    busy: false,
    async load() {
      const [server, perms] = await Promise.all([api.get(id, V.postgresql), api.permissions(id)]);
      const [conns, rules] = await Promise.all([
        optional(api.list(`${id}/privateEndpointConnections`, V.postgresql)),
        optional(api.list(`${id}/firewallRules`, V.postgresql)),
      ]);
      const endpoints = {};
      if (!conns.error) {
        await Promise.all(conns.map(async c => {
          const pid = c.properties.privateEndpoint && c.properties.privateEndpoint.id;
          if (!pid) return;
          try {
            const pe = await api.get(pid, V.network);
            const mine = peConnections(pe).find(x => (x.properties.privateLinkServiceId || '').toLowerCase() === id.toLowerCase());
            endpoints[pid] = {subnet: (pe.properties.subnet || {}).id, message: mine ? mine.properties.requestMessage || '' : ''};
          } catch (e) {
            endpoints[pid] = {error: e.code};
          }
        }));
      }
      return {server, perms, conns, rules, endpoints, open: await openSessions(id)};
    },
    render(d) {
      const s = d.server;
      const ready = s.properties.state === 'Ready';
      const showNet = tab === 'networking' && ready;
      const netWhy = ready ? '' : `Networking is available only when the server's status is Ready; it is ${s.properties.state || 'unknown'}.`;
      const menu = h('nav', {class: 'resource-menu', 'aria-label': 'Resource menu'},
        h('button', {type: 'button', id: 'menu-overview', 'aria-current': showNet ? undefined : 'page',
          onclick: () => go(`#/server?id=${encodeURIComponent(id)}&tab=overview`)}, 'Overview'),
        h('button', {type: 'button', id: 'menu-networking', disabled: !ready, 'aria-current': showNet ? 'page' : undefined,
          'aria-describedby': netWhy ? 'menu-networking-why' : undefined, title: netWhy || undefined,
          onclick: () => go(`#/server?id=${encodeURIComponent(id)}&tab=networking`)}, 'Networking'),
        netWhy ? h('p', {id: 'menu-networking-why', class: 'why'}, netWhy) : null);
      const pid = parseID(id);
      return h('div', {},
        h('p', {class: 'crumbs'}, h('a', {href: '#/'}, 'Resources'), ` / ${pid.group} / `),
        h('h1', {id: 'view-title', tabindex: -1}, s.name),
        h('p', {class: 'muted'}, 'Azure Database for PostgreSQL flexible server'),
        h('div', {class: 'resource'}, menu, h('div', {class: 'pane'}, showNet ? networking(v, d) : overview(v, d))));
    },
  };
  return v;
}

async function run(v, pending, done, failed, f) {
  const progress = notify('info', pending);
  v.busy = true;
  try {
    await f();
    notify('success', done, progress);
    return true;
  } catch (e) {
    notify('error', `${failed}: ${e.message}`, progress);
    return false;
  } finally {
    v.busy = false;
    refresh(true);
  }
}

function overview(v, d) {
  const s = d.server;
  const p = s.properties;
  const state = p.state;
  const serverAct = (verb, act, ok, notWhy) => {
    const why = reason(d.perms, [act]) || (ok ? '' : notWhy);
    return action(`server-${verb.toLowerCase()}`, verb, why, () => {
      const ing = {Start: 'Starting', Stop: 'Stopping', Restart: 'Restarting'}[verb];
      const ed = {Start: 'started', Stop: 'stopped', Restart: 'restarted'}[verb];
      run(v, `${ing} server ${s.name}…`, `Successfully ${ed} server ${s.name}.`, `Failed to ${verb.toLowerCase()} server ${s.name}`,
        () => api.lro('POST', `${s.id}/${verb.toLowerCase()}`, {version: V.postgresql}));
    });
  };
  const row = (k, val) => [h('dt', {}, k), h('dd', {}, val === undefined || val === '' ? '—' : val)];
  return h('section', {'aria-labelledby': 'overview-title'},
    h('h2', {id: 'overview-title'}, 'Overview'),
    h('div', {class: 'toolbar', role: 'toolbar', 'aria-label': 'Server actions'},
      serverAct('Start', A.start, state === 'Stopped', `Start needs a Stopped server; it is ${state}.`),
      serverAct('Stop', A.stop, state === 'Ready', `Stop needs a Ready server; it is ${state}.`),
      serverAct('Restart', A.restart, state === 'Ready', `Restart needs a Ready server; it is ${state}.`)),
    h('dl', {class: 'essentials'},
      row('Status', h('span', {id: 'server-status'}, stateBadge(state))),
      row('PostgreSQL version', p.version),
      row('Server name (FQDN)', p.fullyQualifiedDomainName),
      row('Data plane address', h('span', {class: 'mono'}, (p.dataPlane && p.dataPlane.address) || '—')),
      row('Administrator login', p.administratorLogin),
      row('Public network access', (p.network && p.network.publicNetworkAccess) || '—'),
      row('Resource group', parseID(s.id).group),
      row('Location', s.location),
      row('Compute', s.sku ? `${s.sku.name} (${s.sku.tier})` : '')));
}

function networking(v, d) {
  const s = d.server;
  const p = s.properties;
  return h('section', {'aria-labelledby': 'networking-title'},
    h('h2', {id: 'networking-title'}, 'Networking'),
    publicAccess(v, d, s, p),
    firewall(v, d, s),
    connections(v, d, s));
}

function publicAccess(v, d, s, p) {
  const why = reason(d.perms, [A.serverWrite]);
  const on = (p.network && p.network.publicNetworkAccess) === 'Enabled';
  return h('section', {'aria-labelledby': 'public-title', class: 'block'},
    h('h3', {id: 'public-title'}, 'Public access'),
    h('div', {class: 'field inline'},
      h('input', {type: 'checkbox', id: 'public-access', checked: on, disabled: !!why, role: 'switch',
        'aria-describedby': why ? 'public-access-why' : undefined,
        onchange: e => {
          const want = e.target.checked ? 'Enabled' : 'Disabled';
          const verb = e.target.checked ? 'enable' : 'disable';
          run(v, `${want === 'Enabled' ? 'Enabling' : 'Disabling'} public access to ${s.name}…`,
            `Successfully ${verb}d public access to ${s.name}.`, `Failed to ${verb} public access to ${s.name}`,
            () => api.lro('PATCH', s.id, {version: V.postgresql, body: {properties: {network: {publicNetworkAccess: want}}}}));
        }}),
      h('label', {for: 'public-access'}, 'Allow public access to this server through the internet')),
    d.open.error ? null : h('p', {id: 'public-sessions', class: 'muted'},
      `${d.open.public} open session${d.open.public === 1 ? '' : 's'} through the public endpoint${on && d.open.public ? ' (disabling public access cuts them)' : ''}.`),
    why ? h('p', {id: 'public-access-why', class: 'why'}, why) : null);
}

function firewall(v, d, s) {
  const wWhy = reason(d.perms, [A.ruleWrite]);
  const dWhy = reason(d.perms, [A.ruleDelete]);
  const r = v.rule;
  const rows = listOr(d.rules, rules => table('Firewall rules', ['Firewall rule name', 'Start IP address', 'End IP address', 'Actions'],
    rules.map(x => h('tr', {},
      h('td', {}, x.name), h('td', {class: 'mono'}, x.properties.startIpAddress), h('td', {class: 'mono'}, x.properties.endIpAddress),
      h('td', {},
        h('button', {type: 'button', id: `rule-edit-${x.name}`, disabled: !!wWhy, title: wWhy || undefined, 'aria-label': `Edit firewall rule ${x.name}`,
          onclick: () => {
            Object.assign(r, {name: x.name, start: x.properties.startIpAddress, end: x.properties.endIpAddress, editing: true});
            redraw();
            document.getElementById('rule-start').focus();
          }}, 'Edit'), ' ',
        h('button', {type: 'button', id: `rule-delete-${x.name}`, disabled: !!dWhy, title: dWhy || undefined, 'aria-label': `Delete firewall rule ${x.name}`,
          onclick: async () => {
            if (!await ask({title: 'Delete firewall rule', text: `Delete firewall rule ${x.name}?`, confirm: 'Delete'})) return;
            run(v, `Deleting firewall rule ${x.name}…`, `Successfully deleted firewall rule ${x.name}.`, `Failed to delete firewall rule ${x.name}`,
              () => api.lro('DELETE', x.id, {version: V.postgresql}));
          }}, 'Delete')))), 'No firewall rules.'));
  const field = (key, id, label, extra) => h('div', {class: 'field'}, h('label', {for: id}, label),
    h('input', Object.assign({id, value: r[key], required: true, disabled: !!wWhy, oninput: e => { r[key] = e.target.value; }}, extra || {})));
  const form = h('form', {class: 'row-form', 'aria-label': r.editing ? 'Edit firewall rule' : 'Add firewall rule',
    onsubmit: e => {
      e.preventDefault();
      const name = r.name.trim();
      const body = {properties: {startIpAddress: r.start.trim(), endIpAddress: r.end.trim()}};
      const verb = r.editing ? 'saved' : 'added';
      Object.assign(r, {name: '', start: '', end: '', editing: false});
      run(v, `Saving firewall rule ${name}…`, `Successfully ${verb} firewall rule ${name}.`, `Failed to save firewall rule ${name}`,
        () => api.lro('PUT', `${s.id}/firewallRules/${encodeURIComponent(name)}`, {version: V.postgresql, body}));
    }},
  field('name', 'rule-name', 'Firewall rule name', {readOnly: r.editing, pattern: '[A-Za-z0-9_\\-]+'}),
  field('start', 'rule-start', 'Start IP address', {pattern: '[0-9.]+'}),
  field('end', 'rule-end', 'End IP address', {pattern: '[0-9.]+'}),
  h('div', {class: 'buttons'},
    h('button', {type: 'submit', id: 'rule-save', class: 'primary', disabled: !!wWhy}, r.editing ? 'Save firewall rule' : 'Add firewall rule'),
    r.editing ? h('button', {type: 'button', id: 'rule-cancel', onclick: () => { Object.assign(r, {name: '', start: '', end: '', editing: false}); redraw(); }}, 'Cancel') : null));
  return h('section', {'aria-labelledby': 'firewall-title', class: 'block'},
    h('h3', {id: 'firewall-title'}, 'Firewall rules'),
    rows, form, wWhy ? h('p', {class: 'why'}, wWhy) : null, dWhy && dWhy !== wWhy ? h('p', {class: 'why'}, dWhy) : null);
}

const VERBS = {
  approve: {Verb: 'Approve', ing: 'Approving', ed: 'approved', status: 'Approved', actions: [A.connWrite, A.approve]},
  reject: {Verb: 'Reject', ing: 'Rejecting', ed: 'rejected', status: 'Rejected', actions: [A.connWrite, A.approve]},
  remove: {Verb: 'Remove', ing: 'Removing', ed: 'removed', status: '', actions: [A.connDelete]},
};

// openSessions counts a server's open client sessions: through its public endpoint and per
// private endpoint connection (lower-case id). Only counts, so that traffic alone does not
// re-render the view; {error} when the caller may not list them or the node is down.
async function openSessions(id) {
  const list = await optional(api.list(`${id}/sessions`, V.postgresql));
  if (list.error) return {error: list.error};
  const open = {public: 0, byConn: {}};
  for (const x of list) {
    const c = x.properties.privateEndpointConnection;
    if (x.properties.kind === 'Public') open.public++;
    else if (c) open.byConn[c.id.toLowerCase()] = (open.byConn[c.id.toLowerCase()] || 0) + 1;
  }
  return open;
}

// cutText says how many open sessions ending these connections would cut, or '' if none or
// unknown.
function cutText(open, chosen) {
  if (!open || open.error) return '';
  const n = chosen.reduce((sum, c) => sum + (open.byConn[c.id.toLowerCase()] || 0), 0);
  return n ? ` This cuts ${n} open session${n > 1 ? 's' : ''} through ${chosen.length > 1 ? 'them' : 'it'}.` : '';
}

function connections(v, d, s) {
  if (d.conns.error) {
    return h('section', {class: 'block'}, h('h3', {}, 'Private endpoint connections'), h('p', {class: 'why'}, d.conns.error));
  }
  const conns = d.conns;
  for (const id of [...v.selected]) if (!conns.some(c => c.id === id)) v.selected.delete(id);
  const chosen = conns.filter(c => v.selected.has(c.id));
  const button = kind => {
    const k = VERBS[kind];
    const why = reason(d.perms, k.actions);
    const b = action(`connection-${kind}`, k.Verb, why, () => actOnConnections(v, kind, chosen, d.open), kind === 'approve');
    if (!why && !chosen.length) {
      const el = b.querySelector('button');
      el.disabled = true;
      el.setAttribute('aria-describedby', 'connection-selection');
    }
    return b;
  };
  const all = conns.length > 0 && chosen.length === conns.length;
  const rows = conns.map(c => {
    const st = c.properties.privateLinkServiceConnectionState || {};
    const peID = c.properties.privateEndpoint && c.properties.privateEndpoint.id;
    const pe = (peID && d.endpoints[peID]) || {};
    const net = parseID(pe.subnet);
    const cb = h('input', {type: 'checkbox', id: `select-${c.name}`, 'data-connection': c.name, checked: v.selected.has(c.id),
      'aria-label': `Select connection ${c.name}`,
      onchange: e => { if (e.target.checked) v.selected.add(c.id); else v.selected.delete(c.id); redraw(); }});
    return h('tr', {'data-connection': c.name, class: v.selected.has(c.id) ? 'selected' : ''},
      h('td', {}, cb),
      h('td', {}, c.name),
      h('td', {}, parseID(peID).name, net.vnet ? h('div', {class: 'muted'}, `${net.vnet} / ${net.subnet}`) : (pe.error ? h('div', {class: 'muted'}, `network not visible (${pe.error})`) : null)),
      h('td', {class: 'conn-state'}, stateBadge(st.status)),
      h('td', {class: 'conn-description'}, st.description || ''),
      h('td', {}, pe.message || ''),
      h('td', {class: 'conn-sessions'}, d.open.error ? '—' : String(d.open.byConn[c.id.toLowerCase()] || 0)));
  });
  const selectAll = h('input', {type: 'checkbox', id: 'select-all', checked: all, disabled: !conns.length, 'aria-label': 'Select all connections',
    onchange: e => { v.selected = new Set(e.target.checked ? conns.map(c => c.id) : []); redraw(); }});
  return h('section', {'aria-labelledby': 'connections-title', class: 'block'},
    h('h3', {id: 'connections-title'}, 'Private endpoint connections'),
    h('div', {class: 'toolbar', role: 'toolbar', 'aria-label': 'Private endpoint connection actions'},
      button('approve'), button('reject'), button('remove'),
      h('span', {id: 'connection-selection', class: 'muted', 'aria-live': 'polite'},
        chosen.length ? `${chosen.length} selected` : 'Select one or more connections to approve, reject or remove them.')),
    table('Private endpoint connections', [selectAll, 'Connection name', 'Private endpoint', 'State', 'Description', 'Request message', 'Open sessions'],
      rows, 'No private endpoint connections.'));
}

async function actOnConnections(v, kind, chosen, open) {
  const k = VERBS[kind];
  const names = chosen.map(c => c.name).join(', ');
  const many = chosen.length > 1;
  const answer = await ask({
    title: `${k.Verb} connection${many ? 's' : ''}`,
    text: `Do you want to ${kind} the private endpoint connection${many ? 's' : ''} ${names}?` + (kind === 'approve' ? '' : cutText(open, chosen)),
    description: true,
    confirm: 'Yes',
  });
  if (!answer) return;
  v.busy = true;
  try {
    for (const c of chosen) {
      const progress = notify('info', `${k.ing} private endpoint connection ${c.name}…`);
      try {
        if (kind === 'remove') {
          // A DELETE has no body: the description goes to the activity log in a header.
          const headers = answer.description ? {'X-Pglink-Description': encodeURIComponent(answer.description)} : {};
          await api.lro('DELETE', c.id, {version: V.postgresql, headers});
        } else {
          await api.lro('PUT', c.id, {version: V.postgresql, body: {properties: {
            privateLinkServiceConnectionState: {status: k.status, description: answer.description}}}});
        }
        v.selected.delete(c.id);
        notify('success', `Successfully ${k.ed} private endpoint connection ${c.name}.`, progress);
      } catch (e) {
        notify('error', `Failed to ${kind} private endpoint connection ${c.name}: ${e.message}`, progress);
      }
    }
  } finally {
    v.busy = false;
    refresh(true);
  }
}

// ---- network administration

function networkView() {
  const v = {
    title: 'Network administration',
    form: {name: '', group: '', subnet: '', target: '', message: ''},
    busy: false,
    async load() {
      const subs = await subscriptions();
      const per = await Promise.all(subs.map(async s => {
        const base = `/subscriptions/${s.subscriptionId}`;
        const [groups, vnets, pes, servers, zones] = await Promise.all([
          optional(api.list(`${base}/resourcegroups`, V.resources)),
          optional(api.list(`${base}/providers/Microsoft.Network/virtualNetworks`, V.network)),
          optional(api.list(`${base}/providers/Microsoft.Network/privateEndpoints`, V.network)),
          optional(api.list(`${base}/providers/Microsoft.DBforPostgreSQL/flexibleServers`, V.postgresql)),
          optional(api.list(`${base}/providers/Microsoft.Network/privateDnsZones`, V.privatedns)),
        ]);
        const perms = {};
        if (!groups.error) await Promise.all(groups.map(async g => { perms[g.name] = await api.permissions(g.id); }));
        // Each zone's record sets, for the DNS table.
        const records = zones.error ? zones : (await Promise.all(zones.map(async z => {
          const sets = await optional(api.list(`${z.id}/ALL`, V.privatedns));
          return sets.error ? [] : sets.map(r => ({zone: z, set: r}));
        }))).flat();
        return {s, groups, vnets, pes, servers, zones, records, perms};
      }));
      return {per};
    },
    render(d) {
      const out = [h('h1', {id: 'view-title', tabindex: -1}, 'Network administration')];
      for (const p of d.per) {
        out.push(listOr(p.vnets, vs => table('Virtual networks and subnets', ['Virtual network', 'Resource group', 'Location', 'Address space', 'Subnet', 'Subnet address range'],
          vs.flatMap(vn => {
            const subs = vn.properties.subnets && vn.properties.subnets.length ? vn.properties.subnets : [{name: '—', properties: {}}];
            return subs.map(sn => h('tr', {}, h('td', {}, vn.name), h('td', {}, parseID(vn.id).group), h('td', {}, vn.location),
              h('td', {class: 'mono'}, ((vn.properties.addressSpace || {}).addressPrefixes || []).join(', ')),
              h('td', {}, sn.name), h('td', {class: 'mono'}, sn.properties.addressPrefix || '')));
          }), 'No virtual networks.')));
        out.push(listOr(p.pes, ps => peTable(ps, true)));
        out.push(listOr(p.records, rs => dnsTable(rs)));
        out.push(createEndpoint(v, p));
      }
      return h('div', {}, out);
    },
  };
  return v;
}

function createEndpoint(v, p) {
  const f = v.form;
  const groups = p.groups.error ? [] : p.groups;
  const vnets = p.vnets.error ? [] : p.vnets;
  const servers = p.servers.error ? [] : p.servers;
  if (!f.group && groups.length) f.group = groups[0].name;
  const subnets = vnets.flatMap(vn => (vn.properties.subnets || []).map(sn => ({id: sn.id, label: `${vn.name} / ${sn.name}`, location: vn.location})));
  if (!f.subnet && subnets.length) f.subnet = subnets[0].id;
  const why = f.group ? reason(p.perms[f.group], [A.peWrite]) : 'There is no resource group to create it in.';
  const bind = key => e => { f[key] = e.target.value; if (key === 'group') redraw(); };
  const field = (id, label, control) => h('div', {class: 'field'}, h('label', {for: id}, label), control);
  return h('section', {'aria-labelledby': 'create-pe-title', class: 'block'},
    h('h2', {id: 'create-pe-title'}, 'Create a private endpoint'),
    h('p', {class: 'muted'}, 'A manual connection request: the owner of the server approves or rejects it.'),
    h('form', {class: 'stack', onsubmit: e => {
      e.preventDefault();
      const sn = subnets.find(x => x.id === f.subnet);
      const name = f.name.trim();
      const body = {location: sn ? sn.location : 'eastus', properties: {subnet: {id: f.subnet}, manualPrivateLinkServiceConnections: [{
        name: `${name}-conn`, properties: {privateLinkServiceId: f.target.trim(), groupIds: ['postgresqlServer'], requestMessage: f.message}}]}};
      const path = `/subscriptions/${p.s.subscriptionId}/resourceGroups/${encodeURIComponent(f.group)}/providers/Microsoft.Network/privateEndpoints/${encodeURIComponent(name)}`;
      Object.assign(f, {name: '', message: ''});
      run(v, `Creating private endpoint ${name}…`, `Successfully created private endpoint ${name}; its connection awaits approval.`,
        `Failed to create private endpoint ${name}`, () => api.lro('PUT', path, {version: V.network, body}));
    }},
    field('pe-name', 'Name', h('input', {id: 'pe-name', required: true, value: f.name, oninput: bind('name'), pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]*'})),
    field('pe-group', 'Resource group', h('select', {id: 'pe-group', onchange: bind('group')},
      groups.map(g => h('option', {value: g.name, selected: g.name === f.group}, g.name)))),
    field('pe-subnet', 'Virtual network / subnet', h('select', {id: 'pe-subnet', onchange: bind('subnet')},
      subnets.map(x => h('option', {value: x.id, selected: x.id === f.subnet}, x.label)))),
    field('pe-target', 'Resource ID of the flexible server', h('input', {id: 'pe-target', required: true, value: f.target, list: 'pe-targets',
      oninput: bind('target'), class: 'mono', placeholder: '/subscriptions/…/providers/Microsoft.DBforPostgreSQL/flexibleServers/…'})),
    h('datalist', {id: 'pe-targets'}, servers.map(s => h('option', {value: s.id}, s.name))),
    field('pe-message', 'Request message', h('textarea', {id: 'pe-message', rows: 2, maxLength: 140, value: f.message, oninput: bind('message')})),
    h('div', {class: 'buttons'}, action('pe-create', 'Create private endpoint', why, null, true))));
}

// ---- activity log

function activityView() {
  const v = {
    title: 'Activity log',
    filter: {hours: '24', resource: '', caller: ''},
    async load() {
      const subs = await subscriptions();
      const since = new Date(Date.now() - Number(v.filter.hours) * 3600e3);
      since.setSeconds(0, 0); // a stable query between polls
      const per = await Promise.all(subs.map(s => optional(api.list(
        `/subscriptions/${s.subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values?api-version=${V.insights}&$filter=` +
        encodeURIComponent(`eventTimestamp ge '${since.toISOString()}'`)))));
      return {events: per.flatMap(x => x.error ? [] : x), errors: per.filter(x => x.error).map(x => x.error)};
    },
    render(d) {
      const f = v.filter;
      const has = (val, q) => !q || String(val || '').toLowerCase().includes(q.toLowerCase());
      const events = d.events.filter(e => has(e.resourceId, f.resource) && has(e.caller, f.caller))
        .sort((a, b) => String(b.eventTimestamp).localeCompare(String(a.eventTimestamp)));
      const onText = key => e => { f[key] = e.target.value; redraw(); };
      return h('div', {},
        h('h1', {id: 'view-title', tabindex: -1}, 'Activity log'),
        h('form', {class: 'row-form', 'aria-label': 'Filters', onsubmit: e => e.preventDefault()},
          h('div', {class: 'field'}, h('label', {for: 'activity-time'}, 'Timespan'),
            h('select', {id: 'activity-time', onchange: e => { f.hours = e.target.value; refresh(true); }},
              [['1', 'Last hour'], ['6', 'Last 6 hours'], ['24', 'Last 24 hours'], ['168', 'Last week'], ['2160', 'Last 90 days']]
                .map(([val, label]) => h('option', {value: val, selected: val === f.hours}, label)))),
          h('div', {class: 'field'}, h('label', {for: 'activity-resource'}, 'Resource'),
            h('input', {id: 'activity-resource', type: 'search', value: f.resource, oninput: onText('resource'), placeholder: 'name or ID contains'})),
          h('div', {class: 'field'}, h('label', {for: 'activity-caller'}, 'Event initiated by'),
            h('input', {id: 'activity-caller', type: 'search', value: f.caller, oninput: onText('caller'), placeholder: 'caller contains'}))),
        d.errors.map(e => h('p', {class: 'why'}, e)),
        table(`Events (${events.length})`, ['Time', 'Operation', 'Status', 'Resource', 'Event initiated by'],
          events.slice(0, 500).map(e => h('tr', {},
            h('td', {}, when(e.eventTimestamp)), h('td', {}, (e.operationName || {}).localizedValue || (e.operationName || {}).value),
            h('td', {}, (e.status || {}).value), h('td', {class: 'mono'}, e.resourceId), h('td', {}, e.caller))), 'No events match.'));
    },
  };
  return v;
}

// ---- sign-in

function showSignIn(message) {
  clearInterval(timer);
  view = null;
  topnav.hidden = true;
  signoutButton.hidden = true;
  identity.textContent = '';
  document.title = 'Sign in – pglink portal';
  main.replaceChildren(h('section', {class: 'signin'},
    h('h1', {id: 'view-title', tabindex: -1}, 'pglink portal'),
    message ? h('p', {role: 'status', class: 'note-inline'}, message) : null,
    h('p', {}, 'Sign in with your pglink account to manage PostgreSQL flexible servers, their networking and private endpoints.'),
    h('button', {type: 'button', id: 'signin', class: 'primary', onclick: () => auth.signIn()}, 'Sign in')));
}

async function showIdentity() {
  const c = claims(auth.session.accessToken);
  identity.textContent = c.upn || c.preferred_username || c.unique_name || c.name || '';
  try {
    const me = await api.get('/v1.0/me');
    const upn = me.userPrincipalName || me.appId || '';
    identity.textContent = me.displayName && me.displayName !== upn ? `${me.displayName} (${upn})` : upn;
  } catch { /* keep the token's name */ }
}

signoutButton.addEventListener('click', async () => {
  await auth.signOut();
  showSignIn('You have signed out.');
});

async function boot() {
  try {
    await auth.completeSignIn();
  } catch (e) {
    showSignIn(e.message);
    return;
  }
  if (!auth.signedIn) {
    showSignIn();
    return;
  }
  topnav.hidden = false;
  signoutButton.hidden = false;
  showIdentity();
  window.addEventListener('hashchange', () => { if (auth.signedIn) route(); });
  route();
}

boot();
