// The runtime document's `widgets` map <-> the widget manager's models.
//   map entry {target_name, state, buffers}  (daemon-written, replaced whole on a change)
//   - new key: a model (children first: every new model is registered before any is
//     built, so "IPY_MODEL_..." references resolve in any order);
//   - changed entry: the keys whose value changed go to the model as a kernel `update`
//     (ipywidgets' own path: deserializers run, nothing is sent back);
//   - removed key: the comm closed (or the kernel restarted): the model and its views go.
// A change the person makes goes out through the fake comm's send() as REST
// (POST .../widgets/{id}/state or /message); the throttle of ipywidgets (one update in
// flight per model) is released when the POST returns. While our own value of a key is
// in flight, the document's older values of that key are not applied (no slider jumping
// back while dragged); the latest is applied once ours is settled.
// Binary values go out base64-encoded with their paths (ipywidgets' buffer_paths); an
// anywidget's code (`_esm`, `_css`) comes as a text blob and is put back as a string.
// The kernel's custom messages (`widget.send(...)`) come as live events on the runtime
// document's socket (never stored) and reach the model's `msg:custom` listeners.
import * as base from "@jupyter-widgets/base";
import * as Y from "yjs";
import type { NotebookApi, fetchBlob } from "../api";
import type { YWebsocketProvider } from "../provider";
import type { RuntWidgetManager } from "./widget_manager";

type Json = unknown;
type State = Record<string, Json>;
interface BufferRef {
  path: (string | number)[];
  blob?: string;
  base64?: string;
  media_type?: string;
}
type Binary = ArrayBuffer | ArrayBufferView;
type Message = { content: { comm_id: string; data: unknown }; buffers?: DataView[]; parent_header?: object };
interface Entry {
  target_name?: string;
  state?: State;
  buffers?: BufferRef[];
}

/** After our POST returns, how long the document may take to show our value. */
const SETTLE_MS = 400;

class DaemonComm implements base.IClassicComm {
  readonly target_name = "jupyter.widget";
  private onMsg: ((msg: unknown) => void) | null = null;
  private onClose: ((msg: unknown) => void) | null = null;
  /** Messages that came before the model listened (it is built asynchronously). */
  private early: Message[] = [];

  constructor(
    readonly comm_id: string,
    private readonly sync: WidgetSync,
  ) {}

  open(): string {
    return "";
  }

  send(data: unknown, callbacks?: base.ICallbacks, _metadata?: unknown, buffers?: Binary[]): string {
    const id = base.uuid();
    const message = (data ?? {}) as { method?: string; state?: State; content?: Json; buffer_paths?: (string | number)[][] };
    const binary = (buffers ?? []).map(toBase64);
    let sent: Promise<unknown> = Promise.resolve();
    if (message.method === "update" && message.state) {
      sent = this.sync.sendState(this.comm_id, message.state, message.buffer_paths ?? [], binary);
    } else if (message.method === "custom") sent = this.sync.sendMessage(this.comm_id, message.content, binary);
    const idle = (): void => {
      // Releases ipywidgets' throttle (WidgetModel._handle_status).
      callbacks?.iopub?.status?.({ content: { execution_state: "idle" }, parent_header: { msg_id: id } } as never);
    };
    sent.then(idle, (err: unknown) => {
      console.warn(`widget ${this.comm_id}: ${String(err)}`);
      idle();
    });
    return id;
  }

  close(): string {
    return ""; // a page never closes the kernel's models
  }

  on_msg(callback: (msg: unknown) => void): void {
    this.onMsg = callback;
    const early = this.early;
    this.early = [];
    for (const msg of early) callback(msg);
  }

  private receive(msg: Message): void {
    if (this.onMsg) this.onMsg(msg);
    else if (this.early.length < 1000) this.early.push(msg);
  }

  on_close(callback: (msg: unknown) => void): void {
    this.onClose = callback;
  }

  deliver(state: State, paths: (string | number)[][], buffers: (DataView | string)[]): void {
    // Text values (an anywidget's code) are put in the state here: ipywidgets' own
    // put_buffers takes only binary ones.
    const binaryPaths: (string | number)[][] = [];
    const binary: DataView[] = [];
    paths.forEach((path, i) => {
      const value = buffers[i];
      if (typeof value === "string") putAt(state, path, value);
      else {
        binaryPaths.push(path);
        binary.push(value);
      }
    });
    this.receive({
      content: { comm_id: this.comm_id, data: { method: "update", state, buffer_paths: binaryPaths } },
      buffers: binary,
      parent_header: {},
    });
  }

  /** The kernel's custom message (`widget.send(content, buffers)`). */
  custom(content: Json, buffers: DataView[]): void {
    this.receive({ content: { comm_id: this.comm_id, data: { method: "custom", content } }, buffers, parent_header: {} });
  }

  closed(): void {
    this.onClose?.({ content: { comm_id: this.comm_id, data: {} } });
  }
}

interface Tracked {
  comm: DaemonComm;
  /** JSON of every key's value as last read from the document. */
  seen: Map<string, string>;
  /** Keys we sent, with the JSON of our value, until the document shows it. */
  pending: Map<string, string>;
  buffers: string;
}

