// Entry point: reads the page shell's data attributes (see /tmp contract, docs), joins the
// notebook document and the read-only runtime document, and builds the notebook page or
// the sidecar page.
import * as Y from "yjs";
import { Awareness } from "y-protocols/awareness";
import { NotebookApi, setBlobBase } from "./api";
import { setFrameUrl, pruneFrames } from "./frames";
import { InputBoxes } from "./input_box";
import { installKeyboard } from "./keyboard";
import { loadMarkdown } from "./markdown_loader";
import { cellsOf, notebookName } from "./model";
import { NotebookView } from "./notebook";
import { YWebsocketProvider } from "./provider";
import { RuntimeState } from "./runtime";
import { SidecarView } from "./sidecar";
import { buildHeader, buildToolbar } from "./toolbar";
import { installTrustDialog } from "./trust_dialog";
import { setWidgetSource, widgetStates } from "./widgets_loader";
import "katex/dist/katex.min.css";
import "./style.css";

const COLORS = ["#e06c75", "#61afef", "#98c379", "#c678dd", "#d19a66", "#56b6c2", "#be5046", "#2b8a3e"];

function userColor(name: string, clientId: number): string {
  let hash = clientId;
  for (const ch of name) hash = (hash * 31 + ch.charCodeAt(0)) | 0;
  return COLORS[Math.abs(hash) % COLORS.length];
}

function notifier(node: HTMLElement): (message: string, error?: boolean) => void {
  let timer = 0;
  return (message, error = false) => {
    node.textContent = message;
    node.classList.toggle("runt-error", error);
    clearTimeout(timer);
    timer = window.setTimeout(() => (node.textContent = ""), 8000);
  };
}

function start(): void {
  // Marks for bench/web.py and the tests: start, notebook-synced, ready.
  performance.mark("runt:start");
  const data = document.body.dataset;
  const app = document.getElementById("app") ?? document.body.appendChild(document.createElement("div"));
  app.id = "app";
  const notebookId = data.notebookId ?? "";
  setBlobBase(data.blobBase ?? "/blob/");
  setFrameUrl(data.outputFrame ?? "");
  setInterval(pruneFrames, 5000);

  const doc = new Y.Doc();
  const api = new NotebookApi(notebookId);
  let epoch = "";
  void api.epoch().then((e) => (epoch = e), () => undefined);
  const sidecar = data.page === "sidecar";
  const awareness = new Awareness(doc);
  if (!sidecar) {
    const name = data.user || "anonymous";
    const color = userColor(name, doc.clientID);
    awareness.setLocalStateField("user", { name, color, colorLight: color + "33" });
  }
  const provider = new YWebsocketProvider(data.ws ?? `/ws/notebooks/${encodeURIComponent(notebookId)}`, doc, {
    awareness: sidecar ? undefined : awareness,
    // The daemon keeps a room's document across restarts (same epoch): sync resumes and
    // nothing is duplicated. A new epoch is another document: start over.
    beforeReconnect: async () => {
      const now = await api.epoch();
      if (epoch && now && now !== epoch) {
        location.reload();
        return false;
      }
      return true;
    },
  });
  const runtimeProvider = data.runtimeWs ? new YWebsocketProvider(data.runtimeWs, new Y.Doc(), { readOnly: true }) : null;
  const runtime = new RuntimeState(runtimeProvider);
  setWidgetSource(runtimeProvider, api);

  const header = buildHeader();
  const fallbackName = decodeURIComponent(notebookId).split("/").pop() ?? notebookId;
  header.setName(fallbackName);
  const notify = notifier(header.node.querySelector("#notice")!);
  const refresh = (): void => {
    document.body.dataset.connected = provider.status === "connected" ? "1" : "0";
    document.body.dataset.runtimeConnected = runtimeProvider?.status === "connected" ? "1" : "0";
    header.update(runtime, provider.status === "connected" && (runtimeProvider === null || runtimeProvider.status === "connected"));
  };
  provider.onStatus(refresh);
  runtimeProvider?.onStatus(refresh);
  runtime.onChange(refresh);
  refresh();

  if (sidecar) {
    app.append(header.node);
    const view = new SidecarView(app, doc, runtime);
    provider.onSynced(() => {
      view.render();
      document.body.dataset.ready = "1";
    });
    (window as unknown as Record<string, unknown>).runt = { doc, runtime, provider };
    return;
  }

  const notebook = new NotebookView(app, doc, awareness, api, runtime, notify);
  const trust = installTrustDialog(api, runtime, runtimeProvider, notify);
  notebook.onUntrusted = () => void trust.review();
  const input = new InputBoxes(`/ws/input/${encodeURIComponent(notebookId)}`, api, runtime, app, notify);
  api.stdin = () => input.connectionId();
  app.prepend(header.node, buildToolbar(notebook));
  installKeyboard(notebook);
  doc.getMap("meta").observeDeep(() => header.setName(notebookName(doc) || fallbackName));

  provider.onSynced(() => {
    if (document.body.dataset.ready === "1") return; // a reconnect: the page is already live
    performance.mark("runt:synced");
    notebook.select(0, false);
    const first = notebook.activeCell;
    if (first) {
      first.materialize();
      first.ensureEditor();
    }
    notebook.setMode("command");
    document.body.dataset.ready = "1";
    performance.mark("runt:ready");
    // Warm the markdown chunk for the first markdown cell or output.
    setTimeout(() => void loadMarkdown(), 50);
  });

  (window as unknown as Record<string, unknown>).runt = {
    doc,
    runtimeDoc: () => runtime.doc,
    provider,
    notebook,
    cellIds: () => cellsOf(doc).toArray().map((c) => String(c.get("id"))),
    select: (index: number) => notebook.select(index),
    mode: () => notebook.mode,
    trust,
    widgets: widgetStates,
    input,
  };
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
