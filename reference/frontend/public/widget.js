/*
 * The platform's embeddable chat widget. A site includes it with its widget id:
 *
 *   <script src="https://<platform>/widget.js" data-widget-id="<uuid>" defer></script>
 *
 * It talks to the platform it was loaded from (the script's own origin, not the
 * page's), through the public /api/widget/<id>/... endpoints. The platform
 * answers with CORS headers only for the widget's allowed origins, so on any
 * other site the browser refuses the answers and the widget says it is unavailable.
 * Plain script, no build step and no dependency: it runs on pages we do not control.
 */
(function () {
  'use strict';
  var script = document.currentScript;
  if (!script) return;
  var widgetId = script.getAttribute('data-widget-id');
  var base = new URL(script.src).origin + '/api/widget/' + encodeURIComponent(widgetId || '');
  var visitor = null; // {dialog_id, visitor_token} once the first message starts a dialog

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text) node.textContent = text;
    return node;
  }

  var root = el('div', { 'data-adapto-widget': widgetId || '', role: 'complementary' });
  root.style.cssText = 'position:fixed;right:1rem;bottom:1rem;width:20rem;font:14px system-ui,sans-serif;'
    + 'background:#fff;border:1px solid #ccd;border-radius:8px;padding:.75rem;box-shadow:0 2px 8px #0002';
  var title = el('strong', { 'data-part': 'title' }, 'Chat');
  var status = el('p', { 'data-part': 'status' }, 'Connecting…');
  var log = el('ol', { 'data-part': 'messages' });
  log.style.cssText = 'list-style:none;padding:0;max-height:14rem;overflow:auto';
  var form = el('form', { 'data-part': 'form' });
  var input = el('input', { name: 'text', placeholder: 'Your question', autocomplete: 'off' });
  var send = el('button', { type: 'submit' }, 'Send');
  form.appendChild(input);
  form.appendChild(send);
  [title, status, log, form].forEach(function (part) { root.appendChild(part); });
  send.disabled = true;

  function show(role, text) {
    var item = el('li', { 'data-role': role }, text);
    item.style.margin = '.25rem 0';
    if (role === 'assistant') item.style.color = '#13795b';
    log.appendChild(item);
  }

  function fail(what, error) {
    // A CORS refusal reaches the script only as a TypeError: the browser
    // hides the answer, its status included, from pages of other origins.
    status.textContent = 'Widget unavailable: ' + what + ' failed (' + (error && error.message || error) + ')';
    status.setAttribute('data-state', 'error');
  }

  function call(path, method, body) {
    var headers = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (visitor) headers['X-Widget-Token'] = visitor.visitor_token;
    return fetch(base + path, {
      method: method || 'GET', headers: headers, mode: 'cors', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) throw new Error((data && data.error) || ('HTTP ' + response.status));
        return data;
      });
    });
  }

  function ensureDialog() {
    if (visitor) return Promise.resolve(visitor);
    return call('/dialogs', 'POST', {}).then(function (started) {
      visitor = started;
      if (started.greeting) show('assistant', started.greeting);
      return started;
    });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    send.disabled = true;
    ensureDialog().then(function () {
      return call('/dialogs/' + visitor.dialog_id + '/messages', 'POST', { text: text });
    }).then(function (answer) {
      input.value = '';
      show('user', answer.message.content);
      show('assistant', answer.reply.content);
      status.textContent = 'Online';
    }).catch(function (error) {
      fail('sending', error);
    }).then(function () {
      send.disabled = false;
    });
  });

  function start() {
    document.body.appendChild(root);
    call('/config').then(function (config) {
      var settings = config.settings || {};
      if (settings.title) title.textContent = settings.title;
      status.textContent = 'Online';
      status.setAttribute('data-state', 'ready');
      send.disabled = false;
    }).catch(function (error) {
      fail('loading', error);
    });
  }

  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start);
}());
