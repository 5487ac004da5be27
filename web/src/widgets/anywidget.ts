// anywidget in the page. An anywidget model is an ordinary widget model here (kept in
// sync with the kernel and the other pages by widget_sync.ts), but its module, the
// kernel's JavaScript (`_esm`), never runs in the page, which holds the API cookie: each
// view is a sandboxed frame on the blob server's origin (/widget-frame, see
// frame/widget_frame.ts) that imports the module and renders it with a model proxy. The
// view relays between the frame and the real model by postMessage, accepting messages
// from its own frame only:
//   page -> frame: {type: "load", esm, css, state}   (again when `_esm` or `_css` change)
//                  {type: "update", state}           (changes from the kernel, another page
//                                                     or another view of the model)
//                  {type: "custom", content, buffers} (the kernel's `widget.send(...)`)
//   frame -> page: {type: "ready"}, {type: "loaded"}, {type: "save", state},
//                  {type: "send", content, buffers}, {type: "height", height},
//                  {type: "error", message}
import * as base from "@jupyter-widgets/base";

const CODE_KEYS = ["_esm", "_css"];
/** Custom messages kept for a frame that is still loading its module. */
const MAX_QUEUED = 1000;

function widgetFrameUrl(): string {
  const output = document.body.dataset.outputFrame ?? "";
  return output ? new URL("/widget-frame", output).href : "";
}

type Message = Record<string, unknown> & { type?: string };

export function anywidgetModule(): Record<string, unknown> {
  class AnyModel extends base.DOMWidgetModel {
    defaults(): ReturnType<base.DOMWidgetModel["defaults"]> {
      return {
        ...super.defaults(),
        _model_name: "AnyModel",
        _model_module: "anywidget",
        _view_name: "AnyView",
        _view_module: "anywidget",
      };
    }

    // As anywidget's own model: values are structured-cloned (binary ones too: the
    // default JSON copy would turn a DataView into {}), layout and style JSON-copied.
    serialize(state: Record<string, unknown>): ReturnType<base.DOMWidgetModel["serialize"]> {
      const serializers = ((this.constructor as typeof base.WidgetModel).serializers ?? {}) as Record<
        string,
        { serialize?: (value: unknown, model: base.WidgetModel) => unknown }
      >;
      for (const key of Object.keys(state)) {
        const serialize = serializers[key]?.serialize;
        let value: unknown;
        if (serialize) value = serialize(state[key], this);
        else if (key === "layout" || key === "style") value = JSON.parse(JSON.stringify(state[key]) ?? "null");
        else value = structuredClone(state[key]);
        const toJSON = (value as { toJSON?: () => unknown } | null)?.toJSON;
        state[key] = typeof toJSON === "function" ? toJSON.call(value) : value;
      }
      return state as ReturnType<base.DOMWidgetModel["serialize"]>;
    }
  }

  class AnyView extends base.DOMWidgetView {
    private frame: HTMLIFrameElement | null = null;
    private loaded = false;
    private queued: Message[] = [];

    render(): void {
      this.el.classList.add("runt-anywidget");
      const url = widgetFrameUrl();
      if (!url) {
        this.el.textContent = "anywidget: this page has no widget frame (the blob server is not running)";
        return;
      }
      const frame = document.createElement("iframe");
      frame.className = "runt-widget-frame";
      frame.setAttribute("sandbox", "allow-scripts allow-popups allow-popups-to-escape-sandbox");
      frame.setAttribute("referrerpolicy", "no-referrer");
      frame.setAttribute("title", "widget");
      frame.style.cssText = "display:block;width:100%;height:24px;border:0";
      frame.src = url;
      this.frame = frame;
      this.el.append(frame);
      window.addEventListener("message", this.onMessage);
      this.listenTo(this.model, "change", this.onChange);
      this.listenTo(this.model, "msg:custom", this.onCustom);
    }

    remove(): this {
      window.removeEventListener("message", this.onMessage);
      this.frame = null;
      return super.remove();
    }

    private post(message: Message): void {
      // An opaque origin cannot be named: "*", and only our frame's window gets it.
      this.frame?.contentWindow?.postMessage(message, "*");
    }

    private state(keys: string[]): Record<string, unknown> {
      const picked: Record<string, unknown> = {};
      for (const key of keys) if (!CODE_KEYS.includes(key)) picked[key] = this.model.get(key);
      return this.model.serialize(picked) as Record<string, unknown>;
    }

    private load(): void {
      this.loaded = false;
      this.post({
        type: "load",
        esm: String(this.model.get("_esm") ?? ""),
        css: String(this.model.get("_css") ?? ""),
        state: this.state(Object.keys(this.model.attributes)),
      });
    }

    private readonly onMessage = (event: MessageEvent): void => {
      if (!this.frame || event.source !== this.frame.contentWindow) return;
      const data = (event.data ?? {}) as Message;
      if (data.type === "ready") this.load();
      else if (data.type === "loaded") {
        this.loaded = true;
        const queued = this.queued;
        this.queued = [];
        for (const message of queued) this.post(message);
      } else if (data.type === "save" && data.state && typeof data.state === "object") {
        this.model.set(data.state as Record<string, unknown>, { fromFrame: this.frame });
        this.touch();
      } else if (data.type === "send") {
        const buffers = Array.isArray(data.buffers) ? (data.buffers as ArrayBuffer[]) : [];
        this.model.send(data.content as never, this.callbacks(), buffers);
      } else if (data.type === "height" && typeof data.height === "number" && Number.isFinite(data.height)) {
        this.frame.style.height = `${Math.min(Math.max(Math.ceil(data.height), 8), 20000)}px`;
      } else if (data.type === "error") {
        console.error(`anywidget ${this.model.model_id}: ${String(data.message)}`);
      }
    };

    private onChange(_model: unknown, options?: { fromFrame?: unknown }): void {
      const changed = Object.keys(this.model.changedAttributes() || {});
      if (changed.some((key) => CODE_KEYS.includes(key))) {
        this.load(); // a new module (anywidget's hot reload): the frame starts over
        return;
      }
      if (options?.fromFrame === this.frame || !changed.length) return; // the frame's own
      this.post({ type: "update", state: this.state(changed) });
    }

    private onCustom(content: unknown, buffers?: DataView[]): void {
      const message = { type: "custom", content, buffers: buffers ?? [] };
      if (this.loaded) this.post(message);
      else if (this.queued.length < MAX_QUEUED) this.queued.push(message);
    }
  }

  return { AnyModel, AnyView };
}
