import { useCallback, useEffect, useRef, useState } from 'react';
import { api, socketUrl } from './api.js';

const RECONNECT_MS = 2000;

// Messages of one dialog, oldest first, each id once: a message can arrive
// both in a POST's answer and over the WebSocket.
function merge(list, message) {
  if (list.some((m) => m.id === message.id)) return list;
  return [...list, message].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0));
}

/** The authenticated WebSocket: calls onMessage for every pushed chat message. */
function useMessageSocket(token, onMessage, onExpired) {
  const [state, setState] = useState('connecting');
  const handler = useRef(onMessage);
  handler.current = onMessage;

  useEffect(() => {
    let stopped = false;
    let timer;
    let socket;
    const open = () => {
      setState('connecting');
      socket = new WebSocket(socketUrl());
      socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token }));
      socket.onmessage = (event) => {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        if (data.type === 'auth_ok') setState('live');
        else if (data.type === 'message' && data.message) handler.current(data.message);
      };
      socket.onclose = (event) => {
        // 4401: the token was refused or expired; reconnecting would not help.
        if (event.code === 4401) {
          setState('signed out');
          onExpired();
          return;
        }
        setState(`closed (${event.code})`);
        if (!stopped) timer = setTimeout(open, RECONNECT_MS);
      };
    };
    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      socket?.close();
    };
  }, [token, onExpired]);
  return state;
}

/** Projects, their dialogs, one open dialog and its live messages. */
export default function Workspace({ session, onSignOut }) {
  const token = session.access_token;
  const [projects, setProjects] = useState([]);
  const [projectId, setProjectId] = useState(null);
  const [dialogs, setDialogs] = useState([]);
  const [dialogId, setDialogId] = useState(null);
  const [messages, setMessages] = useState([]);
  const [unread, setUnread] = useState({});
  const [title, setTitle] = useState('');
  const [draft, setDraft] = useState('');
  const [error, setError] = useState('');
  const openDialog = useRef(null);
  openDialog.current = dialogId;

  const guard = useCallback(async (work) => {
    setError('');
    try {
      return await work();
    } catch (failure) {
      if (failure.status === 401) onSignOut();
      setError(String(failure.message || failure));
      return undefined;
    }
  }, [onSignOut]);

  useEffect(() => {
    guard(async () => {
      const page = await api('/api/projects?limit=100', { token });
      setProjects(page.items);
      setProjectId((current) => current ?? page.items[0]?.id ?? null);
    });
  }, [token, guard]);

  const loadDialogs = useCallback(() => guard(async () => {
    if (!projectId) return;
    const page = await api(`/api/dialogs?project_id=${projectId}&limit=100`, { token });
    setDialogs(page.items);
  }), [projectId, token, guard]);

  useEffect(() => {
    loadDialogs();
  }, [loadDialogs]);

  useEffect(() => {
    if (!dialogId) return;
    setMessages([]);
    guard(async () => {
      const page = await api(`/api/chat/${dialogId}/messages?limit=100`, { token });
      setMessages((live) => page.items.reduce(merge, live));
    });
  }, [dialogId, token, guard]);

  const socketState = useMessageSocket(token, (message) => {
    if (message.dialog_id === openDialog.current) setMessages((list) => merge(list, message));
    else setUnread((counts) => ({ ...counts, [message.dialog_id]: (counts[message.dialog_id] || 0) + 1 }));
  }, onSignOut);

  const createDialog = (event) => {
    event.preventDefault();
    guard(async () => {
      const dialog = await api('/api/dialogs', { token, method: 'POST', body: { project_id: projectId, title } });
      setTitle('');
      setDialogs((list) => [dialog, ...list]);
      setDialogId(dialog.id);
    });
  };

  const send = (event) => {
    event.preventDefault();
    const content = draft.trim();
    if (!content) return;
    guard(async () => {
      const message = await api(`/api/chat/${dialogId}/messages`, { token, method: 'POST', body: { content } });
      setDraft('');
      setMessages((list) => merge(list, message));
    });
  };

  const select = (id) => {
    setDialogId(id);
    setUnread((counts) => ({ ...counts, [id]: 0 }));
  };

  return (
    <section className="card" data-testid="workspace">
      <h2>Dialogs</h2>
      <p className="muted">
        <span data-testid="user-email">{session.user?.email}</span> · live updates:{' '}
        <span data-testid="chat-ws">{socketState}</span>{' '}
        <button type="button" className="link" onClick={onSignOut}>Log out</button>
      </p>
      {projects.length > 1 && (
        <select value={projectId ?? ''} onChange={(event) => setProjectId(event.target.value)}>
          {projects.map((p) => <option key={p.id} value={p.id}>{p.name}</option>)}
        </select>
      )}
      <form onSubmit={createDialog}>
        <input name="title" placeholder="New dialog title" value={title}
          onChange={(event) => setTitle(event.target.value)} required />
        <button type="submit" disabled={!projectId}>Create</button>
      </form>
      <ul data-testid="dialogs" className="dialogs">
        {dialogs.map((d) => (
          <li key={d.id}>
            <button type="button" className={d.id === dialogId ? 'link active' : 'link'} onClick={() => select(d.id)}>
              {d.title}{unread[d.id] ? ` (${unread[d.id]})` : ''}
            </button>
          </li>
        ))}
      </ul>
      {dialogId && (
        <div data-testid="dialog">
          <ol data-testid="messages" className="messages">
            {messages.map((m) => (
              <li key={m.id} className={`message message-${m.role}`} data-role={m.role}>{m.content}</li>
            ))}
          </ol>
          <form onSubmit={send}>
            <input name="message" placeholder="Message" value={draft}
              onChange={(event) => setDraft(event.target.value)} />
            <button type="submit">Send</button>
          </form>
        </div>
      )}
      {error && <p className="error" data-testid="workspace-error">{error}</p>}
    </section>
  );
}
