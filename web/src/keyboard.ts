// JupyterLab's command-mode keys. Edit-mode keys (Shift/Ctrl/Alt-Enter, Esc, Tab,
// Shift-Tab, Ctrl-S) are CodeMirror keymaps in editor.ts.
import type { NotebookView } from "./notebook";

const DOUBLE_KEY_MS = 800;

export function installKeyboard(notebook: NotebookView): void {
  let last = "";
  let lastAt = 0;
  /** True on the second press of a double key (D,D  I,I  0,0). */
  const twice = (key: string): boolean => {
    const now = performance.now();
    const hit = last === key && now - lastAt < DOUBLE_KEY_MS;
    last = hit ? "" : key;
    lastAt = now;
    return hit;
  };

  document.addEventListener("keydown", (event) => {
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key.toLowerCase() === "s") {
      // Ctrl-S saves in both modes (the editor's keymap catches it first in edit mode).
      event.preventDefault();
      void notebook.save();
      return;
    }
    if (notebook.mode !== "command") return;
    const target = event.target as HTMLElement | null;
    if (target && (target.closest(".cm-editor") || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName))) return;
    const key = event.key;
    let handled = true;
    if (key === "Enter" && event.shiftKey) notebook.run("next");
    else if (key === "Enter" && mod) notebook.run("stay");
    else if (key === "Enter" && event.altKey) notebook.run("insert");
    else if (key === "Enter") notebook.setMode("edit");
    else if (mod || event.altKey) handled = false;
    else if (key === "ArrowUp" || key === "k") notebook.select(notebook.active - 1);
    else if (key === "ArrowDown" || key === "j") notebook.select(notebook.active + 1);
    else if (key === "a") notebook.insert(notebook.active, "code", false);
    else if (key === "b") notebook.insert(notebook.cells.length ? notebook.active + 1 : 0, "code", false);
    else if (key === "d") {
      if (twice("d")) notebook.deleteActive();
    } else if (key === "m") notebook.changeType("markdown");
    else if (key === "y") notebook.changeType("code");
    else if (key === "r") notebook.changeType("raw");
    else if (key === "z") notebook.undo();
    else if (key === "Z") notebook.redo();
    else if (key === "i") {
      if (twice("i")) void notebook.interrupt();
    } else if (key === "0") {
      if (twice("0")) void notebook.restart();
    } else if (key === "Home") notebook.select(0);
    else if (key === "End") notebook.select(notebook.cells.length - 1);
    else handled = false;
    if (handled) event.preventDefault();
  });
}
