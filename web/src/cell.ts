// One cell's DOM: prompt, input (a CodeMirror editor once near the viewport, a <pre>
// before; rendered markdown when a markdown cell is not being edited) and outputs.
import type { EditorView } from "@codemirror/view";
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import { createEditor, type EditorHost } from "./editor";
import { loadMarkdown, markdownIfLoaded } from "./markdown_loader";
import { cellId, cellOutputs, cellSource, cellType, executionCount, type CellType } from "./model";
import { OutputArea } from "./outputs";
import type { CellState } from "./runtime";

export interface CellHost extends EditorHost {
  awareness: Awareness;
  /** A click selected this cell (edit mode when the click was in its editor). */
  selectView(view: CellView, edit: boolean): void;
  /** The cell's type changed under us: the notebook rebuilds its view. */
  rebuild(view: CellView): void;
}

function div(className: string): HTMLDivElement {
  const node = document.createElement("div");
  node.className = className;
  return node;
}

export class CellView {
  readonly node: HTMLDivElement;
  readonly type: CellType;
  editor: EditorView | null = null;
  materialized = false;
  private readonly prompt: HTMLDivElement;
  private readonly inputBody: HTMLDivElement;
  /** Holds the editor: CodeMirror styles its own root display:flex !important. */
  private readonly editorHost: HTMLDivElement;
  private readonly outputs: OutputArea | null;
  private sourcePre: HTMLPreElement | null = null;
  private rendered: HTMLDivElement | null = null;
  private ytext: Y.Text | null;
  private youtputs: Y.Array<unknown> | null;
  private undo: Y.UndoManager | null = null;
  private state: CellState = "idle";
  private editing = false;
  private scheduled = false;

  constructor(
    readonly ycell: Y.Map<unknown>,
    private readonly host: CellHost,
  ) {
    this.type = cellType(ycell);
    this.ytext = cellSource(ycell);
    this.youtputs = cellOutputs(ycell);
    this.node = div(`jp-Cell jp-${this.type === "code" ? "Code" : this.type === "markdown" ? "Markdown" : "Raw"}Cell`);
    this.node.dataset.cellId = cellId(ycell);
    this.node.dataset.cellType = this.type;
    const inputArea = div("jp-InputArea");
    this.prompt = div("jp-InputPrompt");
    this.inputBody = div("jp-InputArea-editor");
    this.editorHost = div("runt-editor-host");
    this.inputBody.append(this.editorHost);
    inputArea.append(this.prompt, this.inputBody);
    const inputWrapper = div("jp-Cell-inputWrapper");
    inputWrapper.append(inputArea);
    this.node.append(inputWrapper);
    if (this.type === "code") {
      this.node.dataset.state = "idle";
      this.outputs = new OutputArea();
      const outputWrapper = div("jp-Cell-outputWrapper");
      outputWrapper.append(this.outputs.node);
      this.node.append(outputWrapper);
    } else {
      this.outputs = null;
    }
    this.updatePrompt();
    this.showSourcePre();
    ycell.observe(this.onCellKeys);
    this.ytext?.observe(this.onSource);
    this.youtputs?.observe(this.onOutputs);
    this.node.addEventListener("mousedown", this.onMouseDown);
    this.node.addEventListener("dblclick", this.onDoubleClick);
  }

  get id(): string {
    return this.node.dataset.cellId ?? "";
  }

  /** Build the expensive parts (editor, outputs, rendered markdown): near the viewport. */
  materialize(): void {
    if (this.materialized) return;
    this.materialized = true;
    if (this.type === "markdown" && !this.editing) this.showRendered();
    else this.ensureEditor();
    this.outputs?.update(this.youtputs?.toArray() ?? []);
  }

  ensureEditor(): EditorView | null {
    if (this.editor) return this.editor;
    if (!this.ytext) return null;
    this.undo ??= new Y.UndoManager(this.ytext);
    this.editor = createEditor(this.editorHost, {
      ytext: this.ytext,
      type: this.type,
      awareness: this.host.awareness,
      undoManager: this.undo,
      host: {
        ...this.host,
        onFocus: () => this.host.selectView(this, true),
      },
    });
    this.sourcePre?.remove();
    this.sourcePre = null;
    // A rendered markdown cell keeps its editor hidden until it is edited.
    if (this.rendered) this.editorHost.hidden = true;
    return this.editor;
  }

