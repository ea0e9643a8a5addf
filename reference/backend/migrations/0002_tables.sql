-- The runbook's 13 tables, plus two auxiliary ones (refresh_tokens,
-- telegram_updates). Every row that belongs to someone carries owner_id, even
-- where a parent row already says it (messages, chunks): the policies then
-- compare one column instead of joining per row.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL UNIQUE CHECK (email = lower(email)),
  password_hash text NOT NULL,
  display_name  text NOT NULL DEFAULT '',
  is_admin      boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name       text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_owner ON projects (owner_id, created_at DESC);

CREATE TABLE niches (
  id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL UNIQUE
);

CREATE TABLE user_niches (
  user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  niche_id bigint NOT NULL REFERENCES niches (id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, niche_id)
);

-- One embeddable widget per row; widget_id is the public key the embed code
-- carries (not the primary key, so it can be rotated).
CREATE TABLE widget_development_settings (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  widget_id       uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id      uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  allowed_origins text[] NOT NULL DEFAULT '{}',
  settings        jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX widget_settings_owner ON widget_development_settings (owner_id);

CREATE TABLE assistants (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name          text NOT NULL,
  system_prompt text NOT NULL DEFAULT '',
  settings      jsonb NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assistants_owner ON assistants (owner_id);

CREATE TABLE telegram_settings (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id   uuid NOT NULL UNIQUE REFERENCES projects (id) ON DELETE CASCADE,
  assistant_id uuid REFERENCES assistants (id) ON DELETE SET NULL,
  bot_username text NOT NULL DEFAULT '',
  enabled      boolean NOT NULL DEFAULT true,
  settings     jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_settings_owner ON telegram_settings (owner_id);

-- channel + external_id map outside conversations (a Telegram chat, a widget
-- visitor) onto one dialog each.
CREATE TABLE dialogs (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id  uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  title       text NOT NULL DEFAULT '',
  channel     text NOT NULL DEFAULT 'web' CHECK (channel IN ('web', 'widget', 'telegram')),
  external_id text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, channel, external_id)
);
CREATE INDEX dialogs_owner ON dialogs (owner_id, created_at DESC, id DESC);

CREATE TABLE chat_messages (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dialog_id  uuid NOT NULL REFERENCES dialogs (id) ON DELETE CASCADE,
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role       text NOT NULL CHECK (role IN ('user', 'assistant', 'operator', 'system')),
  content    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_messages_dialog ON chat_messages (dialog_id, id);
CREATE INDEX chat_messages_owner ON chat_messages (owner_id);

-- An assistant's working conversation (its LLM context), optionally tied to a dialog.
CREATE TABLE conversations (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  assistant_id uuid REFERENCES assistants (id) ON DELETE CASCADE,
  dialog_id    uuid REFERENCES dialogs (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner ON conversations (owner_id);

CREATE TABLE chat_history (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role            text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
  content         text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_history_conversation ON chat_history (conversation_id, id);

CREATE TABLE knowledge_sources (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  title      text NOT NULL,
  content    text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_sources_owner ON knowledge_sources (owner_id, project_id);

-- 'simple' (no stemming): the platform's texts are Russian and English, and
-- one configuration ranks both the same way.
CREATE TABLE knowledge_chunks (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source_id  uuid NOT NULL REFERENCES knowledge_sources (id) ON DELETE CASCADE,
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  ordinal    integer NOT NULL,
  content    text NOT NULL,
  tsv        tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED,
  UNIQUE (source_id, ordinal)
);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_project ON knowledge_chunks (project_id);

-- Auxiliary: refresh tokens (stored hashed, rotated on use) and the Telegram
-- update ids already processed (a webhook retry must not answer twice).
CREATE TABLE refresh_tokens (
  token_hash text PRIMARY KEY,
  user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE telegram_updates (
  update_id    bigint PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now()
);

-- New messages fan out to every backend instance's WebSocket clients. Only
-- ids cross the channel: each instance reads the row back as the listening
-- user, so RLS decides who sees it (and the 8000-byte payload limit never bites).
CREATE FUNCTION notify_chat_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('chat_messages', json_build_object(
    'id', NEW.id, 'dialog_id', NEW.dialog_id, 'owner_id', NEW.owner_id)::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER chat_messages_notify AFTER INSERT ON chat_messages
  FOR EACH ROW EXECUTE FUNCTION notify_chat_message();
