import { useState } from 'react';
import { api } from './api.js';

/** Sign up or log in; hands the session ({access_token, user, ...}) to onSession. */
export default function Account({ onSession }) {
  const [mode, setMode] = useState('signup');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      onSession(await api(`/api/auth/${mode}`, { method: 'POST', body: { email, password } }));
    } catch (failure) {
      setError(String(failure.message || failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" data-testid="account">
      <h2>{mode === 'signup' ? 'Sign up' : 'Log in'}</h2>
      <form onSubmit={submit} className="stack">
        <input name="email" type="email" autoComplete="username" placeholder="Email"
          value={email} onChange={(event) => setEmail(event.target.value)} required />
        <input name="password" type="password" placeholder="Password (8 characters or more)"
          autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
          value={password} onChange={(event) => setPassword(event.target.value)} required />
        <button type="submit" disabled={busy}>{mode === 'signup' ? 'Create account' : 'Log in'}</button>
      </form>
      {error && <p className="error" data-testid="account-error">{error}</p>}
      <button type="button" className="link"
        onClick={() => setMode(mode === 'signup' ? 'login' : 'signup')}>
        {mode === 'signup' ? 'I have an account: log in' : 'New here: sign up'}
      </button>
    </section>
  );
}
