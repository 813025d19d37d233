// Calls to pglink's public ARM API and identity admin API with the signed-in user's token.

// V holds the api-versions the portal speaks: the newest each provider serves.
export const V = {
  postgresql: '2025-08-01',
  network: '2024-10-01',
  resources: '2025-04-01',
  authorization: '2022-04-01',
  insights: '2015-04-01',
  privatedns: '2020-06-01',
};

// ApiError is an ARM (or Graph) error answer: its HTTP status, code and message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message ? `${code}: ${message}` : code);
    this.status = status;
    this.code = code;
    this.detail = message;
  }
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

export class API {
  constructor(auth, onSignedOut) {
    this.auth = auth;
    this.onSignedOut = onSignedOut;
  }

  // url returns path with api-version added unless it has one.
  url(path, version) {
    if (/[?&]api-version=/.test(path) || !version) return path;
    return path + (path.includes('?') ? '&' : '?') + 'api-version=' + version;
  }

  // call sends one request and returns {status, data, headers}; errors throw ApiError.
  async call(method, path, {version, body, headers} = {}) {
    const url = this.url(path, version);
    for (let attempt = 0; ; attempt++) {
      let token;
      try {
        token = await this.auth.accessToken(attempt > 0);
      } catch (e) {
        this.auth.clear();
        this.onSignedOut();
        throw new ApiError(401, 'Unauthorized', e.message);
      }
      const init = {method, headers: {...headers, Authorization: `Bearer ${token}`}, cache: 'no-store'};
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const r = await fetch(url, init);
      if (r.status === 401 && attempt === 0) continue; // the token was revoked or expired: refresh once
      const text = await r.text();
      let data = null;
      try { data = text ? JSON.parse(text) : null; } catch { data = {message: text}; }
      if (r.status === 401) {
        this.auth.clear();
        this.onSignedOut();
        throw new ApiError(401, 'Unauthorized', 'Your session has ended. Sign in again.');
      }
      if (!r.ok) {
        const e = (data && data.error) || data || {};
        throw new ApiError(r.status, e.code || String(r.status), e.message || r.statusText);
      }
      return {status: r.status, data, headers: r.headers};
    }
  }

  async get(path, version) {
    return (await this.call('GET', path, {version})).data;
  }

  // list returns every item of a list, following nextLink.
  async list(path, version) {
    let url = this.url(path, version);
    const all = [];
    while (url) {
      const page = (await this.call('GET', url)).data || {};
      all.push(...(page.value || []));
      url = page.nextLink || page['@odata.nextLink'] || '';
      if (url) url = new URL(url, location.origin).pathname + new URL(url, location.origin).search;
    }
    return all;
  }

  // lro sends a request that may start a long-running operation and waits for it, polling
  // Azure-AsyncOperation (or Location). It returns the final resource for PUT/PATCH.
  async lro(method, path, {version, body, headers} = {}) {
    const first = await this.call(method, path, {version, body, headers});
    if (first.status !== 201 && first.status !== 202) return first.data;
    const async = first.headers.get('Azure-AsyncOperation');
    const loc = first.headers.get('Location');
    const poll = async || loc;
    if (!poll) return first.data;
    const target = new URL(poll, location.origin);
    for (let i = 0; i < 600; i++) {
      const after = Number(first.headers.get('Retry-After')) || 0;
      await sleep(Math.min(Math.max(after * 1000, 300), 2000));
      const r = await this.call('GET', target.pathname + target.search);
      if (async) {
        const st = (r.data && r.data.status) || '';
        if (st === 'Succeeded') break;
        if (st === 'Failed' || st === 'Canceled') {
          const e = (r.data && r.data.error) || {};
          throw new ApiError(200, e.code || st, e.message || `The operation ${st.toLowerCase()}.`);
        }
      } else if (r.status !== 202) {
        return r.data;
      }
    }
    if (method === 'PUT' || method === 'PATCH') return this.get(path, version);
    return null;
  }

  // permissions returns the caller's permissions at scope ([{actions, notActions}]), or [] if it
  // may not read them.
  async permissions(scope) {
    try {
      return await this.list(`${scope}/providers/Microsoft.Authorization/permissions`, V.authorization);
    } catch {
      return [];
    }
  }
}
