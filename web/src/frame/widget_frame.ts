// The script of widget-frame.html, inlined into it by build.mjs. It runs inside
// <iframe sandbox="allow-scripts"> on the blob server's origin (an opaque origin: no
// cookie, no access to the page): it imports an anywidget's module, the kernel's code, and
// runs it as anywidget's front-end module contract (AFM) says:
//   export default { initialize({ model, signal, experimental }), render({ model, el, signal, experimental }) }
// (or a function returning that, or, older, `export function render`), with a model
// proxy whose state lives here and whose changes and messages go to the parent page,
// which relays them to the real widget model (web/src/widgets/anywidget.ts has the
// messages). `initialize` runs once per frame, so once per view.

type State = Record<string, unknown>;
type Callback = (...args: unknown[]) => unknown;
type Cleanup = () => unknown;
type Binary = ArrayBuffer | ArrayBufferView;
interface Widget {
  initialize?: (props: object) => unknown;
  render?: (props: object) => unknown;
}

const root = document.getElementById("root") ?? document.body;
const style = document.createElement("style");
document.head.append(style);

let state: State = {};
let dirty = new Set<string>();
const listeners = new Map<string, Set<Callback>>();
let cleanups: Cleanup[] = [];
let controller = new AbortController();
let generation = 0;
/** Updates received while a reload runs the old module's cleanups (null: no reload). */
let reloading: State | null = null;

function post(message: Record<string, unknown>): void {
  parent.postMessage(message, "*");
}

function emit(name: string, ...args: unknown[]): void {
  for (const callback of [...(listeners.get(name) ?? [])]) {
    try {
      callback(...args);
    } catch (err) {
      console.error(err);
    }
  }
}

function isBinary(value: unknown): value is Binary {
  return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
}

function bytesOf(value: Binary): Uint8Array {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** Backbone's test for a change (underscore's isEqual): by value, bytes included. */
function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (isBinary(a) && isBinary(b)) {
    const x = bytesOf(a);
    const y = bytesOf(b);
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

function apply(changes: State, local: boolean): void {
  const changed: string[] = [];
  for (const [key, value] of Object.entries(changes)) {
    if (equal(state[key], value)) continue;
    state[key] = value;
    changed.push(key);
    if (local) dirty.add(key);
  }
  for (const key of changed) emit(`change:${key}`, model, state[key]);
  if (changed.length) emit("change", model);
}

function names(events: string | null | undefined): string[] {
  return (events ?? "").split(/\s+/).filter(Boolean);
}

const model = {
  get(name: string): unknown {
    return state[name];
  },
  set(name: string | State, value?: unknown): void {
    apply(typeof name === "string" ? { [name]: value } : { ...name }, true);
  },
  save_changes(): void {
    if (!dirty.size) return;
    const changes: State = {};
    for (const key of dirty) changes[key] = state[key];
    dirty = new Set();
    post({ type: "save", state: changes });
  },
  on(events: string, callback: Callback): void {
    for (const name of names(events)) {
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name)!.add(callback);
    }
  },
  off(events?: string | null, callback?: Callback | null): void {
    const which = events ? names(events) : [...listeners.keys()];
    for (const name of which) {
      if (callback) listeners.get(name)?.delete(callback);
      else listeners.delete(name);
    }
  },
  send(content: unknown, _callbacks?: unknown, buffers?: Binary[]): void {
    post({ type: "send", content, buffers: buffers ?? [] });
  },
  widget_manager: {
    get_model(): Promise<never> {
      return Promise.reject(new Error("other widgets' models are not reachable from a sandboxed anywidget"));
    },
  },
};

/** anywidget's experimental.invoke: a command the kernel answers (`@anywidget.experimental.command`). */
function invoke(name: string, msg: unknown, options: { buffers?: Binary[]; signal?: AbortSignal } = {}): Promise<[unknown, DataView[]]> {
  const id = crypto.randomUUID();
  const signal = options.signal ?? AbortSignal.timeout(3000);
  return new Promise((resolve, reject) => {
    const handler = (content: unknown, buffers: unknown): void => {
      if ((content as { id?: string } | null)?.id !== id) return;
      model.off("msg:custom", handler);
      resolve([(content as { response?: unknown }).response, (buffers ?? []) as DataView[]]);
    };
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => {
      model.off("msg:custom", handler);
      reject(signal.reason);
    });
    model.on("msg:custom", handler);
    model.send({ id, kind: "anywidget-command", name, msg }, undefined, options.buffers ?? []);
  });
}