export class WidgetSync {
  private readonly tracked = new Map<string, Tracked>();
  private bound: Y.Map<unknown> | null = null;
  private readonly waiters = new Map<string, (() => void)[]>();
  /** Each model's custom messages, delivered in order (see onEvent). */
  private readonly messages = new Map<string, Promise<void>>();

  constructor(
    private readonly provider: YWebsocketProvider,
    private readonly api: NotebookApi,
    private readonly manager: RuntWidgetManager,
    private readonly fetchBytes: typeof fetchBlob,
  ) {
    this.bind();
    provider.onDoc(() => this.bind());
    provider.onSynced(() => this.reconcile());
    provider.onEvent((event) => this.onEvent(event));
    this.reconcile();
  }

  /** {model_id: state} as the document has it (window.runt.widgets()). */
  states(): Record<string, State> {
    const out: Record<string, State> = {};
    for (const [id, raw] of this.map().entries()) out[id] = { ...((raw as Entry)?.state ?? {}) };
    return out;
  }

  /** The model, once the document has it (a view's output may arrive first). */
  async model(modelId: string, timeoutMs = 10000): Promise<base.WidgetModel | null> {
    if (!this.tracked.has(modelId)) {
      const arrived = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        const list = this.waiters.get(modelId) ?? [];
        list.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
        this.waiters.set(modelId, list);
      });
      if (!arrived) return null;
    }
    try {
      return await this.manager.get_model(modelId);
    } catch {
      return null;
    }
  }

  sendState(modelId: string, state: State, bufferPaths: (string | number)[][] = [], buffers: string[] = []): Promise<unknown> {
    const rec = this.tracked.get(modelId);
    const sent = new Map(Object.entries(state).map(([k, v]) => [k, JSON.stringify(v)]));
    for (const [k, json] of sent) rec?.pending.set(k, json);
    const settle = (): void => {
      setTimeout(() => {
        if (!rec) return;
        for (const [k, json] of sent) {
          if (rec.pending.get(k) !== json) continue;
          rec.pending.delete(k);
          if (rec.seen.get(k) !== json) this.deliverLatest(modelId, [k]);
        }
      }, SETTLE_MS);
    };
    const body = buffers.length ? { state, buffer_paths: bufferPaths, buffers } : { state };
    const post = this.api.post(`/widgets/${encodeURIComponent(modelId)}/state`, body);
    post.then(settle, settle);
    return post;
  }

  sendMessage(modelId: string, content: Json, buffers: string[] = []): Promise<unknown> {
    const body = buffers.length ? { content, buffers } : { content };
    return this.api.post(`/widgets/${encodeURIComponent(modelId)}/message`, body).catch((err: unknown) => {
      if ((err as { status?: number }).status === 404) return; // the model just closed
      throw err;
    });
  }

  /** A kernel's custom message, live from the runtime document's socket. A model's
   *  messages are delivered in the order sent: one whose buffers are still being fetched
   *  is not overtaken by a later one without. */
  private onEvent(event: Record<string, unknown>): void {
    if (event.event !== "widget_message") return;
    const modelId = String(event.model_id ?? "");
    if (!this.tracked.has(modelId)) return;
    const refs = Array.isArray(event.buffers) ? (event.buffers as BufferRef[]) : [];
    const deliver = async (): Promise<void> => {
      const { buffers } = await resolveBuffers(refs, this.fetchBytes);
      const views = buffers.filter((b): b is DataView => typeof b !== "string");
      this.tracked.get(modelId)?.comm.custom(event.content ?? null, views);
    };
    const previous = this.messages.get(modelId) ?? Promise.resolve();
    const next = previous.then(deliver).catch((err: unknown) => console.warn(`widget ${modelId}: a message was lost:`, err));
    this.messages.set(modelId, next);
  }

  private map(): Y.Map<unknown> {
    return this.provider.doc.getMap("widgets");
  }

  private bind(): void {
    this.bound?.unobserve(this.onChange);
    this.bound = this.map();
    this.bound.observe(this.onChange);
  }

  private readonly onChange = (event: Y.YMapEvent<unknown>): void => {
    const added: string[] = [];
    for (const [key, change] of event.changes.keys) {
      if (change.action === "delete") this.close(key);
      else if (this.tracked.has(key)) void this.update(key, this.map().get(key) as Entry);
      else added.push(key);
    }
    this.create(added);
  };

  /** A (re)synced document: models it lacks are gone, the others are brought up to date. */
  private reconcile(): void {
    if (!this.provider.synced) return;
    const map = this.map();
    for (const id of [...this.tracked.keys()]) if (!map.has(id)) this.close(id);
    const added: string[] = [];
    for (const [id, raw] of map.entries()) {
      if (this.tracked.has(id)) void this.update(id, raw as Entry);
      else added.push(id);
    }
    this.create(added);
  }

  private create(ids: string[]): void {
    const built: Promise<void>[] = [];
    const resolvers = new Map<string, [(m: base.WidgetModel) => void, (e: unknown) => void]>();
    for (const id of ids) {
      const entry = this.map().get(id) as Entry;
      if (entry?.target_name && entry.target_name !== "jupyter.widget") continue;
      const promise = new Promise<base.WidgetModel>((resolve, reject) => resolvers.set(id, [resolve, reject]));
      promise.catch(() => undefined);
      this.manager.register_model(id, promise);
      this.tracked.set(id, { comm: new DaemonComm(id, this), seen: new Map(), pending: new Map(), buffers: "[]" });
    }
    for (const [id, [resolve, reject]] of resolvers) {
      built.push(this.build(id, this.map().get(id) as Entry).then(resolve, reject));
    }
    for (const id of resolvers.keys()) {
      for (const wake of this.waiters.get(id) ?? []) wake();
      this.waiters.delete(id);
    }
    void Promise.all(built);
  }

  private async build(id: string, entry: Entry): Promise<base.WidgetModel> {
    const rec = this.tracked.get(id)!;
    const state = { ...(entry.state ?? {}) };
    for (const [k, v] of Object.entries(state)) rec.seen.set(k, JSON.stringify(v));
    rec.buffers = JSON.stringify(entry.buffers ?? []);
    const { paths, buffers } = await resolveBuffers(entry.buffers ?? [], this.fetchBytes);
    paths.forEach((path, i) => putAt(state, path, buffers[i]));
    const make = (this.manager as unknown as {
      _make_model(options: object, state: object): Promise<base.WidgetModel>;
    })._make_model.bind(this.manager);
    return make(
      {
        model_id: id,
        model_name: String(state._model_name ?? ""),
        model_module: String(state._model_module ?? ""),
        model_module_version: String(state._model_module_version ?? ""),
        view_name: state._view_name,
        view_module: state._view_module,
        view_module_version: state._view_module_version,
        comm: rec.comm,
      },
      state,
    );
  }

  private async update(id: string, entry: Entry): Promise<void> {
    const rec = this.tracked.get(id);
    if (!rec || !entry) return;
    const changed: string[] = [];
    for (const [k, v] of Object.entries(entry.state ?? {})) {
      const json = JSON.stringify(v);
      if (rec.seen.get(k) === json) continue;
      rec.seen.set(k, json);
      const ours = rec.pending.get(k);
      if (ours === undefined) changed.push(k);
      else if (ours === json) rec.pending.delete(k); // our own value, already shown
      // else: an older value while ours is in flight; the latest is applied when it settles
    }
    const buffers = JSON.stringify(entry.buffers ?? []);
    const buffersChanged = buffers !== rec.buffers;
    rec.buffers = buffers;
    if (changed.length || buffersChanged) await this.deliverLatest(id, changed, buffersChanged);
  }

  private async deliverLatest(id: string, keys: string[], withBuffers = false): Promise<void> {
    const rec = this.tracked.get(id);
    const entry = this.map().get(id) as Entry | undefined;
    if (!rec || !entry) return;
    const all = entry.state ?? {};
    const state: State = {};
    for (const k of keys) if (k in all) state[k] = all[k];
    let paths: (string | number)[][] = [];
    let buffers: (DataView | string)[] = [];
    if (withBuffers) {
      ({ paths, buffers } = await resolveBuffers(entry.buffers ?? [], this.fetchBytes));
      for (const path of paths) if (typeof path[0] === "string" && !(path[0] in state)) state[path[0]] = all[path[0]];
    }
    if (Object.keys(state).length) rec.comm.deliver(state, paths, buffers);
  }

  private close(id: string): void {
    const rec = this.tracked.get(id);
    if (!rec) return;
    this.tracked.delete(id);
    this.messages.delete(id);
    rec.comm.closed();
  }
}

