// The widget manager (issue 26), a lazily loaded chunk: ipywidgets' own ManagerBase
// (@jupyter-widgets/base-manager) with the real controls (@jupyter-widgets/controls), its
// models fed from the runtime document's `widgets` map (widget_sync.ts) instead of a
// kernel connection. Views render in the page's DOM (the controls are bundled code, not
// the kernel's); an Output widget's outputs render with the page's own output area; an
// anywidget's view is a sandboxed frame running the kernel's module (anywidget.ts).
import * as base from "@jupyter-widgets/base";
import { ManagerBase } from "@jupyter-widgets/base-manager";
import * as controls from "@jupyter-widgets/controls";
import { Widget } from "@lumino/widgets";
import type { NotebookApi, fetchBlob } from "../api";
import type { YWebsocketProvider } from "../provider";
import { anywidgetModule } from "./anywidget";
import { outputModule, type OutputAreaLike } from "./output_widget";
import { WidgetSync } from "./widget_sync";

type Module = Record<string, unknown>;

export class RuntWidgetManager extends ManagerBase {
  private readonly modules: Record<string, Module>;

  constructor(makeArea: () => OutputAreaLike) {
    super();
    this.modules = {
      "@jupyter-widgets/base": base as unknown as Module,
      "@jupyter-widgets/controls": controls as unknown as Module,
      "@jupyter-widgets/output": outputModule(makeArea) as unknown as Module,
      anywidget: anywidgetModule(),
    };
  }

  protected async loadClass(
    className: string,
    moduleName: string,
    moduleVersion: string,
  ): Promise<typeof base.WidgetModel | typeof base.WidgetView> {
    const module = this.modules[moduleName];
    if (!module) {
      throw new Error(`widget module ${moduleName}@${moduleVersion} is not available in this page`);
    }
    const cls = module[className];
    if (!cls) throw new Error(`no class ${className} in ${moduleName}@${moduleVersion}`);
    return cls as typeof base.WidgetModel;
  }

  // Models come from the runtime document, never from a frontend comm_open.
  protected _create_comm(): Promise<base.IClassicComm> {
    return Promise.reject(new Error("this page cannot open comms: widgets come from the kernel"));
  }

  protected _get_comm_info(): Promise<object> {
    return Promise.resolve({});
  }

  /** A view of `model` in `host` (Lumino attach: the host must be in the document). */
  async display(model: base.WidgetModel, host: HTMLElement): Promise<void> {
    const view = await this.create_view(model);
    for (let i = 0; i < 600 && !host.isConnected; i++) await new Promise((r) => requestAnimationFrame(r));
    if (!host.isConnected) {
      view.remove();
      return;
    }
    Widget.attach(view.luminoWidget, host);
  }
}

export interface WidgetHost {
  sync: WidgetSync;
  manager: RuntWidgetManager;
}

let cssLoaded = false;

function loadCss(): void {
  if (cssLoaded) return;
  cssLoaded = true;
  const link = document.createElement("link");
  link.rel = "stylesheet";
  // Next to this chunk in /static (a separate entry of build.mjs).
  link.href = new URL("./widgets.css", import.meta.url).href;
  document.head.append(link);
}

/** Called once, when the first widget view appears. */
export function startWidgets(
  provider: YWebsocketProvider,
  api: NotebookApi,
  makeArea: () => OutputAreaLike,
  fetchBytes: typeof fetchBlob,
): WidgetHost {
  loadCss();
  const manager = new RuntWidgetManager(makeArea);
  const sync = new WidgetSync(provider, api, manager, fetchBytes);
  return { sync, manager };
}
