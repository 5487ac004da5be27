// ipywidgets (issue 26) load on first use, as a separate chunk: the controls and their
// manager are larger than the rest of the page, and most notebooks show no widget.
import { fetchBlob, type NotebookApi } from "./api";
import type { YWebsocketProvider } from "./provider";
import type { OutputAreaLike } from "./widgets/output_widget";
import type { WidgetHost } from "./widgets/widget_manager";

export const WIDGET_MIME = "application/vnd.jupyter.widget-view+json";

let source: { provider: YWebsocketProvider; api: NotebookApi } | null = null;
let host: Promise<WidgetHost> | null = null;

/** The runtime document's provider (its `widgets` map) and the REST API for changes. */
export function setWidgetSource(provider: YWebsocketProvider | null, api: NotebookApi): void {
  source = provider ? { provider, api } : null;
}

export function widgetsAvailable(): boolean {
  return source !== null;
}

function loadWidgets(makeArea: () => OutputAreaLike): Promise<WidgetHost> {
  if (!source) return Promise.reject(new Error("no runtime document: widgets cannot be shown"));
  const { provider, api } = source;
  host ??= import("./widgets/widget_manager").then((m) => m.startWidgets(provider, api, makeArea, fetchBlob));
  return host;
}

/** {model_id: state} from the runtime document (window.runt.widgets() for the tests). */
export function widgetStates(): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  if (!source) return out;
  for (const [id, raw] of source.provider.doc.getMap("widgets").entries()) {
    out[id] = { ...(((raw ?? {}) as Record<string, unknown>).state as Record<string, unknown>) };
  }
  return out;
}

/** The live model `modelId` of the widget manager (its `msg:custom` listeners, its
 * `send`), or null (also before any widget shows): window.runtWidgets.model(id), for the
 * tests and the browser's console. */
export async function widgetModel(modelId: string): Promise<unknown> {
  if (!host) return null;
  const { sync } = await host;
  return sync.model(modelId, 5000);
}

(window as unknown as Record<string, unknown>).runtWidgets = { model: widgetModel, states: widgetStates };

/** Shows the widget `value.model_id` in `target`; `fallback` (its text/plain) when the
 * model is not live (a notebook reopened without its kernel, a restarted kernel). */
export async function renderWidgetView(
  target: HTMLElement,
  value: unknown,
  fallback: () => HTMLElement,
  makeArea: () => OutputAreaLike,
): Promise<void> {
  const modelId = String(((value ?? {}) as Record<string, unknown>).model_id ?? "");
  const { sync, manager } = await loadWidgets(makeArea);
  const model = modelId ? await sync.model(modelId, 5000) : null;
  if (!model) {
    target.classList.add("runt-widget-missing");
    target.append(fallback());
    return;
  }
  await manager.display(model, target);
}