const host = {
  getModel: () => Promise.reject(new Error("anywidget's host API is not available in a sandboxed frame")),
  getWidget: () => Promise.reject(new Error("anywidget's host API is not available in a sandboxed frame")),
};

function isHref(value: string): boolean {
  return value.startsWith("http://") || value.startsWith("https://");
}

/** The frame's CSP lets it import over https only: an http URL (anywidget's dev server)
 *  would fail with the browser's bare "Failed to fetch dynamically imported module". */
function checkHref(value: string, what: string): void {
  if (value.startsWith("http://")) {
    throw new Error(`the widget frame loads ${what} over https only (its CSP): ${value}; serve it over https or give the ${what}'s text`);
  }
}

async function loadWidget(esm: string): Promise<Widget> {
  checkHref(esm, "module");
  const url = isHref(esm) ? esm : URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  let module: { default?: unknown; render?: Widget["render"] };
  try {
    module = (await import(/* the kernel's module */ url)) as typeof module;
  } finally {
    if (url !== esm) URL.revokeObjectURL(url);
  }
  if (module.render) return { render: module.render };
  if (!module.default) throw new Error("the module has no default export (anywidget: `export default { render }`)");
  const widget = typeof module.default === "function" ? await (module.default as () => unknown)() : module.default;
  return (widget ?? {}) as Widget;
}

function loadCss(css: string): void {
  checkHref(css, "stylesheet");
  style.textContent = isHref(css) ? `@import url(${JSON.stringify(css)});` : css;
}

async function teardown(): Promise<void> {
  controller.abort();
  const done = cleanups.reverse();
  cleanups = [];
  for (const cleanup of done) {
    try {
      await cleanup();
    } catch (err) {
      console.error(err);
    }
  }
}

async function load(esm: string, css: string, initial: State): Promise<void> {
  const mine = ++generation;
  reloading = {};
  await teardown();
  if (mine !== generation) return;
  // Updates that came while the old module's cleanups ran are newer than ``initial``.
  state = { ...initial, ...reloading };
  reloading = null;
  dirty = new Set();
  listeners.clear();
  root.replaceChildren();
  controller = new AbortController();
  const signal = controller.signal;
  const experimental = { invoke };
  try {
    loadCss(css);
    const widget = await loadWidget(esm);
    if (mine !== generation) return;
    const initialized = await widget.initialize?.({ model, signal, experimental });
    if (typeof initialized === "function") cleanups.push(initialized as Cleanup);
    const el = document.createElement("div");
    root.append(el);
    const rendered = await widget.render?.({ model, el, signal, experimental, host });
    if (typeof rendered === "function") cleanups.push(rendered as Cleanup);
    if (mine === generation) post({ type: "loaded" });
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    const pre = document.createElement("pre");
    pre.className = "error";
    pre.textContent = `anywidget: ${message}`;
    root.append(pre);
    post({ type: "error", message });
  }
  reportHeight();
}

let lastHeight = -1;
function reportHeight(): void {
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  if (height === lastHeight) return;
  lastHeight = height;
  post({ type: "height", height });
}

window.addEventListener("message", (event: MessageEvent) => {
  if (event.source !== parent) return;
  const message = (event.data ?? {}) as { type?: string; esm?: unknown; css?: unknown; state?: unknown; content?: unknown; buffers?: unknown };
  const changes = message.state && typeof message.state === "object" ? (message.state as State) : {};
  if (message.type === "load") void load(String(message.esm ?? ""), String(message.css ?? ""), changes);
  else if (message.type === "update") {
    if (reloading) Object.assign(reloading, changes);
    apply(changes, false);
  }
  else if (message.type === "custom") emit("msg:custom", message.content, Array.isArray(message.buffers) ? message.buffers : []);
});
new ResizeObserver(reportHeight).observe(document.documentElement);
window.addEventListener("load", reportHeight);
post({ type: "ready" });

export {}; // a module of its own (its names are not the output frame's)
