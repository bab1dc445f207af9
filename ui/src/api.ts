// All access to tierflow's HTTP API (/api/v1) in one place: the token, the
// endpoints and the shapes the views use. The JSON is the same rendering as
// the CLI's `--output json` (api/run_service.h has every field).

export interface TaskCounts {
  total: number;
  done: number;
  [state: string]: number;
}

export interface Run {
  id: string;
  pipeline: string;
  file?: string;
  working_dir?: string;
  params?: Record<string, unknown>;
  state: string;
  engine?: string;
  engine_alive?: boolean | null;
  engine_host?: string;
  slots?: number;
  created_at_ms: number | null;
  started_at_ms: number | null;
  finished_at_ms: number | null;
  duration_ms: number | null;
  message?: string;
  tasks: TaskCounts;
}

export interface Copy {
  id: number;
  tier: string;
  uri: string;
  role: string;
  bytes: number | null;
  content_hash: string | null;
  state: string;
  created_at_ms?: number | null;
  message?: string;  // why it is in that state, as the engine recorded it
}

// A copy's role as shown: a released volatile home (state `released`) is
// no home any more; its producer runs again when it is needed.
export function copyRole(c: Copy): string {
  return c.state === 'released' ? 'released · recomputable' : c.role;
}

export interface Artifact {
  id: number;
  ref: string;
  run_id: string;
  task_id: string;
  name: string;
  attempt_id?: number;
  content_hash: string | null;
  bytes: number | null;
  files?: number | null;
  created_at_ms?: number | null;
  copies: Copy[];
}

export interface Attempt {
  id: number;
  number: number;
  state: string;
  worker?: string | null;
  pid?: number | null;
  command?: unknown;
  cached_from?: number | null;
  cached_from_ref?: string | null;
  started_at_ms: number | null;
  finished_at_ms: number | null;
  duration_ms: number | null;
  exit_code: number | null;
  signal: string | number | null;
  message?: string;
  log_bytes?: number | null;
}

export interface Task {
  id: string;
  seq?: number;
  stage: string;
  kind?: string;
  item?: string | null;
  item_index?: number | null;
  layer?: number;
  state: string;
  attempt_count?: number;
  started_at_ms?: number | null;
  finished_at_ms?: number | null;
  duration_ms?: number | null;
  message?: string;
  attempts?: Attempt[];
  outputs?: Artifact[];
}

export interface RunDetail {
  run: Run;
  tasks: Task[];
}

// The run graph (GET /runs/RUN/graph): every task without its attempts, the
// task edges, and one group per stage with its counts per state. A stage
// pair with too many task edges comes as one collapsed stage edge.
export interface GraphStage {
  name: string;
  kind: string;
  foreach: boolean;
  total: number;
  counts: Record<string, number>;
}

export interface GraphTask {
  id: string;
  stage: string;
  kind?: string;
  item?: string | null;
  state: string;
  attempt_count?: number;
}

export interface RunGraph {
  run: Run;
  stages: GraphStage[];
  tasks: GraphTask[];
  edges: Array<{ from: string; to: string }>;
  stageEdges: Array<{ from: string; to: string; collapsed: boolean }>;
}

interface GraphBody {
  run: Run;
  nodes: GraphTask[];
  edges: Array<{ from: string; to: string }>;
  groups: Array<{ stage: string; kind: string; foreach: boolean; tasks: number; states: Record<string, number> }>;
  stage_edges: Array<{ from: string; to: string; collapsed: boolean }>;
}

// A placement decision as the engine makes it (api/tier_service.cc).
export interface OutputPlacement {
  output: string;
  home: string;
  write_tier: string;
  needs?: string;
  bytes?: number;
  reason: string;
}

export interface InputPlacement {
  input: string;
  producer_task: string;
  output: string;
  home: string;
  source?: string;
  working: string;
  reason: string;
}

// Where a stage's checkpoints are written and flushed (scheduler/placement.h
// CheckpointPlacement); an empty tier name: none.
export interface CheckpointPlacement {
  stage: string;
  write_tier: string;
  node_tier: string;
  flush_tier: string;
  reason: string;
}

