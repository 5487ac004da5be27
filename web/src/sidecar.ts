// data-page="sidecar": the rich outputs of a (console) room's executions, in the order they
// ran, as they arrive. No editors: the terminal is where the code is typed.
import * as Y from "yjs";
import { cellId, cellOutputs, cellsOf, executionCount } from "./model";
import { OutputArea } from "./outputs";
import type { RuntimeState } from "./runtime";

interface Entry {
  node: HTMLElement;
  prompt: HTMLElement;
  outputs: OutputArea;
}

export class SidecarView {
  readonly node: HTMLDivElement;
  private readonly entries = new Map<string, Entry>();
  private scheduled = false;

  constructor(
    app: HTMLElement,
    private readonly doc: Y.Doc,
    private readonly runtime: RuntimeState,
  ) {
    app.classList.add("runt-sidecar");
    this.node = document.createElement("div");
    this.node.className = "runt-sidecar-list";
    app.append(this.node);
    doc.on("update", this.schedule);
    runtime.onChange(this.schedule);
  }

  private readonly schedule = (): void => {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  };

  /** One entry per executed cell (its latest run), ordered by when that run started. */
  render(): void {
    const cells = new Map<string, Y.Map<unknown>>();
    for (const ycell of cellsOf(this.doc)) if (ycell instanceof Y.Map) cells.set(cellId(ycell), ycell);
    const latest = new Map<string, { execId: string; order: number }>();
    this.runtime.executions().forEach((rec, i) => {
      const order = rec.started_at ?? Number.MAX_SAFE_INTEGER - 1e6 + i;
      const prev = latest.get(rec.cell_id);
      if (!prev || order >= prev.order) latest.set(rec.cell_id, { execId: rec.id, order });
    });
    const ordered = [...latest.entries()].filter(([cell]) => cells.has(cell)).sort((a, b) => a[1].order - b[1].order);
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    let cursor: ChildNode | null = this.node.firstChild;
    const seen = new Set<string>();
    for (const [cell, { execId }] of ordered) {
      seen.add(cell);
      let entry = this.entries.get(cell);
      if (!entry) {
        const node = document.createElement("div");
        node.className = "runt-sidecar-entry";
        const prompt = document.createElement("div");
        prompt.className = "jp-InputPrompt";
        const outputs = new OutputArea();
        node.append(prompt, outputs.node);
        entry = { node, prompt, outputs };
        this.entries.set(cell, entry);
      }
      const ycell = cells.get(cell)!;
      entry.node.dataset.executionId = execId;
      entry.node.dataset.cellId = cell;
      entry.prompt.textContent = `[${executionCount(ycell) ?? "*"}]:`;
      entry.outputs.update(cellOutputs(ycell)?.toArray() ?? []);
      if (entry.node === cursor) cursor = cursor.nextSibling;
      else this.node.insertBefore(entry.node, cursor);
    }
    for (const [cell, entry] of this.entries) {
      if (!seen.has(cell)) {
        entry.node.remove();
        this.entries.delete(cell);
      }
    }
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  }
}
