// Azure RBAC action matching, for enabling the buttons of what the caller may do. The server
// decides; this only mirrors its answer from GET {scope}/providers/Microsoft.Authorization/permissions.

// matches reports whether an action pattern (Azure's wildcards: '*' for any run of characters,
// case-insensitive) matches action.
export function matches(pattern, action) {
  const re = new RegExp('^' + pattern.split('*').map(escape).join('.*') + '$', 'i');
  return re.test(action);
}

function escape(s) {
  return s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
}

// can reports whether the permissions (the value of a permissions answer: [{actions, notActions}])
// grant action: some entry has an action matching it and no notAction excluding it.
export function can(perms, action) {
  if (!perms) return false;
  return perms.some(p => (p.actions || []).some(a => matches(a, action)) &&
    !(p.notActions || []).some(n => matches(n, action)));
}

// reason returns why the caller may not do what needs the actions (all of them), or '' if
// it may.
export function reason(perms, actions) {
  if (perms === undefined) return 'Checking your permissions…';
  const missing = actions.filter(a => !can(perms, a));
  if (missing.length === 0) return '';
  return `You do not have permission: this needs ${missing.join(' and ')}.`;
}