/** The values of `refs`: bytes as DataViews, `text/*` ones (an anywidget's code) as strings. */
async function resolveBuffers(
  refs: BufferRef[],
  fetchBytes: typeof fetchBlob,
): Promise<{ paths: (string | number)[][]; buffers: (DataView | string)[] }> {
  const paths: (string | number)[][] = [];
  const buffers: (DataView | string)[] = [];
  for (const ref of refs) {
    let bytes: Uint8Array | null = null;
    if (ref.blob) bytes = await fetchBytes(ref.blob);
    else if (ref.base64 !== undefined) bytes = Uint8Array.from(atob(ref.base64), (c) => c.charCodeAt(0));
    if (!bytes) continue;
    paths.push(ref.path);
    if (ref.media_type?.startsWith("text/")) buffers.push(new TextDecoder().decode(bytes));
    else buffers.push(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
  return { paths, buffers };
}

/** `obj[path[0]][path[1]]... = value` (ipywidgets' put_buffers, for text values too). */
function putAt(obj: State, path: (string | number)[], value: unknown): void {
  let target: Record<string | number, unknown> = obj;
  for (const key of path.slice(0, -1)) target = target[key] as Record<string | number, unknown>;
  if (target) target[path[path.length - 1]] = value;
}

function toBase64(value: Binary): string {
  const bytes =
    value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}
