import { useEffect, useRef, useState } from 'react';

const RECONNECT_MS = 2000;

// Same host as the page, wss under https: nginx proxies /ws to the backend.
function socketUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${window.location.host}/ws`;
}

export default function LiveChannel() {
  const [state, setState] = useState('connecting');
  const [hello, setHello] = useState(null);
  const [echoes, setEchoes] = useState([]);
  const [draft, setDraft] = useState('');
  const socketRef = useRef(null);

  useEffect(() => {
    let stopped = false;
    let timer;

    const open = () => {
      setState('connecting');
      const socket = new WebSocket(socketUrl());
      socketRef.current = socket;
      socket.onopen = () => setState('open');
      socket.onmessage = (event) => {
        // The first message is the backend's hello; the rest are echoes.
        try {
          const message = JSON.parse(event.data);
          if (message && message.type === 'hello') {
            setHello(message);
            return;
          }
        } catch {
          // Not JSON: an echo of plain text.
        }
        setEchoes((list) => [...list.slice(-9), String(event.data)]);
      };
      // A deploy restarts backends (close code 1012): reconnect, and the
      // hello then names whichever release answers now.
      socket.onclose = (event) => {
        setState(`closed (${event.code})`);
        if (!stopped) timer = setTimeout(open, RECONNECT_MS);
      };
    };

    open();
    return () => {
      stopped = true;
      clearTimeout(timer);
      socketRef.current?.close();
    };
  }, []);

  const send = (event) => {
    event.preventDefault();
    const socket = socketRef.current;
    if (!draft || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(draft);
    setDraft('');
  };

  return (
    <section className="card">
      <h2>Live channel</h2>
      <dl>
        <dt>WebSocket</dt>
        <dd data-testid="ws-state">{state}</dd>
        <dt>Hello</dt>
        <dd data-testid="ws-hello">
          {hello ? `release ${hello.release}, instance ${hello.instance || '—'}` : '—'}
        </dd>
      </dl>
      <form onSubmit={send}>
        <input value={draft} onChange={(event) => setDraft(event.target.value)} placeholder="Message" />
        <button type="submit" disabled={state !== 'open'}>
          Send
        </button>
      </form>
      <ul data-testid="ws-echoes">
        {echoes.map((text, index) => (
          <li key={index}>{text}</li>
        ))}
      </ul>
    </section>
  );
}
