// scorehook score builder: one plain script, no framework, no build step.
// It talks only to the admin API under /v1/tenants/{t}/…, with the bearer
// token kept in this tab's sessionStorage (never in a URL). Everything the
// API returns is rendered as text (textContent), never as markup.
'use strict';

(() => {
  // The interaction catalogue (src/engine/interaction.rs KNOWN_TYPES); custom.<name> is typed in.
  const TYPES = [
    'email.opened', 'email.clicked', 'email.received', 'email.sent', 'email.forwarded', 'email.bounced',
    'form.submitted', 'call.outgoing', 'call.incoming', 'call.missed', 'chat.first_message', 'chat.accepted',
    'chat.message', 'page.visited', 'event.recorded', 'list.subscribed', 'list.unsubscribed', 'field.changed',
    'appointment.booked', 'invoice.paid', 'deal.stage_changed', 'contact.updated',
  ];
  const TEST_OPS = ['equals', 'not_equals', 'contains', 'starts_with', 'matches', 'in', 'gt', 'gte', 'lt', 'lte', 'exists'];
  const SCORE_OPS = [
    ['eq', 'equal to'], ['ne', 'not equal to'], ['gt', 'greater than'], ['gte', 'greater or equal to'],
    ['lt', 'less than'], ['lte', 'less or equal to'], ['empty', 'is empty'], ['not_empty', 'is not empty'],
  ];
  // Per action type: [key, label, kind, required]; kind is text, textarea, json, number, checkbox or select:a,b.
  const ACTION_FIELDS = {
    add_tag: [['tag', 'Tag', 'text', true]],
    remove_tag: [['tag', 'Tag', 'text', true]],
    add_note: [['text', 'Note text', 'textarea', true]],
    create_task: [['title', 'Title', 'text', true], ['body', 'Body', 'textarea'], ['due_in', 'Due in (e.g. 1d)', 'text'],
      ['assignee', 'Assign to CRM user', 'text']],
    notify: [['message', 'Message', 'textarea', true], ['user', 'Notify CRM user', 'text'],
      ['url', 'Or post to URL (Slack, e-mail service)', 'text']],
    move_stage: [['pipeline', 'Pipeline', 'text', true], ['stage', 'Stage', 'text', true],
      ['allow_backwards', 'Allow moving backwards', 'checkbox'], ['as_user', 'As CRM user', 'text']],
    set_field: [['field', 'Field (default: the tenant\'s score field)', 'text'], ['profile', 'Profile', 'text']],
    webhook: [['url', 'URL', 'text', true], ['body', 'Body (JSON; strings may hold {{placeholders}})', 'json']],
    adjust_score: [['profile', 'Profile', 'text', true], ['op', 'Operation', 'select:add,subtract,set,reset', true],
      ['points', 'Points', 'number'], ['expires_in', 'Expires in (e.g. 30d)', 'text']],
  };
  const STORE_KEY = 'scorehook.session';

  const state = { signedIn: false, tenant: null, token: null, profiles: [], view: 'profiles', board: null };
  const $ = (id) => document.getElementById(id);
  let uidCounter = 0;
  const uid = (prefix) => `${prefix}-${++uidCounter}`;

  // ---- DOM helpers -------------------------------------------------------

  /** An element with properties/attributes and children (strings become text nodes). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else if (key === 'for') el.htmlFor = value;
      else if (['value', 'checked', 'selected', 'disabled', 'hidden', 'textContent'].includes(key)) el[key] = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** A labelled control with its error slot; `path` ties it to a 422's `error.path`. */
  function field(label, control, path, hint) {
    control.id = control.id || uid('f');
    const error = h('p', { class: 'field-error', id: uid('err') });
    const hintEl = hint ? h('p', { class: 'hint', id: uid('hint') }, hint) : null;
    control.setAttribute('aria-describedby', [error.id, hintEl && hintEl.id].filter(Boolean).join(' '));
    control.dataset.errorId = error.id;
    if (path !== undefined) control.dataset.path = path;
    const wrap = h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl, error);
    return wrap;
  }

  function select(options, value) {
    const el = h('select', {});
    for (const option of options) {
      const [v, text] = Array.isArray(option) ? option : [option, option];
      el.append(h('option', { value: v, selected: v === value }, text));
    }
    if (value !== undefined && value !== null) el.value = value;
    return el;
  }

  const fmtTime = (s) => (s ? String(s).replace('T', ' ').replace(/(\.\d+)?(Z|\+00:00)$/, ' UTC') : '—');
  const show = (v) => (v === null || v === undefined ? '—' : String(v));

  function say(message, isError) {
    const status = $('status');
    status.textContent = message;
    status.classList.toggle('error', Boolean(isError));
  }

  function clearErrors(root) {
    root.querySelectorAll('[aria-invalid="true"]').forEach((el) => el.removeAttribute('aria-invalid'));
    root.querySelectorAll('.field-error').forEach((el) => { el.textContent = ''; });
  }

  /** Puts a message next to the control whose data-path is the longest prefix of `path`. */
  function showPathError(root, path, message, fallback) {
    // serde names a missing field in the message, not the path: point at the field itself.
    const named = /^missing field `([A-Za-z_]+)`/.exec(message);
    if (named && !path.endsWith(`.${named[1]}`)) path = path ? `${path}.${named[1]}` : named[1];
    let best = null;
    for (const el of root.querySelectorAll('[data-path]')) {
      const p = el.dataset.path;
      const matches = path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`);
      if (matches && (!best || p.length > best.dataset.path.length)) best = el;
    }
    if (!best) {
      if (fallback) fallback.textContent = path ? `${path}: ${message}` : message;
      return null;
    }
    best.setAttribute('aria-invalid', 'true');
    const slot = document.getElementById(best.dataset.errorId);
    if (slot) slot.textContent = message;
    best.focus();
    return best;
  }

  // ---- API ---------------------------------------------------------------

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.token}` };
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      return { ok: false, status: 0, data: null, error: { code: 'network', message: 'The server could not be reached.' } };
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    const error = response.ok ? null
      : (data && data.error) || { code: 'http', message: `The server answered ${response.status}.` };
    if (response.status === 401 && state.signedIn) {
      signOut('The token is no longer accepted: sign in again.');
    }
    return { ok: response.ok, status: response.status, data, error };
  }

  const tenantPath = (rest) => `/v1/tenants/${encodeURIComponent(state.tenant)}${rest || ''}`;
  const seg = encodeURIComponent;

  // ---- session -----------------------------------------------------------

  async function signIn(tenant, token) {
    state.tenant = tenant;
    state.token = token;
    const res = await api('GET', tenantPath());
    if (!res.ok) {
      state.tenant = null;
      state.token = null;
      return res.status === 404 ? `Tenant ${tenant} does not exist.`
        : res.status === 401 ? 'This token is not accepted for that tenant.' : res.error.message;
    }
    sessionStorage.setItem(STORE_KEY, JSON.stringify({ tenant, token }));
    state.signedIn = true;
    $('signin-view').hidden = true;
    $('session').hidden = false;
    $('tabs').hidden = false;
    $('session-tenant').textContent = tenant;
    await showView(sessionStorage.getItem(`${STORE_KEY}.view`) || 'profiles');
    return null;
  }

  function signOut(message) {
    sessionStorage.removeItem(STORE_KEY);
    state.signedIn = false;
    state.tenant = null;
    state.token = null;
    state.profiles = [];
    clearTimeout(actionsTimer);
    lastActions = null;
    $('signin-view').hidden = false;
    $('session').hidden = true;
    $('tabs').hidden = true;
    document.querySelectorAll('.view').forEach((v) => { v.hidden = true; });
    $('profile-editor').replaceChildren();
    $('simulation').replaceChildren();
    $('trigger-editor').replaceChildren();
    $('contact-detail').replaceChildren();
    $('signin-token').value = '';
    say(message || 'Signed out.', Boolean(message));
  }

  async function showView(view) {
    if (!['profiles', 'triggers', 'contacts', 'actions'].includes(view)) view = 'profiles';
    state.view = view;
    say('');
    sessionStorage.setItem(`${STORE_KEY}.view`, view);
    document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== `${view}-view`; });
    document.querySelectorAll('#tabs button').forEach((b) => {
      if (b.dataset.view === view) b.setAttribute('aria-current', 'page');
      else b.removeAttribute('aria-current');
    });
    if (view === 'profiles') await loadProfiles();
    if (view === 'triggers') await Promise.all([loadProfiles(true), loadTriggers()]);
    if (view === 'contacts') await loadContactProfiles();
    if (view === 'actions') await loadActions();
  }

  // ---- conditions (a rule's `when`, an interaction or deadline trigger's match) ----

  function valueText(v) {
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  /** A typed value from text: JSON numbers and booleans as such, anything else as a string. */
  function parseValue(text) {
    const t = text.trim();
    if (t === 'true' || t === 'false') return t === 'true';
    // JSON's own number grammar (so "007" or "+57 1" stay text), and only finite values.
    if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/.test(t) && Number.isFinite(Number(t))) return Number(t);
    return text;
  }

  /** The rows a `{field: test}` map shows as, or null when it uses all/any/not inside a test. */
  function testRows(map) {
    const rows = [];
    for (const [name, test] of Object.entries(map || {})) {
      for (const [op, value] of Object.entries(test || {})) {
        if (!TEST_OPS.includes(op)) return null;
        rows.push({ field: name, op, value: op === 'in' && Array.isArray(value) ? value.map(valueText).join(', ') : valueText(value) });
      }
    }
    return rows;
  }

  function conditionRow(kindLabel, row, onRemove) {
    const name = h('input', { value: row.field || '', spellcheck: 'false' });
    const op = select(TEST_OPS, row.op || 'equals');
    const value = h('input', { value: row.value || '' });
    const el = h('div', { class: 'row cond' },
      h('label', { for: (name.id = uid('f')) }, kindLabel), name,
      h('label', { for: (op.id = uid('f')) }, 'Operator'), op,
      h('label', { for: (value.id = uid('f')) }, 'Value'), value,
      h('button', { type: 'button', class: 'danger', onclick: () => { el.remove(); onRemove(); } }, 'Remove condition'));
    const error = h('p', { class: 'field-error', id: uid('err') });
    el.append(error);
    for (const c of [name, op, value]) {
      c.dataset.errorId = error.id;
      c.setAttribute('aria-describedby', error.id);
    }
    return {
      el,
      read(prefix, map) {
        const key = name.value.trim();
        // The value control takes the error of this field's test; an unnamed row points at its name.
        value.dataset.path = `${prefix}.${key}`;
        if (!key) return;
        const test = map[key] || (map[key] = {});
        const text = value.value;
        switch (op.value) {
          case 'starts_with': case 'matches': test[op.value] = text; break;
          case 'in': test.in = text.split(',').map((s) => s.trim()).filter((s) => s !== '').map(parseValue); break;
          case 'exists': test.exists = text.trim() !== 'false'; break;
          default: test[op.value] = parseValue(text);
        }
      },
    };
  }

  /** Editor for a match spec: interaction type, attribute and contact-field conditions. */
  function matchEditor(title, spec, options) {
    const opts = options || {};
    spec = spec || {};
    const attrRows = testRows(spec.attributes);
    const contactRows = testRows(spec.contact);
    const extraKeys = Object.keys(spec).filter((k) => !['type', 'attributes', 'contact'].includes(k));
    const fieldset = h('fieldset', {}, h('legend', {}, title));
    if (attrRows === null || contactRows === null || extraKeys.length > 0) {
      // all/any/not: shown as JSON, kept exactly as written.
      const area = h('textarea', { rows: 6, spellcheck: 'false' }, JSON.stringify(spec, null, 2));
      fieldset.append(field('Condition (JSON)', area, undefined,
        'This condition uses all/any/not, which the form does not edit: change it as JSON.'));
      return {
        el: fieldset,
        read(prefix) {
          area.dataset.path = prefix;
          try { return JSON.parse(area.value || '{}'); } catch (e) {
            throw Object.assign(new Error('not valid JSON'), { path: prefix });
          }
        },
      };
    }
    const custom = spec.type && !TYPES.includes(spec.type);
    const typeSelect = select([['', opts.anyLabel || '(any interaction)'], ...TYPES, ['custom', 'custom.… (type a name)']],
      custom ? 'custom' : (spec.type || ''));
    const customInput = h('input', { value: custom ? spec.type : 'custom.', spellcheck: 'false' });
    const customField = field('Custom type', customInput);
    customField.hidden = !custom;
    typeSelect.addEventListener('change', () => { customField.hidden = typeSelect.value !== 'custom'; });
    fieldset.append(field('Interaction type', typeSelect), customField);

    const lists = [];
    const section = (label, rowLabel, rows, addLabel) => {
      const list = h('div', {});
      const items = [];
      const add = (row) => {
        const item = conditionRow(rowLabel, row, () => items.splice(items.indexOf(item), 1));
        items.push(item);
        list.append(item.el);
        return item;
      };
      rows.forEach(add);
      const addButton = h('button', { type: 'button', onclick: () => add({}).el.querySelector('input').focus() }, addLabel);
      fieldset.append(h('h4', {}, label), list, addButton);
      lists.push(items);
      return items;
    };
    const attrItems = section('Attribute conditions', 'Attribute', attrRows, 'Add attribute condition');
    const contactItems = section('Contact-field conditions', 'Contact field', contactRows, 'Add contact-field condition');
    return {
      el: fieldset,
      read(prefix) {
        const out = {};
        typeSelect.dataset.path = `${prefix}.type`;
        customInput.dataset.path = `${prefix}.type`;
        const type = typeSelect.value === 'custom' ? customInput.value.trim() : typeSelect.value;
        if (type) out.type = type;
        const attributes = {};
        attrItems.forEach((item) => item.read(`${prefix}.attributes`, attributes));
        if (Object.keys(attributes).length) out.attributes = attributes;
        const contact = {};
        contactItems.forEach((item) => item.read(`${prefix}.contact`, contact));
        if (Object.keys(contact).length) out.contact = contact;
        return out;
      },
    };
  }

  // ---- profiles ------------------------------------------------------------

  async function loadProfiles(quiet) {
    const res = await api('GET', tenantPath('/profiles'));
    if (!res.ok) { if (!quiet) say(res.error.message, true); return; }
    state.profiles = res.data.profiles || [];
    const tbody = $('profiles-table').querySelector('tbody');
    tbody.replaceChildren(...state.profiles.map((p) => h('tr', { 'data-profile': p.id },
      h('td', {}, p.id), h('td', {}, show(p.name)),
      h('td', {}, (p.draft || p.published || {}).subject || 'contact'),
      h('td', {}, h('span', { class: `badge ${p.status}` }, p.status)),
      h('td', { class: 'num' }, show(p.version)), h('td', { class: 'num' }, show(p.published_version)),
      h('td', {}, h('button', { type: 'button', 'aria-label': `Edit profile ${p.id}`, onclick: () => openProfile(p.id) }, 'Edit')))));
    if (!state.profiles.length) tbody.append(h('tr', {}, h('td', { colspan: 7 }, 'No profiles yet: create one.')));
  }

  async function openProfile(id) {
    const res = await api('GET', tenantPath(`/profiles/${seg(id)}`));
    if (!res.ok) { say(res.error.message, true); return; }
    profileEditor(res.data);
  }

  function ruleEditor(rule, onRemove) {
    const r = rule || { id: '', when: {}, points: 1 };
    const id = h('input', { value: r.id || '', spellcheck: 'false' });
    const match = matchEditor('When', r.when);
    const points = h('input', { value: r.points === undefined ? '' : String(r.points), inputmode: 'decimal' });
    const once = h('input', { type: 'checkbox', checked: Boolean(r.once) });
    const capMax = h('input', { type: 'number', min: 1, step: 1, value: r.cap ? String(r.cap.max) : '' });
    const capPer = h('input', { value: r.cap ? r.cap.per : '', placeholder: '7d' });
    const expires = h('input', { value: r.expires_in && r.expires_in !== 'never' ? r.expires_in : '', placeholder: 'never' });
    const heading = h('legend', {}, r.id ? `Rule ${r.id}` : 'New rule');
    const el = h('fieldset', { class: 'rule' }, heading,
      h('div', { class: 'grid' },
        field('Rule id', id, undefined, 'Letters, digits, _ and -; unique in the profile.'),
        field('Points', points, undefined, 'Positive adds, negative subtracts.'),
        field('Once per contact', once),
        field('Cap: at most', capMax),
        field('Cap: per period', capPer, undefined, 'e.g. 7d; leave both cap fields empty for no cap.'),
        field('Expires in', expires, undefined, 'e.g. 30d; empty means never.')),
      match.el,
      r.decay ? h('p', { class: 'hint' }, `Decay ${r.decay.percent}% every ${r.decay.every} (kept as is).`) : null,
      h('button', { type: 'button', class: 'danger', onclick: () => { el.remove(); onRemove(); } }, 'Remove rule'));
    id.addEventListener('input', () => { heading.textContent = id.value ? `Rule ${id.value}` : 'New rule'; });
    return {
      el,
      focus: () => id.focus(),
      read(i) {
        const p = `rules[${i}]`;
        id.dataset.path = `${p}.id`;
        points.dataset.path = `${p}.points`;
        once.dataset.path = `${p}.once`;
        capMax.dataset.path = `${p}.cap.max`;
        capPer.dataset.path = `${p}.cap`;
        expires.dataset.path = `${p}.expires_in`;
        const out = { id: id.value.trim(), when: match.read(`${p}.when`) };
        const pts = points.value.trim();
        // Anything not a number goes as typed, so the API's 422 names the field.
        out.points = pts !== '' && Number.isFinite(Number(pts)) ? Number(pts) : pts;
        if (once.checked) out.once = true;
        if (capMax.value !== '' || capPer.value.trim() !== '') {
          out.cap = { max: capMax.value === '' ? 0 : Number(capMax.value), per: capPer.value.trim() };
        }
        if (expires.value.trim() !== '') out.expires_in = expires.value.trim();
        if (r.decay) out.decay = r.decay;
        return out;
      },
    };
  }

  function profileEditor(record) {
    const isNew = !record;
    const spec = (record && (record.draft || record.published)) || { name: '', description: '', subject: 'contact', rules: [] };
    const container = $('profile-editor');
    $('simulation').replaceChildren();
    const idInput = h('input', { value: record ? record.id : '', disabled: !isNew, spellcheck: 'false' });
    idInput.dataset.path = '#id';
    const name = h('input', { value: spec.name || '' });
    name.dataset.path = 'name';
    const description = h('textarea', { rows: 2 }, spec.description || '');
    description.dataset.path = 'description';
    const subject = select([['contact', 'Contacts'], ['deal', 'Deals']], spec.subject || 'contact');
    subject.dataset.path = 'subject';
    const rulesBox = h('div', {});
    const rules = [];
    const addRule = (rule) => {
      const editor = ruleEditor(rule, () => { rules.splice(rules.indexOf(editor), 1); dirty = true; });
      rules.push(editor);
      rulesBox.append(editor.el);
      return editor;
    };
    (spec.rules || []).forEach(addRule);
    const formError = h('p', { class: 'field-error', role: 'alert' });
    const lifecycle = h('p', { id: 'profile-lifecycle' });
    const recompute = h('p', { id: 'profile-recompute', role: 'status' });
    const title = h('h3', { id: 'profile-editor-title' }, isNew ? 'New profile' : `Profile ${record.id}`);
    let dirty = isNew;
    let currentId = record ? record.id : null;

    const describe = (rec) => {
      lifecycle.replaceChildren('Status ', h('span', { class: `badge ${rec.status}` }, rec.status),
        ` · version ${show(rec.version)} · published version ${show(rec.published_version)}`);
      recompute.textContent = rec.recompute
        ? `Recompute of version ${rec.recompute.version}: ${rec.recompute.status}, ${rec.recompute.contacts_done} contacts done, ${rec.recompute.contacts_changed} changed.`
        : '';
    };

    const form = h('form', { class: 'panel', novalidate: true, 'aria-labelledby': 'profile-editor-title' },
      title,
      lifecycle, recompute,
      h('div', { class: 'grid' },
        field('Profile id', idInput, undefined, isNew ? 'Used in URLs and triggers, e.g. engagement.' : undefined),
        field('Name', name), field('Description', description), field('Subject', subject)),
      h('h4', {}, 'Rules'), rulesBox,
      h('div', { class: 'toolbar' },
        h('button', { type: 'button', onclick: () => { addRule(null).focus(); dirty = true; } }, 'Add rule')),
      formError,
      h('div', { class: 'toolbar' },
        h('button', { type: 'submit', class: 'primary' }, 'Save draft'),
        h('button', { type: 'button', id: 'profile-publish', onclick: () => publish() }, 'Publish'),
        h('button', { type: 'button', id: 'profile-archive', onclick: () => archive() }, 'Archive'),
        h('button', { type: 'button', id: 'profile-simulate', onclick: () => simulate() }, 'Simulate')));
    form.addEventListener('input', () => { dirty = true; });
    if (record) describe(record);

    const save = async () => {
      clearErrors(form);
      formError.textContent = '';
      const id = idInput.value.trim();
      if (!id) { showPathError(form, '#id', 'Give the profile an id.', formError); return null; }
      let body;
      try {
        body = { name: name.value, description: description.value, subject: subject.value, rules: rules.map((r, i) => r.read(i)) };
      } catch (e) {
        showPathError(form, e.path || '', e.message, formError);
        return null;
      }
      if (spec.decay) body.decay = spec.decay;
      const res = await api('PUT', tenantPath(`/profiles/${seg(id)}`), body);
      if (!res.ok) {
        if (res.status === 404 && isNew) showPathError(form, '#id', `This id cannot be used: ${res.error.message}`, formError);
        else showPathError(form, res.error.path || '', res.error.message, formError);
        say(`Not saved: ${res.error.message}`, true);
        return null;
      }
      dirty = false;
      currentId = id;
      idInput.disabled = true;
      title.textContent = `Profile ${id}`;
      describe(res.data);
      say(`Profile ${id} saved as draft version ${res.data.version}.`);
      await loadProfiles(true);
      return res.data;
    };

    const publish = async () => {
      if ((dirty || !currentId) && !(await save())) return;
      const res = await api('POST', tenantPath(`/profiles/${seg(currentId)}/publish`));
      if (!res.ok) { formError.textContent = res.error.message; say(`Not published: ${res.error.message}`, true); return; }
      describe(res.data);
      say(`Profile ${currentId} published (version ${res.data.published_version}).`);
      await loadProfiles(true);
      await watchRecompute(currentId, describe);
    };

    // The simulation runs what is stored: pending edits are saved (as the draft) first.
    const simulate = async () => {
      if ((dirty || !currentId) && !(await save())) return;
      simulateForm(currentId);
    };

    const archive = async () => {
      if (!currentId) { formError.textContent = 'Save the profile first.'; return; }
      const res = await api('POST', tenantPath(`/profiles/${seg(currentId)}/archive`));
      if (!res.ok) { formError.textContent = res.error.message; say(`Not archived: ${res.error.message}`, true); return; }
      describe(res.data);
      say(`Profile ${currentId} archived.`);
      await loadProfiles(true);
    };

    form.addEventListener('submit', (event) => { event.preventDefault(); save(); });
    container.replaceChildren(form);
    (isNew ? idInput : name).focus();
  }

  /** Follows a publish's recompute over stored history until it is no longer running. */
  async function watchRecompute(id, describe) {
    for (let i = 0; i < 600; i += 1) {
      const res = await api('GET', tenantPath(`/profiles/${seg(id)}`));
      if (!res.ok || !document.getElementById('profile-recompute')) return;
      describe(res.data);
      if (!res.data.recompute || res.data.recompute.status !== 'running') return;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  // ---- simulation ----------------------------------------------------------------

  function simulateForm(id) {
    const box = $('simulation');
    if (!id) { say('Save the profile before simulating it.', true); return; }
    const contacts = h('input', { type: 'number', min: 1, max: 10000, value: '1000' });
    contacts.dataset.path = 'contacts';
    const band = h('input', { type: 'number', min: 1, step: 'any', value: '10' });
    band.dataset.path = 'band';
    const top = h('input', { type: 'number', min: 1, value: '10' });
    top.dataset.path = 'top';
    const formError = h('p', { class: 'field-error', role: 'alert' });
    const out = h('div', { id: 'simulation-result' });
    const form = h('form', { class: 'panel', novalidate: true, 'aria-labelledby': 'simulation-title' },
      h('h3', { id: 'simulation-title' }, `Simulate ${id} over stored history`),
      h('p', { class: 'hint' }, 'Runs the draft (else the published version) over the stored interactions and writes nothing.'),
      h('div', { class: 'row' }, field('Contacts to read', contacts), field('Band width', band), field('Top contacts', top)),
      formError, h('button', { type: 'submit', class: 'primary' }, 'Run simulation'), out);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      const body = { contacts: Number(contacts.value), band: Number(band.value), top: Number(top.value) };
      const res = await api('POST', tenantPath(`/profiles/${seg(id)}/simulate`), body);
      if (!res.ok) { showPathError(form, res.error.path || '', res.error.message, formError); return; }
      renderSimulation(out, res.data);
      say(`Simulated ${id} version ${res.data.version}.`);
    });
    box.replaceChildren(form);
    contacts.focus();
  }

  function renderSimulation(out, report) {
    const max = Math.max(1, ...report.bands.map((b) => b.count));
    const chart = h('div', { class: 'chart', id: 'simulation-chart' });
    for (const b of report.bands) {
      const bar = h('div', { class: 'bar' });
      bar.style.width = `${(100 * b.count) / max}%`;
      chart.append(h('span', {}, `${b.from} to ${b.to}`), h('div', { class: 'track', 'aria-hidden': 'true' }, bar),
        h('span', { class: 'num', 'data-band': `${b.from}` }, `${b.count} contact${b.count === 1 ? '' : 's'}`));
    }
    const subjectKey = (row) => row.contact_id || row.deal_id;
    const triggers = Object.entries(report.triggers || {});
    out.replaceChildren(
      h('p', {}, `Version ${show(report.version)}: ${report.scored} of ${report.contacts} contacts scored`,
        report.complete ? '.' : ' (more contacts exist than were read).'),
      h('figure', {}, h('figcaption', {}, 'Score distribution'), chart),
      h('table', { id: 'simulation-top' }, h('caption', {}, 'Top contacts'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Subject'), h('th', { scope: 'col', class: 'num' }, 'Score'))),
        h('tbody', {}, report.top.map((row) => h('tr', {}, h('td', {}, subjectKey(row)), h('td', { class: 'num' }, row.score))))),
      h('table', { id: 'simulation-triggers' }, h('caption', {}, 'How often each score trigger would have fired'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Trigger'), h('th', { scope: 'col', class: 'num' }, 'Fires'))),
        h('tbody', {}, triggers.length ? triggers.map(([t, n]) => h('tr', {}, h('td', {}, t), h('td', { class: 'num' }, n)))
          : h('tr', {}, h('td', { colspan: 2 }, 'No score trigger on this profile.')))));
  }

  // ---- triggers ------------------------------------------------------------------

  function whenSummary(when) {
    if (when.score) {
      const op = (SCORE_OPS.find(([o]) => o === when.score.op) || [null, when.score.op])[1];
      return `score ${when.score.profile} ${op}${when.score.value === undefined ? '' : ` ${when.score.value}`}`;
    }
    if (when.event) return `interaction ${when.event.type || '(any)'}`;
    if (when.deadline) return `no ${when.deadline.awaits.type || 'reply'} within ${when.deadline.within_s}s of ${when.deadline.start.type || 'a start'}`;
    return '?';
  }

  async function loadTriggers() {
    const res = await api('GET', tenantPath('/triggers'));
    if (!res.ok) { say(res.error.message, true); return; }
    const triggers = res.data.triggers || [];
    const tbody = $('triggers-table').querySelector('tbody');
    tbody.replaceChildren(...triggers.map((t) => h('tr', { 'data-trigger': t.id },
      h('td', {}, t.id), h('td', {}, t.name), h('td', {}, whenSummary(t.when)), h('td', {}, t.runs || 'default'),
      h('td', {}, t.enabled ? 'yes' : 'no'), h('td', {}, t.actions.map((a) => a.type).join(', ')),
      h('td', {}, h('button', { type: 'button', 'aria-label': `Edit trigger ${t.id}`, onclick: () => openTrigger(t.id) }, 'Edit')))));
    if (!triggers.length) tbody.append(h('tr', {}, h('td', { colspan: 7 }, 'No triggers yet.')));
  }

  async function openTrigger(id) {
    const res = await api('GET', tenantPath(`/triggers/${seg(id)}`));
    if (!res.ok) { say(res.error.message, true); return; }
    triggerEditor(res.data);
  }

  function actionEditor(action, onRemove) {
    const a = action || { type: 'add_tag' };
    const type = select(Object.keys(ACTION_FIELDS), a.type);
    const fieldsBox = h('div', { class: 'grid' });
    let controls = [];
    const render = (values) => {
      controls = [];
      fieldsBox.replaceChildren();
      for (const [key, label, kind, required] of ACTION_FIELDS[type.value] || []) {
        let control;
        if (kind === 'checkbox') control = h('input', { type: 'checkbox', checked: Boolean(values[key]) });
        else if (kind === 'textarea') control = h('textarea', { rows: 2 }, values[key] === undefined ? '' : String(values[key]));
        else if (kind === 'json') control = h('textarea', { rows: 3, spellcheck: 'false' }, values[key] === undefined ? '' : JSON.stringify(values[key], null, 2));
        else if (kind.startsWith('select:')) control = select(kind.slice(7).split(','), values[key]);
        else control = h('input', { value: values[key] === undefined ? '' : String(values[key]), inputmode: kind === 'number' ? 'decimal' : undefined });
        controls.push({ key, kind, required, control });
        fieldsBox.append(field(required ? label : `${label} (optional)`, control));
      }
    };
    render(a);
    type.addEventListener('change', () => render({}));
    const el = h('fieldset', { class: 'action' }, h('legend', {}, 'Action'), field('Action type', type), fieldsBox,
      h('button', { type: 'button', class: 'danger', onclick: () => { el.remove(); onRemove(); } }, 'Remove action'));
    return {
      el,
      focus: () => type.focus(),
      read(i) {
        const p = `actions[${i}]`;
        type.dataset.path = p;
        const out = { type: type.value };
        for (const { key, kind, required, control } of controls) {
          control.dataset.path = `${p}.${key}`;
          if (kind === 'checkbox') { out[key] = control.checked; continue; }
          const text = control.value.trim();
          if (text === '' && !required) continue;
          if (kind === 'json') {
            // Sent as written if it is not JSON: the API answers which field is wrong.
            try { out[key] = JSON.parse(text); } catch (_) { out[key] = text; }
            continue;
          }
          out[key] = kind === 'number' && text !== '' && Number.isFinite(Number(text)) ? Number(text) : control.value;
        }
        return out;
      },
    };
  }

  function triggerEditor(record) {
    const isNew = !record;
    const t = record || { name: '', when: { score: { profile: '', op: 'gte', value: 10 } }, actions: [], enabled: true };
    const container = $('trigger-editor');
    const idInput = h('input', { value: record ? record.id : '', disabled: !isNew, spellcheck: 'false' });
    idInput.dataset.path = '#id';
    const name = h('input', { value: t.name || '' });
    name.dataset.path = 'name';
    const initialKind = t.when.event ? 'event' : t.when.deadline ? 'deadline' : 'score';
    const kind = select([['score', 'A score'], ['event', 'An interaction'], ['deadline', 'A deadline (no reply in time)']], initialKind);
    kind.dataset.path = 'when';
    const score = t.when.score || { profile: '', op: 'gte', value: 10 };
    const profileIds = state.profiles.map((p) => p.id);
    if (score.profile && !profileIds.includes(score.profile)) profileIds.push(score.profile);
    const scoreProfile = select(profileIds, score.profile || profileIds[0]);
    scoreProfile.dataset.path = 'when.score.profile';
    const scoreOp = select(SCORE_OPS, score.op);
    scoreOp.dataset.path = 'when.score.op';
    const scoreValue = h('input', { value: score.value === undefined ? '' : String(score.value), inputmode: 'decimal' });
    scoreValue.dataset.path = 'when.score.value';
    const applyExisting = h('input', { type: 'checkbox', checked: Boolean(t.apply_to_existing) });
    applyExisting.dataset.path = 'apply_to_existing';
    const syncValue = () => { scoreValue.disabled = ['empty', 'not_empty'].includes(scoreOp.value); };
    scoreOp.addEventListener('change', syncValue);
    syncValue();
    const scoreBox = h('div', { class: 'grid' }, field('Profile', scoreProfile), field('Score is', scoreOp), field('Value', scoreValue),
      field('Also fire for contacts already matching', applyExisting));
    const eventMatch = matchEditor('Interaction', t.when.event || { type: 'call.missed' });
    const deadline = t.when.deadline || { start: { type: 'chat.first_message' }, awaits: { type: 'chat.accepted' }, within_s: 600 };
    const startMatch = matchEditor('Starts when', deadline.start);
    const awaitsMatch = matchEditor('Unless this arrives', deadline.awaits);
    const within = h('input', { type: 'number', min: 1, value: String(deadline.within_s) });
    within.dataset.path = 'when.deadline.within_s';
    const deadlineBox = h('div', {}, startMatch.el, awaitsMatch.el, h('div', { class: 'grid' }, field('Within (seconds)', within)));
    const boxes = { score: scoreBox, event: eventMatch.el, deadline: deadlineBox };
    const syncKind = () => Object.entries(boxes).forEach(([k, box]) => { box.hidden = k !== kind.value; });
    kind.addEventListener('change', syncKind);
    syncKind();
    const runs = select([['', 'default (on enter for scores, every time otherwise)'], ['on_enter', 'on enter'],
      ['every_time', 'every time'], ['once', 'once per contact']], t.runs || '');
    runs.dataset.path = 'runs';
    const enabled = h('input', { type: 'checkbox', checked: t.enabled !== false });
    enabled.dataset.path = 'enabled';
    const actionsBox = h('div', {});
    const actions = [];
    const addAction = (a) => {
      const editor = actionEditor(a, () => actions.splice(actions.indexOf(editor), 1));
      actions.push(editor);
      actionsBox.append(editor.el);
      return editor;
    };
    t.actions.forEach(addAction);
    const formError = h('p', { class: 'field-error', role: 'alert' });
    const title = h('h3', { id: 'trigger-editor-title' }, isNew ? 'New trigger' : `Trigger ${record.id}`);
    const existing = h('p', { role: 'status' });
    const describe = (rec) => {
      existing.textContent = rec && rec.existing
        ? `Applying to existing contacts: ${rec.existing.status}, ${rec.existing.contacts_done} done.` : '';
    };
    describe(record);
    const form = h('form', { class: 'panel', novalidate: true, 'aria-labelledby': 'trigger-editor-title' },
      title, existing,
      h('div', { class: 'grid' }, field('Trigger id', idInput), field('Name', name), field('Fires on', kind)),
      scoreBox, eventMatch.el, deadlineBox,
      h('div', { class: 'grid' }, field('Runs', runs), field('Enabled', enabled)),
      h('h4', {}, 'Actions'), actionsBox,
      h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => addAction(null).focus() }, 'Add action')),
      formError, h('button', { type: 'submit', class: 'primary' }, 'Save trigger'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      formError.textContent = '';
      const id = idInput.value.trim();
      if (!id) { showPathError(form, '#id', 'Give the trigger an id.', formError); return; }
      const body = { name: name.value, actions: [], enabled: enabled.checked };
      try {
        if (kind.value === 'score') {
          const s = { profile: scoreProfile.value, op: scoreOp.value };
          const v = scoreValue.value.trim();
          if (!scoreValue.disabled && v !== '') s.value = Number.isFinite(Number(v)) ? Number(v) : v;
          body.when = { score: s };
          if (applyExisting.checked) body.apply_to_existing = true;
        } else if (kind.value === 'event') {
          body.when = { event: eventMatch.read('when.event') };
        } else {
          body.when = { deadline: { start: startMatch.read('when.deadline.start'), awaits: awaitsMatch.read('when.deadline.awaits'),
            within_s: Number(within.value) } };
        }
        body.actions = actions.map((a, i) => a.read(i));
      } catch (e) {
        showPathError(form, e.path || '', e.message, formError);
        return;
      }
      if (runs.value) body.runs = runs.value;
      const res = await api('PUT', tenantPath(`/triggers/${seg(id)}`), body);
      if (!res.ok) {
        if (res.status === 404 && isNew) showPathError(form, '#id', `This id cannot be used: ${res.error.message}`, formError);
        else showPathError(form, res.error.path || '', res.error.message, formError);
        say(`Not saved: ${res.error.message}`, true);
        return;
      }
      idInput.disabled = true;
      title.textContent = `Trigger ${id}`;
      describe(res.data);
      say(`Trigger ${id} saved.`);
      await loadTriggers();
    });
    container.replaceChildren(form);
    (isNew ? idInput : name).focus();
  }

  // ---- contacts --------------------------------------------------------------------

  async function loadContactProfiles() {
    await loadProfiles(true);
    const sel = $('contacts-profile');
    const current = sel.value;
    sel.replaceChildren(...state.profiles.map((p) => h('option', { value: p.id },
      `${p.id} (${(p.draft || p.published || {}).subject === 'deal' ? 'deals' : 'contacts'}, ${p.status})`)));
    const published = state.profiles.find((p) => p.status === 'published');
    if (state.profiles.some((p) => p.id === current)) sel.value = current;
    else if (published) sel.value = published.id;
  }

  const profileSubject = (id) => {
    const p = state.profiles.find((x) => x.id === id);
    return p && (p.published || p.draft || {}).subject === 'deal' ? 'deal' : 'contact';
  };

  async function loadBoard(cursor) {
    const form = $('contacts-form');
    clearErrors(form);
    const profile = $('contacts-profile').value;
    if (!profile) { $('contacts-error').textContent = 'Create and publish a profile first.'; return; }
    const subject = profileSubject(profile);
    const params = new URLSearchParams({ profile, order: $('contacts-order').value, limit: $('contacts-limit').value });
    if ($('contacts-min').value !== '') params.set('min', $('contacts-min').value);
    if ($('contacts-max').value !== '') params.set('max', $('contacts-max').value);
    if (cursor) params.set('cursor', cursor);
    const res = await api('GET', tenantPath(`/${subject}s?${params}`));
    if (!res.ok) { showPathError(form, res.error.path || '', res.error.message, $('contacts-error')); return; }
    const rows = res.data[`${subject}s`] || [];
    const board = state.board;
    const offset = board.pages.length - 1;
    const tbody = $('contacts-table').querySelector('tbody');
    tbody.replaceChildren(...rows.map((row, i) => {
      const id = row.contact_id || row.deal_id;
      return h('tr', { 'data-subject': id },
        h('td', { class: 'num' }, String(offset * Number($('contacts-limit').value) + i + 1)),
        h('td', {}, h('button', { type: 'button', class: 'link', onclick: () => loadSubject(subject, id) }, id)),
        h('td', { class: 'num', 'data-score': '' }, String(row.score)), h('td', {}, fmtTime(row.updated_at)));
    }));
    if (!rows.length) tbody.append(h('tr', {}, h('td', { colspan: 4 }, 'No contact in this range.')));
    board.next = res.data.next_cursor;
    $('contacts-next').disabled = !board.next;
    $('contacts-first').disabled = board.pages.length <= 1;
    $('contacts-table').querySelector('caption').textContent =
      `Leaderboard of ${profile}, page ${board.pages.length}${board.next ? '' : ' (last)'}`;
  }

  async function loadSubject(subject, id) {
    const res = await api('GET', tenantPath(`/${subject}s/${seg(id)}/scores`));
    const box = $('contact-detail');
    if (!res.ok) { box.replaceChildren(h('p', { class: 'field-error' }, res.error.message)); return; }
    const parts = [h('h3', {}, `${subject === 'deal' ? 'Deal' : 'Contact'} ${id}`)];
    const scores = Object.entries(res.data.scores || {});
    if (!scores.length) parts.push(h('p', {}, 'No score in any profile.'));
    for (const [profile, view] of scores) {
      parts.push(h('h4', {}, `${profile}: score ${show(view.score)}`),
        h('table', { class: 'ledger', 'data-profile': profile }, h('caption', {}, `Why ${profile} is ${show(view.score)}: the ledger`),
          h('thead', {}, h('tr', {}, ['Rule', 'Points', 'Counts now', 'Event', 'When', 'Expires'].map((c) => h('th', { scope: 'col', class: /^(Points|Counts)/.test(c) ? 'num' : null }, c)))),
          h('tbody', {}, view.ledger.map((e) => h('tr', {},
            h('td', {}, e.rule), h('td', { class: 'num' }, show(e.points)), h('td', { class: 'num' }, show(e.current)),
            h('td', {}, show(e.event_id)), h('td', {}, fmtTime(e.at)), h('td', {}, e.expires_at ? fmtTime(e.expires_at) : 'never'))))));
    }
    box.replaceChildren(...parts);
    box.focus();
  }

  // ---- actions ---------------------------------------------------------------------

  let actionsTimer = null;
  let lastActions = null;

  async function loadActions() {
    clearTimeout(actionsTimer);
    const status = $('actions-status').value;
    const params = new URLSearchParams({ limit: '200' });
    if (status) params.set('status', status);
    const res = await api('GET', tenantPath(`/actions?${params}`));
    if (!res.ok) { say(res.error.message, true); return; }
    const tbody = $('actions-table').querySelector('tbody');
    const actions = res.data.actions || [];
    // Re-render only on a change, so a refresh never takes the keyboard focus away.
    const snapshot = JSON.stringify([status, actions]);
    if (snapshot !== lastActions) renderActions(tbody, actions);
    lastActions = snapshot;
    // Deliveries move on by themselves: keep the log current while it is on screen.
    actionsTimer = setTimeout(() => {
      if (state.tenant && state.view === 'actions' && $('actions-live').checked) loadActions();
    }, 2000);
  }

  function renderActions(tbody, actions) {
    tbody.replaceChildren(...actions.map((a) => h('tr', { 'data-action': a.id, 'data-status': a.status },
      h('td', {}, h('code', {}, a.id), h('br'), fmtTime(a.fired_at)),
      h('td', {}, a.type, h('br'), h('small', {}, JSON.stringify(a.params))),
      h('td', {}, a.trigger),
      h('td', {}, a.deal_id ? `${a.contact_id} / deal ${a.deal_id}` : a.contact_id),
      h('td', {}, h('span', { class: `badge ${a.status}` }, a.status), a.reason ? h('div', {}, a.reason) : null,
        a.next_attempt_at ? h('div', {}, `next attempt ${fmtTime(a.next_attempt_at)}`) : null),
      h('td', {}, a.attempts.length ? h('ol', { class: 'attempts' }, a.attempts.map((t) => h('li', {},
        `${fmtTime(t.at)}: ${t.status}${t.http_status ? ` (HTTP ${t.http_status})` : ''}${t.error ? ` ${t.error}` : ''}`))) : 'none'),
      h('td', {}, ['failed', 'dead'].includes(a.status)
        ? h('button', { type: 'button', 'aria-label': `Replay action ${a.id}`, onclick: () => replay(a.id) }, 'Replay') : null))));
    if (!actions.length) tbody.append(h('tr', {}, h('td', { colspan: 7 }, 'No action with this status.')));
  }

  async function replay(id) {
    const res = await api('POST', tenantPath(`/actions/${seg(id)}/replay`));
    if (!res.ok) { say(`Not replayed: ${res.error.message}`, true); return; }
    say(`Action ${id} replayed: now ${res.data.status}.`);
    await loadActions();
  }

  // ---- wiring --------------------------------------------------------------------

  document.addEventListener('DOMContentLoaded', async () => {
    $('signin-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const tenant = $('signin-tenant').value.trim();
      const token = $('signin-token').value.trim();
      $('signin-error').textContent = '';
      if (!tenant || !token) { $('signin-error').textContent = 'Give both the tenant and the token.'; return; }
      const problem = await signIn(tenant, token);
      if (problem) $('signin-error').textContent = problem;
      else say(`Signed in to ${tenant}.`);
    });
    $('signout').addEventListener('click', () => signOut());
    $('tabs').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-view]');
      if (button) showView(button.dataset.view);
    });
    $('profile-new').addEventListener('click', () => profileEditor(null));
    $('profiles-refresh').addEventListener('click', () => loadProfiles());
    $('trigger-new').addEventListener('click', async () => { await loadProfiles(true); triggerEditor(null); });
    $('triggers-refresh').addEventListener('click', () => loadTriggers());
    $('contacts-form').addEventListener('submit', (event) => {
      event.preventDefault();
      state.board = { pages: [null], next: null };
      $('contact-detail').replaceChildren();
      loadBoard(null);
    });
    $('contacts-next').addEventListener('click', () => {
      if (!state.board || !state.board.next) return;
      state.board.pages.push(state.board.next);
      loadBoard(state.board.next);
    });
    $('contacts-first').addEventListener('click', () => {
      state.board = { pages: [null], next: null };
      loadBoard(null);
    });
    $('actions-form').addEventListener('submit', (event) => { event.preventDefault(); loadActions(); });

    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(STORE_KEY) || 'null'); } catch (e) { saved = null; }
    if (saved && saved.tenant && saved.token) {
      const problem = await signIn(saved.tenant, saved.token);
      if (problem) signOut(problem);
    }
  });
})();