  /** Edit mode: the editor focused (a markdown cell stops showing its rendering). */
  focusEditor(atEnd = false): void {
    this.materialize();
    if (this.type === "markdown" && !this.editing) {
      this.editing = true;
      this.node.classList.remove("jp-mod-rendered");
      this.rendered?.remove();
      this.rendered = null;
    }
    const editor = this.ensureEditor();
    if (!editor) return;
    this.editorHost.hidden = false;
    editor.focus();
    if (atEnd) editor.dispatch({ selection: { anchor: editor.state.doc.length } });
  }

  blurEditor(): void {
    this.editor?.contentDOM.blur();
  }

  /** Leaving edit mode / running a markdown cell renders it. */
  renderMarkdownCell(): void {
    if (this.type !== "markdown") return;
    this.editing = false;
    this.blurEditor();
    this.showRendered();
  }

  undoText(): boolean {
    if (!this.undo || this.undo.undoStack.length === 0) return false;
    this.undo.undo();
    return true;
  }

  setState(state: CellState): void {
    if (state === this.state || this.type !== "code") return;
    this.state = state;
    this.node.dataset.state = state;
    this.updatePrompt();
  }

  destroy(): void {
    this.ycell.unobserve(this.onCellKeys);
    this.ytext?.unobserve(this.onSource);
    this.youtputs?.unobserve(this.onOutputs);
    this.editor?.destroy();
    this.undo?.destroy();
    this.node.remove();
  }

  private updatePrompt(): void {
    if (this.type !== "code") {
      this.prompt.textContent = "";
      return;
    }
    const count = executionCount(this.ycell);
    this.prompt.textContent = this.state !== "idle" ? "[*]:" : `[${count ?? " "}]:`;
  }

  private showSourcePre(): void {
    if (this.editor || this.sourcePre) return;
    this.sourcePre = document.createElement("pre");
    this.sourcePre.className = "runt-source-pre";
    this.sourcePre.textContent = this.ytext?.toString() ?? "";
    this.inputBody.append(this.sourcePre);
  }

  private showRendered(): void {
    this.editorHost.hidden = true;
    this.sourcePre?.remove();
    this.sourcePre = null;
    const rendered = div("jp-RenderedMarkdown jp-RenderedHTMLCommon");
    const source = this.ytext?.toString() ?? "";
    const markdown = markdownIfLoaded();
    if (!source.trim()) rendered.append("Type Markdown and LaTeX: $ α^2 $");
    else if (markdown) rendered.append(markdown.renderMarkdown(source));
    else {
      // First markdown on the page: the source as text until the renderer has loaded.
      rendered.append(source);
      rendered.classList.add("runt-mod-pending");
      void loadMarkdown().then(() => {
        if (this.rendered === rendered) this.showRendered();
      });
    }
    if (this.rendered) this.rendered.replaceWith(rendered);
    else this.inputBody.append(rendered);
    this.rendered = rendered;
    this.node.classList.add("jp-mod-rendered");
  }

  private readonly onCellKeys = (event: Y.YMapEvent<unknown>): void => {
    const keys = event.keysChanged;
    if (keys.has("cell_type") || keys.has("source")) {
      this.host.rebuild(this);
      return;
    }
    if (keys.has("outputs")) {
      this.youtputs?.unobserve(this.onOutputs);
      this.youtputs = cellOutputs(this.ycell);
      this.youtputs?.observe(this.onOutputs);
      this.onOutputs();
    }
    if (keys.has("execution_count")) this.updatePrompt();
  };

  /** Text edits while no editor shows them: refresh the <pre> or the rendering once a frame. */
  private readonly onSource = (): void => {
    if (this.editor && !this.rendered) return;
    this.schedule();
  };

  private readonly onOutputs = (): void => this.schedule();

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      if (this.sourcePre) this.sourcePre.textContent = this.ytext?.toString() ?? "";
      if (this.rendered) this.showRendered();
      if (this.materialized) this.outputs?.update(this.youtputs?.toArray() ?? []);
    });
  }

  private readonly onMouseDown = (event: MouseEvent): void => {
    const target = event.target as HTMLElement;
    const inEditor = Boolean(this.editor?.dom.contains(target));
    if (this.sourcePre && this.sourcePre.contains(target)) {
      // A lazy cell clicked: become a real editor with the caret at the end.
      event.preventDefault();
      this.focusEditor(true);
      return;
    }
    this.host.selectView(this, inEditor);
  };

  private readonly onDoubleClick = (event: MouseEvent): void => {
    if (this.rendered?.contains(event.target as Node)) this.focusEditor(true);
  };
}
