import { Component, Suspense, lazy, useCallback, useEffect, useState } from 'react';
import Account from './Account.jsx';
import { loadSession, saveSession } from './api.js';

// Its own chunk, loaded after the first paint: a tab opened on an older build
// fetches this file later, so a deploy must keep serving the old hashed
// chunks for a while (adapto keeps earlier releases' assets for that).
const LiveChannel = lazy(() => import('./LiveChannel.jsx'));
// Only a signed-in visitor needs the dialogs screen: its own chunk too.
const Workspace = lazy(() => import('./Workspace.jsx'));

// Set at build time (VITE_RELEASE=... npm run build) to tell builds apart.
const BUILD = import.meta.env.VITE_RELEASE || 'dev';

function useHealth() {
  const [health, setHealth] = useState({ state: 'loading' });

  const refresh = useCallback(async () => {
    setHealth({ state: 'loading' });
    try {
      const response = await fetch('/api/health', { cache: 'no-store' });
      const body = await response.json().catch(() => ({}));
      setHealth({ state: response.ok ? 'ok' : 'failing', code: response.status, body });
    } catch (error) {
      setHealth({ state: 'unreachable', error: String(error) });
    }
  }, []);

  useEffect(() => {
    refresh();
  }, [refresh]);

  return [health, refresh];
}

function HealthCard() {
  const [health, refresh] = useHealth();
  const body = health.body ?? {};
  return (
    <section className="card">
      <h2>Backend</h2>
      <dl>
        <dt>Status</dt>
        <dd data-testid="health-status" className={`status status-${health.state}`}>
          {health.state === 'loading' ? 'checking…' : (body.status ?? health.state)}
          {health.code && health.code !== 200 ? ` (HTTP ${health.code})` : ''}
        </dd>
        <dt>Release</dt>
        <dd data-testid="health-release">{body.release ?? '—'}</dd>
        <dt>Instance</dt>
        <dd data-testid="health-instance">{body.instance || '—'}</dd>
      </dl>
      {health.error && <p className="error">{health.error}</p>}
      <button type="button" onClick={refresh}>
        Check again
      </button>
    </section>
  );
}

// A lazy chunk that fails to load (its build was removed from the server)
// would otherwise blank the whole page: say so and offer a reload instead.
class ChunkBoundary extends Component {
  state = { failed: false };

  static getDerivedStateFromError() {
    return { failed: true };
  }

  render() {
    if (!this.state.failed) return this.props.children;
    return (
      <section className="card" data-testid="chunk-error">
        <h2>{this.props.title ?? 'Live channel'}</h2>
        <p className="error">This part of the page could not be loaded: the site was probably updated.</p>
        <button type="button" onClick={() => window.location.reload()}>
          Reload
        </button>
      </section>
    );
  }
}

function useSession() {
  const [session, setSession] = useState(loadSession);
  const change = useCallback((next) => {
    saveSession(next);
    setSession(next);
  }, []);
  const signOut = useCallback(() => change(null), [change]);
  return [session, change, signOut];
}

export default function App() {
  const [session, setSession, signOut] = useSession();
  return (
    <main>
      <header>
        <h1>AI Manager Platform</h1>
        <p className="muted">
          Reference frontend, build <span data-testid="build">{BUILD}</span>
        </p>
      </header>
      <HealthCard />
      {session ? (
        <ChunkBoundary title="Dialogs">
          <Suspense fallback={<section className="card">Loading dialogs…</section>}>
            <Workspace session={session} onSignOut={signOut} />
          </Suspense>
        </ChunkBoundary>
      ) : (
        <Account onSession={setSession} />
      )}
      <ChunkBoundary>
        <Suspense fallback={<section className="card">Loading live channel…</section>}>
          <LiveChannel />
        </Suspense>
      </ChunkBoundary>
    </main>
  );
}