// One task with everything the task panel shows (GET /runs/RUN/tasks/TASK).
export interface TaskInfo {
  run_id: string;
  task: Task;
  placement: {
    // recorded: the engine's decisions, recorded when the run started;
    // recomputed: placed again (a run from before decisions were recorded);
    // implicit, unavailable: none to show (see reason).
    source?: 'recorded' | 'recomputed' | 'implicit' | 'unavailable';
    reason?: string;
    outputs: OutputPlacement[];
    inputs: InputPlacement[];
    checkpoint?: CheckpointPlacement | null;
    workers?: Array<{ attempt: number | null; time_ms: number; reason: string }>;
  };
  io: Array<{ tier: string; read_bytes: number; written_bytes: number }>;
  data_wait: { seconds: number; source: string } | null;
}

export interface LineageNode {
  id: string;
  type: 'artifact' | 'attempt' | string;
  [key: string]: unknown;
}

export interface Lineage {
  run_id?: string;
  root?: string;
  direction?: string;
  nodes: LineageNode[];
  edges: Array<{ from: string; to: string; kind: string; name?: string }>;
}

export interface Profile {
  seq_read_mb_s?: number | null;
  seq_write_mb_s?: number | null;
  rand_read_iops?: number | null;
  latency_us?: number | null;
  create_us?: number | null;
  stat_us?: number | null;
  measured_at_ms?: number | null;
  [key: string]: unknown;
}

export interface Tier {
  name: string;
  adapter: string;
  location: string;
  scope: string;
  durability: string;
  capacity_bytes: number | null;
  // What the state store holds there: copies present and their bytes.
  stored_copies?: number;
  stored_bytes?: number;
  fs_total_bytes?: number | null;
  fs_free_bytes?: number | null;
  declared_profile?: Profile | null;
  measured_profile?: Profile | null;
  [key: string]: unknown;
}

export interface Logs {
  text: string;
  attempt: number;
  size_bytes: number;
  // Where `text` starts in the log: bytes before it were left out of the tail.
  offset: number;
  truncated: boolean;
  notes: string[];
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const kTokenKey = 'tierflow.token';

// `?token=` on first load goes to sessionStorage and out of the address bar.
export function initToken(): void {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token === null) return;
  sessionStorage.setItem(kTokenKey, token);
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', location.pathname + (rest ? `?${rest}` : '') + location.hash);
}

function token(): string | null {
  return sessionStorage.getItem(kTokenKey);
}

const kBase = '/api/v1';

function url(path: string, query?: Record<string, string | number | null | undefined>): string {
  let u = `${kBase}${path}`;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
    const qs = q.toString();
    if (qs) u += `?${qs}`;
  }
  return u;
}

async function request(path: string, query?: Record<string, string | number | null | undefined>,
                       signal?: AbortSignal): Promise<Response> {
  const headers: Record<string, string> = {};
  const t = token();
  if (t) headers['Authorization'] = `Bearer ${t}`;
  const res = await fetch(url(path, query), { headers, signal });
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body && typeof body.message === 'string') msg = body.message;
      else if (body && typeof body.error === 'string') msg = body.error;
    } catch {
      // not JSON: keep the status line
    }
    if (res.status === 401) msg += ' — this server needs a token: open the UI with ?token=TOKEN';
    throw new ApiError(res.status, msg);
  }
  return res;
}

async function json<T>(path: string, query?: Record<string, string | number | null | undefined>,
                       signal?: AbortSignal): Promise<T> {
  return (await request(path, query, signal)).json() as Promise<T>;
}

const enc = encodeURIComponent;

export async function runs(opts: { state?: string; limit?: number } = {}, signal?: AbortSignal): Promise<Run[]> {
  const body = await json<{ runs: Run[] } | Run[]>('/runs', { state: opts.state, limit: opts.limit }, signal);
  return Array.isArray(body) ? body : body.runs;
}

export function run(id: string, signal?: AbortSignal): Promise<RunDetail> {
  return json<RunDetail>(`/runs/${enc(id)}`, undefined, signal);
}

