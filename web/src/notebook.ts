// The notebook view: one CellView per Y.Map in doc.getArray("cells"), kept in document order
// as peers insert and delete cells; selection, command/edit mode and the notebook commands
// that the keyboard (keyboard.ts) and the toolbar (toolbar.ts) call.
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import { ApiError, type NotebookApi } from "./api";
import { CellView, type CellHost } from "./cell";
import { cellsOf, cellType, deleteCell, insertCell, LOCAL_ORIGIN, setCellType, type CellType } from "./model";
import type { RuntimeState } from "./runtime";

export type Mode = "command" | "edit";

export class NotebookView {
  readonly node: HTMLDivElement;
  readonly cells: CellView[] = [];
  active = 0;
  mode: Mode = "command";
  readonly notebookUndo: Y.UndoManager;
  private readonly views = new Map<Y.Map<unknown>, CellView>();
  private readonly observer: IntersectionObserver;
  private readonly host: CellHost;
  private readonly listeners: (() => void)[] = [];
  /** Cells whose execute request is in flight. */
  private readonly requested = new Set<string>();
  private readonly viewOfNode = new WeakMap<Element, CellView>();
  private readonly toMaterialize: CellView[] = [];
  private materializing = false;
  /** A restart refused for unapproved dependencies: the trust dialog (trust_dialog.ts). */
  onUntrusted: (() => void) | null = null;

  constructor(
    readonly app: HTMLElement,
    readonly doc: Y.Doc,
    readonly awareness: Awareness,
    readonly api: NotebookApi,
    readonly runtime: RuntimeState,
    readonly notify: (message: string, error?: boolean) => void,
  ) {
    this.node = document.createElement("div");
    this.node.className = "jp-Notebook";
    this.node.tabIndex = -1;
    app.append(this.node);
    // Structural edits (insert, delete, type) made here, undone by Z; others' are not ours.
    // captureTimeout 0: each command is its own undo step (not merged with the one before).
    this.notebookUndo = new Y.UndoManager(cellsOf(doc), { trackedOrigins: new Set([LOCAL_ORIGIN]), captureTimeout: 0 });
    this.observer = new IntersectionObserver(this.onIntersect, { rootMargin: "400px 0px" });
    this.host = {
      awareness,
      runCell: (advance) => this.run(advance),
      commandMode: () => this.setMode("command"),
      save: () => void this.save(),
      focusNeighbour: (direction) => this.focusNeighbour(direction),
      onFocus: () => undefined,
      complete: (code, cursor) => this.reported("completion", api.complete(code, cursor)),
      inspect: (code, cursor) => this.reported("inspection", api.inspect(code, cursor)),
      selectView: (view, edit) => this.selectView(view, edit),
      rebuild: (view) => this.rebuildView(view),
    };
    cellsOf(doc).observe(() => this.reconcile());
    runtime.onChange(() => this.applyRuntime());
    this.reconcile();
    this.setMode("command");
  }

  /** Called after every selection or mode change (the toolbar's cell-type menu follows). */
  onSelection(listener: () => void): void {
    this.listeners.push(listener);
  }

  get activeCell(): CellView | undefined {
    return this.cells[this.active];
  }

  /** Bring the views in line with the cells array (peers insert, delete, reorder). */
  reconcile(): void {
    const activeView = this.activeCell;
    const maps = cellsOf(this.doc).toArray();
    const next: CellView[] = [];
    const keep = new Set<Y.Map<unknown>>();
    for (const ycell of maps) {
      if (!(ycell instanceof Y.Map)) continue;
      keep.add(ycell);
      let view = this.views.get(ycell);
      if (!view) {
        view = new CellView(ycell, this.host);
        this.views.set(ycell, view);
        this.viewOfNode.set(view.node, view);
        this.observer.observe(view.node);
      }
      next.push(view);
    }
    for (const [ycell, view] of this.views) {
      if (!keep.has(ycell)) {
        this.observer.unobserve(view.node);
        view.destroy();
        this.views.delete(ycell);
      }
    }
    let cursor: ChildNode | null = this.node.firstChild;
    for (const view of next) {
      if (view.node === cursor) cursor = cursor.nextSibling;
      else this.node.insertBefore(view.node, cursor);
    }
    this.cells.splice(0, this.cells.length, ...next);
    const kept = activeView ? this.cells.indexOf(activeView) : -1;
    this.select(kept >= 0 ? kept : Math.min(this.active, this.cells.length - 1), false);
    this.applyRuntime();
  }

