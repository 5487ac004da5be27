// The header (name, kernel status, env source, save state) and the toolbar, whose
// buttons call the same notebook commands as the keys.
import type { NotebookView } from "./notebook";
import { kernelStatusText, type RuntimeState } from "./runtime";
import type { CellType } from "./model";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

export interface Header {
  node: HTMLElement;
  setName(name: string): void;
  update(runtime: RuntimeState, connected: boolean): void;
}

export function buildHeader(): Header {
  const node = el("header", { id: "header", class: "runt-header" });
  const name = el("span", { id: "notebook-name", class: "runt-name" });
  const kernel = el("span", { id: "kernel-status", class: "runt-kernel-status", title: "kernel status" }, "connecting");
  const kernelName = el("span", { id: "kernel-name", class: "runt-kernel-name" });
  const env = el("span", { id: "env-source", class: "runt-env-source", title: "environment source" });
  const save = el("span", { id: "save-status", class: "runt-save-status" });
  const notice = el("span", { id: "notice", class: "runt-notice", role: "status" });
  node.append(name, save, notice, el("span", { class: "runt-spacer" }), env, kernelName, kernel);
  return {
    node,
    setName(text) {
      name.textContent = text;
      if (text) document.title = text;
    },
    update(runtime, connected) {
      const info = runtime.kernel();
      const status = kernelStatusText(info, connected);
      kernel.textContent = status;
      kernel.dataset.lifecycle = info.lifecycle;
      kernel.dataset.activity = info.activity;
      kernel.title = info.error ? `kernel error: ${info.error}` : "kernel status";
      kernel.className = `runt-kernel-status runt-kernel-${status.replace(/[^a-z_]/g, "")}`;
      kernelName.textContent = info.name || info.language;
      env.textContent = info.env_source;
    },
  };
}

export function buildToolbar(notebook: NotebookView): HTMLElement {
  const bar = el("div", { id: "toolbar", class: "jp-Toolbar", role: "toolbar" });
  const button = (command: string, label: string, title: string, action: () => void): void => {
    const b = el("button", { type: "button", "data-command": command, title }, label);
    // Keep the editor's focus (and the edit mode) when a button is clicked.
    b.addEventListener("mousedown", (e) => e.preventDefault());
    b.addEventListener("click", action);
    bar.append(b);
  };
  button("save", "Save", "Save (Ctrl-S)", () => void notebook.save());
  button("insert-below", "+", "Insert a cell below (B)", () => notebook.insert(notebook.active + 1, "code", false));
  button("delete", "✂", "Delete the selected cell (D,D)", () => notebook.deleteActive());
  button("undo", "↶", "Undo a cell operation (Z)", () => notebook.undo());
  button("redo", "↷", "Redo (Shift-Z)", () => notebook.redo());
  button("run", "▶", "Run the cell and select the next (Shift-Enter)", () => notebook.run("next"));
  button("run-all", "▶▶", "Run all cells", () => notebook.runAll());
  button("interrupt", "■", "Interrupt the kernel (I,I)", () => void notebook.interrupt());
  button("restart", "↻", "Restart the kernel (0,0)", () => void notebook.restart());
  const select = el("select", { "data-command": "cell-type", title: "Cell type (Y / M / R)" });
  for (const type of ["code", "markdown", "raw"]) select.append(el("option", { value: type }, type[0].toUpperCase() + type.slice(1)));
  select.addEventListener("change", () => {
    notebook.changeType(select.value as CellType);
    notebook.setMode("command");
  });
  notebook.onSelection(() => {
    const cell = notebook.activeCell;
    if (cell) select.value = cell.type;
  });
  bar.append(select);
  return bar;
}