export async function graph(id: string, signal?: AbortSignal): Promise<RunGraph> {
  const b = await json<GraphBody>(`/runs/${enc(id)}/graph`, undefined, signal);
  return {
    run: b.run,
    tasks: b.nodes,
    edges: b.edges,
    stageEdges: b.stage_edges ?? [],
    stages: b.groups.map((g) => ({ name: g.stage, kind: g.kind, foreach: g.foreach, total: g.tasks, counts: g.states })),
  };
}

export function task(runId: string, taskId: string, signal?: AbortSignal): Promise<TaskInfo> {
  return json<TaskInfo>(`/runs/${enc(runId)}/tasks/${enc(taskId)}`, undefined, signal);
}

// The log's last `tail` bytes of attempt `attempt` (null: the latest).
export function logs(runId: string, taskId: string, attempt: number | null, tail: number,
                     signal?: AbortSignal): Promise<Logs> {
  return json<Logs>(`/runs/${enc(runId)}/tasks/${enc(taskId)}/logs`, { attempt, tail }, signal);
}

export function runLineage(runId: string, signal?: AbortSignal): Promise<Lineage> {
  return json<Lineage>(`/runs/${enc(runId)}/lineage`, undefined, signal);
}

export function artifactLineage(id: number | string, direction: string, depth: number | null,
                                signal?: AbortSignal): Promise<Lineage> {
  return json<Lineage>(`/artifacts/${enc(String(id))}/lineage`, { direction, depth }, signal);
}

export async function tiers(signal?: AbortSignal): Promise<Tier[]> {
  const body = await json<{ tiers: Tier[] } | Tier[]>('/tiers', undefined, signal);
  return Array.isArray(body) ? body : body.tiers;
}

export async function workers(signal?: AbortSignal): Promise<Array<Record<string, unknown>>> {
  const body = await json<{ workers: Array<Record<string, unknown>> } | Array<Record<string, unknown>>>(
      '/workers', undefined, signal);
  return Array.isArray(body) ? body : body.workers;
}

// ---- live updates ---------------------------------------------------------

// One event from /api/v1/events, as much as the views need of it.
export interface LiveEvent {
  type: string;
  run?: string;
  task?: string;
  state?: string;
  data: Record<string, unknown>;
}

type Listener = (ev: LiveEvent) => void;
// idle: no view listens; offline: the stream broke and a retry is due.
export type LiveStatus = 'idle' | 'live' | 'connecting' | 'offline';
type StatusListener = (status: LiveStatus) => void;

const listeners = new Set<Listener>();
const statusListeners = new Set<StatusListener>();
let source: EventSource | null = null;
let retryMs = 1000;
let lastEventId = '';
let opened = false;  // a stream was open before: a new one is a reconnection
let retryTimer: number | undefined;

function setStatus(s: LiveStatus): void {
  for (const l of statusListeners) l(s);
}

function dispatch(type: string, raw: string, id = ''): void {
  if (id) lastEventId = id;
  let data: Record<string, unknown> = {};
  try {
    const v = JSON.parse(raw);
    if (v && typeof v === 'object') data = v as Record<string, unknown>;
  } catch {
    return;
  }
  const str = (...keys: string[]): string | undefined => {
    for (const k of keys) if (typeof data[k] === 'string') return data[k] as string;
    return undefined;
  };
  const ev: LiveEvent = {
    type: str('type', 'event') ?? type,
    run: str('run', 'run_id'),
    task: str('task', 'task_id'),
    state: str('state'),
    data,
  };
  for (const l of listeners) l(ev);
}

// Event names the server may send besides unnamed `message` events.
const kEventNames = ['run', 'task', 'attempt', 'artifact', 'copy', 'tier', 'worker'];

function connect(): void {
  if (source || listeners.size === 0) return;
  setStatus('connecting');
  const t = token();
  // EventSource cannot send headers: the token goes in the query.
  // A new stream after a broken one asks for the rows it missed.
  const es = new EventSource(url('/events', { token: t, last_event_id: lastEventId || null }));
  source = es;
  es.onopen = () => {
    retryMs = 1000;
    setStatus('live');
    // Views reload what they show: states that have no event row were missed.
    if (opened) for (const l of listeners) l({ type: 'reconnected', data: {} });
    opened = true;
  };
  es.onmessage = (e) => dispatch('message', e.data, e.lastEventId);
  for (const name of kEventNames) {
    es.addEventListener(name, (e) => dispatch(name, (e as MessageEvent).data, (e as MessageEvent).lastEventId));
  }
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error, the server gone): retry with backoff.
      es.close();
      source = null;
      setStatus('offline');
      window.clearTimeout(retryTimer);
      retryTimer = window.setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    } else {
      setStatus('connecting');
    }
  };
}

