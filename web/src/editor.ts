// One CodeMirror 6 editor per cell, bound to the cell's Y.Text with y-codemirror.next
// (collaborative text, remote cursors from awareness, per-user undo through Y.UndoManager).
import { autocompletion, completionStatus, startCompletion, closeCompletion, completionKeymap } from "@codemirror/autocomplete";
import type { CompletionContext, CompletionResult } from "@codemirror/autocomplete";
import { defaultKeymap, indentLess, indentMore } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { markdownLanguage } from "@codemirror/lang-markdown";
import { bracketMatching, defaultHighlightStyle, indentOnInput, indentUnit, LanguageSupport, syntaxHighlighting } from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { EditorState, Prec, StateEffect, StateField, type Extension } from "@codemirror/state";
import { drawSelection, EditorView, keymap, showTooltip, type Tooltip } from "@codemirror/view";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as Y from "yjs";
import type { Awareness } from "y-protocols/awareness";
import { ansiFragment } from "./ansi";
import type { CellType, JSONValue } from "./model";

/** What an editor asks of the notebook around it. */
export interface EditorHost {
  runCell(advance: "stay" | "next" | "insert"): void;
  commandMode(): void;
  save(): void;
  focusNeighbour(direction: -1 | 1): boolean;
  onFocus(): void;
  complete(code: string, cursor: number): Promise<Record<string, JSONValue>>;
  inspect(code: string, cursor: number): Promise<Record<string, JSONValue>>;
}

const setInspect = StateEffect.define<Tooltip | null>();

const inspectField = StateField.define<Tooltip | null>({
  create: () => null,
  update(value, tr) {
    for (const effect of tr.effects) if (effect.is(setInspect)) return effect.value;
    return tr.docChanged || tr.selection ? null : value;
  },
  provide: (field) => showTooltip.from(field),
});

function inspectTooltip(pos: number, text: string): Tooltip {
  return {
    pos,
    above: false,
    create() {
      const dom = document.createElement("pre");
      dom.className = "runt-inspect-tooltip";
      dom.append(ansiFragment(text));
      return { dom };
    },
  };
}

function kernelCompletions(host: EditorHost) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    if (!context.explicit) return null;
    const code = context.state.doc.toString();
    const reply = await host.complete(code, context.pos);
    const matches = Array.isArray(reply.matches) ? reply.matches.map(String) : [];
    if (matches.length === 0) return null;
    const from = typeof reply.cursor_start === "number" ? reply.cursor_start : context.pos;
    const to = typeof reply.cursor_end === "number" ? reply.cursor_end : context.pos;
    const meta = (reply.metadata ?? {}) as Record<string, JSONValue>;
    const types = new Map<string, string>();
    const experimental = meta._jupyter_types_experimental;
    if (Array.isArray(experimental)) {
      for (const item of experimental) {
        const rec = item as Record<string, JSONValue>;
        if (typeof rec.text === "string" && typeof rec.type === "string") types.set(rec.text, rec.type);
      }
    }
    return {
      from,
      to,
      options: matches.map((label) => ({ label, type: types.get(label) })),
      filter: false,
    };
  };
}

function notebookKeymap(host: EditorHost): Extension {
  const beforeCursorIsBlank = (view: EditorView): boolean => {
    const { head } = view.state.selection.main;
    const line = view.state.doc.lineAt(head);
    return /^\s*$/.test(line.text.slice(0, head - line.from));
  };
  return Prec.highest(
    keymap.of([
      { key: "Shift-Enter", run: () => (host.runCell("next"), true) },
      { key: "Mod-Enter", run: () => (host.runCell("stay"), true) },
      { key: "Alt-Enter", run: () => (host.runCell("insert"), true) },
      { key: "Mod-s", run: () => (host.save(), true), preventDefault: true },
      {
        key: "Escape",
        run: (view) => {
          if (completionStatus(view.state) !== null) return closeCompletion(view);
          if (view.state.field(inspectField, false)) {
            view.dispatch({ effects: setInspect.of(null) });
            return true;
          }
          host.commandMode();
          return true;
        },
      },
      {
        key: "Tab",
        run: (view) => {
          if (!view.state.selection.main.empty || beforeCursorIsBlank(view)) return indentMore(view);
          return startCompletion(view);
        },
      },
      {
        key: "Shift-Tab",
        run: (view) => {
          if (!view.state.selection.main.empty) return indentLess(view);
          const pos = view.state.selection.main.head;
          void host.inspect(view.state.doc.toString(), pos).then((reply) => {
            const data = (reply.data ?? {}) as Record<string, JSONValue>;
            const text = typeof data["text/plain"] === "string" ? data["text/plain"] : "";
            if (reply.found !== true || !text) return;
            if (view.state.selection.main.head === pos) view.dispatch({ effects: setInspect.of(inspectTooltip(pos, text)) });
          });
          return true;
        },
      },
      {
        key: "ArrowUp",
        run: (view) => view.state.selection.main.empty && view.state.doc.lineAt(view.state.selection.main.head).number === 1 && host.focusNeighbour(-1),
      },
      {
        key: "ArrowDown",
        run: (view) =>
          view.state.selection.main.empty &&
          view.state.doc.lineAt(view.state.selection.main.head).number === view.state.doc.lines &&
          host.focusNeighbour(1),
      },
    ]),
  );
}

export interface CellEditorOptions {
  ytext: Y.Text;
  type: CellType;
  awareness: Awareness;
  undoManager: Y.UndoManager;
  host: EditorHost;
}

export function createEditor(parent: HTMLElement, options: CellEditorOptions): EditorView {
  const { ytext, type, awareness, undoManager, host } = options;
  // The bare markdown language, not markdown(): that one pulls in the HTML, CSS and
  // JavaScript parsers (140 KB) for tags embedded in markdown.
  const language = type === "code" ? [python()] : type === "markdown" ? [new LanguageSupport(markdownLanguage)] : [];
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        notebookKeymap(host),
        keymap.of([...completionKeymap, ...yUndoManagerKeymap, ...searchKeymap, ...defaultKeymap]),
        yCollab(ytext, awareness, { undoManager }),
        ...language,
        indentUnit.of("    "),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        bracketMatching(),
        indentOnInput(),
        drawSelection(),
        highlightSelectionMatches(),
        autocompletion({ override: [kernelCompletions(host)], activateOnTyping: false, defaultKeymap: true }),
        inspectField,
        EditorView.lineWrapping,
        EditorView.domEventHandlers({ focus: () => host.onFocus() }),
        EditorView.contentAttributes.of({ "aria-label": `${type} cell input` }),
      ],
    }),
  });
}
