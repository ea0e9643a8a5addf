-- What `adapto db check` (the RLS lints of Supabase's database linter) found
-- in 0001-0003, fixed.
--
-- function_search_path_mutable: the trigger function ran with the caller's
-- search_path; everything it calls lives in pg_catalog, which is always searched.
ALTER FUNCTION public.notify_chat_message() SET search_path = '';

-- rls_enabled_no_policy: refresh_tokens and telegram_updates are meant for
-- service_role alone (the auth endpoints, the webhook). service_role bypasses
-- RLS anyway; these policies say so in the schema instead of by omission, and
-- anon/authenticated still match no policy and see nothing.
CREATE POLICY service_role_only ON refresh_tokens FOR ALL TO service_role
  USING (true) WITH CHECK (true);
CREATE POLICY service_role_only ON telegram_updates FOR ALL TO service_role
  USING (true) WITH CHECK (true);