let closeTimer: number | undefined;

export function subscribe(l: Listener): () => void {
  listeners.add(l);
  window.clearTimeout(closeTimer);
  connect();
  return () => {
    listeners.delete(l);
    if (listeners.size > 0) return;
    // Kept open a moment: the next view usually subscribes at once.
    window.clearTimeout(closeTimer);
    closeTimer = window.setTimeout(() => {
      if (listeners.size > 0) return;
      source?.close();
      source = null;
      opened = false;
      window.clearTimeout(retryTimer);
      setStatus('idle');
    }, 2000);
  };
}

export function onStatus(l: StatusListener): void {
  statusListeners.add(l);
}

// ---- uirun (issue 20): a run's failed tasks with their log tails ------------

// One failed task as GET /api/v1/runs/RUN/failures lists it (api/run_failures.h).
export interface Failure {
  task_id: string;
  stage: string;
  item: string | null;
  state: string;
  message: string;
  attempt: number | null;
  exit_code: number | null;
  signal: number | null;
  attempt_message: string | null;
  finished_at_ms: number | null;
  log_path: string | null;
  log_tail: string[];
  log_cut: boolean;
  log_note: string;
  logs_command: string;
}

export interface FailureList {
  run_id: string;
  total: number;
  failures: Failure[];
}

export function failures(runId: string, opts: { limit?: number; lines?: number } = {},
                         signal?: AbortSignal): Promise<FailureList> {
  return json<FailureList>(`/runs/${enc(runId)}/failures`, { limit: opts.limit, lines: opts.lines }, signal);
}

// ---------------------------------------------------------------- uidata
// Where a run's data is (issue 20): artifact downloads, the tiers a run
// used, its checkpoints.

// The largest artifact GET /artifacts/ID/download answers with.
export const kMaxDownloadBytes = 16 * 1024 * 1024;

// True when the server can answer a download of `a`: one file, at most 16
// MiB, with a present copy (it still refuses one it cannot read safely).
export function canDownload(a: Artifact): boolean {
  return (a.files ?? 1) === 1 && a.bytes !== null && a.bytes <= kMaxDownloadBytes &&
    a.copies.some((c) => c.state === 'present');
}

// A plain link: with a token, the cookie the server set on `?token=` goes
// with it (the token never goes into the address).
export function downloadUrl(a: Artifact): string {
  return url(`/artifacts/${a.id}/download`);
}

// What a run holds on one tier (GET /runs/RUN/tiers).
export interface RunTierUse {
  name: string;
  adapter: string;
  location: string;
  recorded: boolean;
  outputs: number;
  home_bytes: number;
  copies: number;
  working_bytes: number;
  evicted: number;
  checkpoints: number;
  checkpoint_bytes: number;
  bytes: number;
}

export async function runTiers(runId: string, signal?: AbortSignal): Promise<RunTierUse[]> {
  return (await json<{ tiers: RunTierUse[] }>(`/runs/${encodeURIComponent(runId)}/tiers`, undefined, signal)).tiers;
}

// A checkpoint (GET /runs/RUN/checkpoints).
export interface RunCheckpoint {
  id: number;
  task_id: string;
  attempt_id: number;
  attempt: number | null;
  name: string;
  step: number | null;
  local_uri: string;
  tier: string;
  uri: string;
  bytes: number | null;
  files: number | null;
  content_hash: string | null;
  state: string;
  committed_at_ms: number;
  flushed_at_ms: number | null;
  flush_ms: number | null;
  message: string;
}

export async function runCheckpoints(runId: string, signal?: AbortSignal): Promise<RunCheckpoint[]> {
  return (await json<{ checkpoints: RunCheckpoint[] }>(`/runs/${encodeURIComponent(runId)}/checkpoints`,
    undefined, signal)).checkpoints;
}
