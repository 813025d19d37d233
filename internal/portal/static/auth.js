// Sign-in for the portal, a public client: the authorization code flow with PKCE (S256) against
// pglink's identity provider, done in the browser. Tokens live in this tab's sessionStorage.

// CLIENT_ID names the portal to the identity provider (any client id is a public client there).
export const CLIENT_ID = 'c44b4083-3bb0-49c1-b47d-974e53cbdf3c';

const SESSION = 'pglink.session';
const PENDING = 'pglink.pkce';
const TENANT = 'pglink.tenant';

function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(n) {
  return b64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function s256(text) {
  const d = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return b64url(new Uint8Array(d));
}

// claims returns the payload of a JWT, or {}.
export function claims(jwt) {
  try {
    const p = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(decodeURIComponent(escape(atob(p))));
  } catch {
    return {};
  }
}

export class Auth {
  constructor() {
    this.session = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
    this.refreshing = null;
  }

  get signedIn() { return this.session !== null; }

  scope() { return `${location.origin}/.default openid profile offline_access`; }

  redirectURI() { return location.origin + '/'; }

  // tenant discovers the tenant from the API's 401 challenge (authorization_uri="{authority}/{tenant}").
  async tenant() {
    let t = sessionStorage.getItem(TENANT);
    if (t) return t;
    t = 'organizations';
    try {
      const r = await fetch('/subscriptions?api-version=2022-12-01', {cache: 'no-store'});
      const m = /authorization_uri="([^"]+)"/.exec(r.headers.get('WWW-Authenticate') || '');
      if (m) {
        const seg = new URL(m[1]).pathname.split('/').filter(Boolean);
        if (seg.length) t = seg[seg.length - 1];
      }
    } catch { /* keep organizations */ }
    sessionStorage.setItem(TENANT, t);
    return t;
  }

  // signIn sends the browser to the identity provider's sign-in page.
  async signIn() {
    const tenant = await this.tenant();
    const verifier = randomString(32);
    const state = randomString(16);
    sessionStorage.setItem(PENDING, JSON.stringify({verifier, state, hash: location.hash}));
    const q = new URLSearchParams({
      client_id: CLIENT_ID, response_type: 'code', redirect_uri: this.redirectURI(), scope: this.scope(),
      state, code_challenge: await s256(verifier), code_challenge_method: 'S256', response_mode: 'query',
    });
    location.assign(`/${encodeURIComponent(tenant)}/oauth2/v2.0/authorize?${q}`);
  }

  // completeSignIn redeems the code the identity provider sent back, if this page load is its
  // redirect. It returns whether it was.
  async completeSignIn() {
    const p = new URLSearchParams(location.search);
    if (!p.has('code') && !p.has('error')) return false;
    const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
    sessionStorage.removeItem(PENDING);
    history.replaceState(null, '', '/' + (pending && pending.hash ? pending.hash : ''));
    if (p.has('error')) throw new Error(p.get('error_description') || p.get('error'));
    if (!pending || pending.state !== p.get('state')) {
      throw new Error('The sign-in answer does not match a sign-in started here. Sign in again.');
    }
    await this.token({grant_type: 'authorization_code', client_id: CLIENT_ID, code: p.get('code'),
      redirect_uri: this.redirectURI(), code_verifier: pending.verifier});
    return true;
  }

  async token(form) {
    const tenant = await this.tenant();
    const r = await fetch(`/${encodeURIComponent(tenant)}/oauth2/v2.0/token`, {
      method: 'POST', body: new URLSearchParams(form), cache: 'no-store',
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      this.clear();
      throw new Error(body.error_description || body.error || `token endpoint answered ${r.status}`);
    }
    this.session = {
      accessToken: body.access_token, refreshToken: body.refresh_token || (this.session && this.session.refreshToken),
      expiresAt: Date.now() + (Number(body.expires_in) || 3600) * 1000,
    };
    sessionStorage.setItem(SESSION, JSON.stringify(this.session));
  }

  // accessToken returns a token valid for a minute at least, refreshing it (rotating the refresh
  // token) when needed; force refreshes it anyway.
  async accessToken(force) {
    if (!this.session) throw new Error('Not signed in.');
    if (!force && this.session.expiresAt - Date.now() > 60000) return this.session.accessToken;
    if (!this.session.refreshToken) throw new Error('Your session has expired. Sign in again.');
    if (!this.refreshing) {
      this.refreshing = this.token({grant_type: 'refresh_token', client_id: CLIENT_ID,
        refresh_token: this.session.refreshToken, scope: this.scope()}).finally(() => { this.refreshing = null; });
    }
    await this.refreshing;
    return this.session.accessToken;
  }

  // signOut revokes the session (its refresh token and access tokens) and forgets it.
  async signOut() {
    const s = this.session;
    this.clear();
    if (s && s.refreshToken) {
      const tenant = await this.tenant();
      await fetch(`/${encodeURIComponent(tenant)}/oauth2/v2.0/logout`, {
        method: 'POST', body: new URLSearchParams({refresh_token: s.refreshToken, client_id: CLIENT_ID}),
        redirect: 'manual', cache: 'no-store',
      }).catch(() => {});
    }
  }

  clear() {
    this.session = null;
    sessionStorage.removeItem(SESSION);
  }
}
