-- Row Level Security on every table, with policies written as for Supabase.
--
-- Nothing is FORCE'd: the owner role only runs migrations (the application
-- never connects as it), and public.is_admin() below reads users as the
-- owner, which a forced policy on users would turn into a recursion.
-- service_role has BYPASSRLS and needs no policy. `(select auth.uid())`
-- rather than `auth.uid()`: evaluated once per query, not once per row.

-- Admins see all. Looked up per statement (not taken from a claim), so
-- taking the flag away works at once, without waiting for tokens to expire.
CREATE FUNCTION public.is_admin() RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT coalesce((SELECT u.is_admin FROM public.users u WHERE u.id = auth.uid()), false)
$$;
REVOKE EXECUTE ON FUNCTION public.is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.is_admin() TO anon, authenticated, service_role;

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY[
    'users', 'projects', 'niches', 'user_niches', 'widget_development_settings',
    'telegram_settings', 'dialogs', 'chat_history', 'knowledge_sources',
    'knowledge_chunks', 'assistants', 'chat_messages', 'conversations',
    'refresh_tokens', 'telegram_updates', 'schema_migrations'
  ] LOOP
    EXECUTE format('ALTER TABLE public.%I ENABLE ROW LEVEL SECURITY', t);
  END LOOP;
  -- The tables whose rows belong to one user through owner_id.
  FOREACH t IN ARRAY ARRAY[
    'projects', 'widget_development_settings', 'telegram_settings', 'dialogs',
    'chat_history', 'knowledge_sources', 'knowledge_chunks', 'assistants', 'conversations'
  ] LOOP
    EXECUTE format(
      'CREATE POLICY owner_or_admin ON public.%I FOR ALL TO authenticated '
      'USING (owner_id = (SELECT auth.uid()) OR (SELECT public.is_admin())) '
      'WITH CHECK (owner_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))', t);
    EXECUTE format(
      'GRANT SELECT, INSERT, UPDATE, DELETE ON public.%I TO authenticated', t);
  END LOOP;
END
$$;

-- A message belongs to the dialog's owner, and only into one's own dialog
-- (or any, for an admin): a guessed dialog id of someone else is refused by
-- the database itself, whatever the API does.
CREATE POLICY owner_or_admin ON chat_messages FOR ALL TO authenticated
  USING (owner_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
  WITH CHECK (
    (SELECT public.is_admin())
    OR (owner_id = (SELECT auth.uid())
        AND EXISTS (SELECT 1 FROM dialogs d WHERE d.id = dialog_id AND d.owner_id = (SELECT auth.uid())))
  );
GRANT SELECT, INSERT, UPDATE, DELETE ON chat_messages TO authenticated;

-- A user reads and renames oneself; accounts are created by the auth
-- endpoints (service_role). The password hash is not readable by users at
-- all (column privileges), and is_admin is not writable by them.
CREATE POLICY self_or_admin ON users FOR SELECT TO authenticated
  USING (id = (SELECT auth.uid()) OR (SELECT public.is_admin()));
CREATE POLICY self_update ON users FOR UPDATE TO authenticated
  USING (id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
  WITH CHECK (id = (SELECT auth.uid()) OR (SELECT public.is_admin()));
GRANT SELECT (id, email, display_name, is_admin, created_at) ON users TO authenticated;
GRANT UPDATE (display_name) ON users TO authenticated;

-- The niche catalogue is shared: everyone signed in reads it, admins edit it.
CREATE POLICY read_all ON niches FOR SELECT TO authenticated USING (true);
CREATE POLICY admin_write ON niches FOR ALL TO authenticated
  USING ((SELECT public.is_admin())) WITH CHECK ((SELECT public.is_admin()));
GRANT SELECT, INSERT, UPDATE, DELETE ON niches TO authenticated;

CREATE POLICY self_or_admin ON user_niches FOR ALL TO authenticated
  USING (user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()))
  WITH CHECK (user_id = (SELECT auth.uid()) OR (SELECT public.is_admin()));
GRANT SELECT, INSERT, DELETE ON user_niches TO authenticated;

-- Which migrations ran is no secret: health reads it as anon.
CREATE POLICY read_all ON schema_migrations FOR SELECT TO anon, authenticated USING (true);
GRANT SELECT ON schema_migrations TO anon, authenticated;

-- refresh_tokens and telegram_updates: no policy, so only service_role
-- (the auth endpoints, the webhook) reaches them.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO service_role;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO authenticated, service_role;