  private readonly onIntersect = (entries: IntersectionObserverEntry[]): void => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const view = this.viewOfNode.get(entry.target);
      if (view) {
        this.observer.unobserve(view.node);
        this.toMaterialize.push(view);
      }
    }
    this.materializeSome();
  };

  /** Build editors and outputs a few milliseconds' worth per task, so that opening a long
   * notebook (or scrolling fast) never holds the main thread for long. */
  private materializeSome(): void {
    if (this.materializing) return;
    const deadline = performance.now() + 8;
    while (this.toMaterialize.length > 0 && performance.now() < deadline) {
      const view = this.toMaterialize.shift()!;
      if (view.node.isConnected) view.materialize();
    }
    if (this.toMaterialize.length > 0) {
      this.materializing = true;
      setTimeout(() => {
        this.materializing = false;
        this.materializeSome();
      }, 0);
    }
  }

  applyRuntime(): void {
    const states = this.runtime.cellStates();
    for (const view of this.cells) view.setState(states.get(view.id) ?? (this.requested.has(view.id) ? "queued" : "idle"));
  }

  /** Queue a code cell; it shows [*] from the key press until the runtime document
   * takes over (the execution's record is written before the POST is answered). */
  private execute(cell: CellView): void {
    const id = cell.id;
    this.requested.add(id);
    cell.setState("queued");
    void this.api
      .execute(id)
      .catch((err: Error) => this.notify(`run failed: ${err.message}`, true))
      .finally(() => {
        this.requested.delete(id);
        this.applyRuntime();
      });
  }

  // --- selection and mode -------------------------------------------------------------

  select(index: number, scroll = true): void {
    if (this.cells.length === 0) {
      this.active = 0;
      this.fire();
      return;
    }
    index = Math.max(0, Math.min(index, this.cells.length - 1));
    const old = this.activeCell;
    if (old && old !== this.cells[index]) {
      old.node.classList.remove("jp-mod-selected", "jp-mod-active");
      if (this.mode === "edit") {
        old.blurEditor();
        if (old.type === "markdown") old.renderMarkdownCell();
      }
    }
    this.active = index;
    const cell = this.cells[index];
    cell.node.classList.add("jp-mod-selected", "jp-mod-active");
    if (scroll) cell.node.scrollIntoView({ block: "nearest" });
    this.fire();
  }

  private selectView(view: CellView, edit: boolean): void {
    const index = this.cells.indexOf(view);
    if (index < 0) return;
    if (index !== this.active) this.select(index, false);
    if (edit && this.mode !== "edit") this.setMode("edit", false);
    else if (!edit && this.mode === "edit") this.setMode("command");
  }

  setMode(mode: Mode, focus = true): void {
    this.mode = mode;
    this.app.classList.toggle("jp-mod-editMode", mode === "edit");
    this.app.classList.toggle("jp-mod-commandMode", mode === "command");
    const cell = this.activeCell;
    if (mode === "edit" && cell && focus) cell.focusEditor();
    if (mode === "command") {
      if (cell?.type === "markdown") cell.renderMarkdownCell();
      cell?.blurEditor();
      // Keys go to the notebook, not a stale editor.
      this.node.focus({ preventScroll: true });
    }
    this.fire();
  }

  private fire(): void {
    for (const listener of this.listeners) listener();
  }

  private focusNeighbour(direction: -1 | 1): boolean {
    const index = this.active + direction;
    if (index < 0 || index >= this.cells.length) return false;
    this.select(index);
    this.cells[index].focusEditor(direction === -1);
    return true;
  }

  private rebuildView(view: CellView): void {
    this.observer.unobserve(view.node);
    const wasEditing = this.mode === "edit" && view === this.activeCell;
    const replacement = new CellView(view.ycell, this.host);
    this.viewOfNode.set(replacement.node, replacement);
    view.node.replaceWith(replacement.node);
    view.destroy();
    this.views.set(view.ycell, replacement);
    const index = this.cells.indexOf(view);
    if (index >= 0) this.cells[index] = replacement;
    replacement.materialize();
    if (index === this.active) replacement.node.classList.add("jp-mod-selected", "jp-mod-active");
    if (wasEditing) replacement.focusEditor();
    this.applyRuntime();
  }

  /** A request whose failure is shown in the header (e.g. the kernel is still starting). */
  private async reported<T>(what: string, request: Promise<T>): Promise<T> {
    try {
      return await request;
    } catch (err) {
      this.notify(`${what} failed: ${(err as Error).message}`, true);
      throw err;
    }
  }

  // --- commands ------------------------------------------------------------------------

  run(advance: "stay" | "next" | "insert"): void {
    const cell = this.activeCell;
    if (!cell) return;
    if (cell.type === "code") {
      this.execute(cell);
    } else if (cell.type === "markdown") {
      cell.renderMarkdownCell();
    }
    if (advance === "stay") {
      if (cell.type === "markdown") this.setMode("command");
      return;
    }
    const wasEdit = this.mode === "edit";
    if (advance === "insert" || this.active === this.cells.length - 1) {
      this.insert(this.active + 1, "code");
      return;
    }
    this.select(this.active + 1);
    // JupyterLab: Shift-Enter leaves a markdown cell rendered and goes on in command mode
    // unless the next cell was being edited; we keep the mode the user was in.
    if (wasEdit) this.setMode("edit");
  }

  runAll(): void {
    for (const cell of this.cells) {
      if (cell.type === "code") this.execute(cell);
      else if (cell.type === "markdown") cell.renderMarkdownCell();
    }
  }

  /** A new cell at `index`, selected; edit mode after Shift/Alt-Enter, command mode after
   * A/B (as JupyterLab). */
  insert(index: number, type: CellType, edit = true): void {
    insertCell(this.doc, index, type);
    // reconcile() ran inside the transaction's observer: the view exists.
    this.select(index);
    this.setMode(edit ? "edit" : "command");
  }

  deleteActive(): void {
    if (this.cells.length === 0) return;
    const index = this.active;
    deleteCell(this.doc, index);
    this.select(Math.min(index, this.cells.length - 1));
  }

  changeType(type: CellType): void {
    const cell = this.activeCell;
    if (!cell || cellType(cell.ycell) === type) return;
    setCellType(this.doc, cell.ycell, type);
  }

  undo(): void {
    if (this.notebookUndo.undoStack.length > 0) this.notebookUndo.undo();
    else this.activeCell?.undoText();
  }

  redo(): void {
    this.notebookUndo.redo();
  }

  async save(): Promise<void> {
    const status = document.getElementById("save-status");
    if (status) status.textContent = "saving…";
    try {
      await this.api.save();
      if (status) status.textContent = "saved";
    } catch (err) {
      if (status) status.textContent = "not saved";
      this.notify(`save failed: ${(err as Error).message}`, true);
    }
  }

  async interrupt(): Promise<void> {
    try {
      await this.api.interrupt();
    } catch (err) {
      this.notify(`interrupt failed: ${(err as Error).message}`, true);
    }
  }

  async restart(): Promise<void> {
    try {
      await this.api.restart();
    } catch (err) {
      if (err instanceof ApiError && err.code === "untrusted_dependencies" && this.onUntrusted) this.onUntrusted();
      else this.notify(`restart failed: ${(err as Error).message}`, true);
    }
  }
}
