-- probe_requests: what /api/probe/record received, one row per request processed.
--
-- adapto's deploy benchmarks POST unique ids through nginx across restarts and
-- then read this table: an id found twice was processed twice (a retried POST),
-- a 2xx the client saw whose id is absent was acknowledged but lost. No unique
-- key on request_id on purpose: a duplicate must be stored to be counted.
-- Expand only (a new table): the release before this one never touches it.
CREATE TABLE public.probe_requests (
  seq           bigserial PRIMARY KEY,
  request_id    text NOT NULL CHECK (length(request_id) BETWEEN 1 AND 200),
  port          integer,
  pid           integer NOT NULL,
  release       text NOT NULL,
  payload_bytes integer NOT NULL,
  received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX probe_requests_request_id ON public.probe_requests (request_id);

-- RLS like every table: the endpoint writes as service_role (probe token checked
-- in code); among users only admins may read the rows.
ALTER TABLE public.probe_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY admin_read ON public.probe_requests FOR SELECT TO authenticated
  USING ((SELECT public.is_admin()));
GRANT SELECT ON public.probe_requests TO authenticated;
GRANT SELECT, INSERT, DELETE ON public.probe_requests TO service_role;
GRANT USAGE, SELECT ON SEQUENCE public.probe_requests_seq_seq TO service_role;
