// The notebook document in jupyter_ydoc's YNotebook schema (src/runtimed/documents/notebook.py):
// doc.getArray("cells") of Y.Map {id, cell_type, source: Y.Text, metadata: Y.Map,
// execution_count, outputs: Y.Array of plain nbformat JSON (daemon-written)}.
import * as Y from "yjs";

export type CellType = "code" | "markdown" | "raw";
export const CELL_TYPES: readonly CellType[] = ["code", "markdown", "raw"];

/** Origin of this page's structural edits: the notebook-level UndoManager tracks only it. */
export const LOCAL_ORIGIN = { name: "runt-page" };

export type JSONValue = null | boolean | number | string | JSONValue[] | { [key: string]: JSONValue };
export type Output = { [key: string]: JSONValue };

export function cellsOf(doc: Y.Doc): Y.Array<Y.Map<unknown>> {
  return doc.getArray("cells");
}

export function newCellId(): string {
  return `cell-${crypto.randomUUID()}`;
}

export function cellId(cell: Y.Map<unknown>): string {
  const id = cell.get("id");
  return typeof id === "string" ? id : "";
}

export function cellType(cell: Y.Map<unknown>): CellType {
  const t = cell.get("cell_type");
  return t === "markdown" || t === "raw" ? t : "code";
}

export function cellSource(cell: Y.Map<unknown>): Y.Text | null {
  const source = cell.get("source");
  return source instanceof Y.Text ? source : null;
}

export function cellOutputs(cell: Y.Map<unknown>): Y.Array<unknown> | null {
  const outputs = cell.get("outputs");
  return outputs instanceof Y.Array ? outputs : null;
}

export function executionCount(cell: Y.Map<unknown>): number | null {
  const count = cell.get("execution_count");
  return typeof count === "number" ? count : null;
}

/** A fresh cell Map as the daemon makes them (`NotebookDoc._new_ycell`). */
export function makeCell(type: CellType, source = ""): Y.Map<unknown> {
  const cell = new Y.Map<unknown>();
  cell.set("id", newCellId());
  cell.set("cell_type", type);
  cell.set("source", new Y.Text(source));
  cell.set("metadata", new Y.Map());
  if (type === "code") {
    cell.set("execution_count", null);
    cell.set("outputs", new Y.Array());
  }
  return cell;
}

export function insertCell(doc: Y.Doc, index: number, type: CellType, source = ""): Y.Map<unknown> {
  const cell = makeCell(type, source);
  doc.transact(() => cellsOf(doc).insert(index, [cell]), LOCAL_ORIGIN);
  return cell;
}

export function deleteCell(doc: Y.Doc, index: number): void {
  doc.transact(() => cellsOf(doc).delete(index, 1), LOCAL_ORIGIN);
}

/** Change a cell's type in place (the Map keeps its id and source), adding or dropping
 * the code-only keys as the schema wants. */
export function setCellType(doc: Y.Doc, cell: Y.Map<unknown>, type: CellType): void {
  if (cellType(cell) === type) return;
  doc.transact(() => {
    cell.set("cell_type", type);
    if (type === "code") {
      cell.set("execution_count", null);
      cell.set("outputs", new Y.Array());
    } else {
      cell.delete("execution_count");
      cell.delete("outputs");
    }
  }, LOCAL_ORIGIN);
}

/** Move one cell: Yjs has no move, so the Map's content is copied to a new Map. */
export function moveCell(doc: Y.Doc, from: number, to: number): Y.Map<unknown> | null {
  const cells = cellsOf(doc);
  if (from === to || to < 0 || to >= cells.length) return null;
  const old = cells.get(from);
  const copy = makeCell(cellType(old), cellSource(old)?.toString() ?? "");
  doc.transact(() => {
    copy.set("id", cellId(old));
    const outputs = cellOutputs(old);
    if (outputs) copy.set("outputs", Y.Array.from(outputs.toJSON()));
    const count = old.get("execution_count");
    if (count !== undefined) copy.set("execution_count", count);
    cells.delete(from, 1);
    cells.insert(to, [copy]);
  }, LOCAL_ORIGIN);
  return copy;
}

export function notebookName(doc: Y.Doc): string {
  const meta = doc.getMap("meta").get("metadata");
  if (meta instanceof Y.Map) {
    const name = meta.get("name");
    if (typeof name === "string") return name;
  }
  return "";
}
