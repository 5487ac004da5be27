// Stream text: a string, a blob reference, or a list of references and strings (spilled
// chunks, then the live tail; documents/blob_refs.py). Past LARGE bytes only the head and
// the tail are fetched and shown, with "show all" rendering the rest in chunks, one per
// task, so a 50 MB stream never blocks the main thread for long.
import { fetchBlob } from "./api";
import { ansiFragment, newAnsi } from "./ansi";

export interface BlobRef {
  blob: string;
  size: number;
  media_type?: string;
}

export type StreamPart = string | BlobRef;

export const LARGE = 1 << 20; // 1 MiB
const EDGE = 64 << 10; // bytes of head and of tail shown for a large stream
const CHUNK = 256 << 10; // characters rendered per task by "show all"

export function isRef(value: unknown): value is BlobRef {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as BlobRef).blob === "string" &&
    typeof (value as BlobRef).size === "number"
  );
}

export function streamParts(text: unknown): StreamPart[] {
  if (typeof text === "string") return [text];
  if (isRef(text)) return [text];
  if (Array.isArray(text)) return text.filter((p): p is StreamPart => typeof p === "string" || isRef(p));
  return [];
}

const encoder = new TextEncoder();

function partSize(part: StreamPart): number {
  // A string's UTF-8 length is only needed roughly (to decide head/tail): chars suffice
  // unless it is near the limit.
  return typeof part === "string" ? (part.length > LARGE / 4 ? encoder.encode(part).length : part.length) : part.size;
}

export function streamSize(parts: StreamPart[]): number {
  return parts.reduce((n, p) => n + partSize(p), 0);
}

async function partBytes(part: StreamPart, start?: number, end?: number): Promise<Uint8Array> {
  if (typeof part === "string") {
    const bytes = encoder.encode(part);
    return start === undefined ? bytes : start < 0 ? bytes.slice(Math.max(0, bytes.length + start)) : bytes.slice(start, end);
  }
  return fetchBlob(part.blob, start, end);
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The whole text of a small stream. */
export async function streamText(parts: StreamPart[]): Promise<string> {
  if (parts.every((p) => typeof p === "string")) return (parts as string[]).join("");
  const chunks = await Promise.all(parts.map((p) => partBytes(p)));
  return new TextDecoder().decode(concat(chunks));
}

/** The first and last EDGE bytes of a large stream, as text. */
export async function streamEdges(parts: StreamPart[]): Promise<{ head: string; tail: string }> {
  const head: Promise<Uint8Array>[] = [];
  let need = EDGE;
  for (const p of parts) {
    if (need <= 0) break;
    const size = partSize(p);
    head.push(partBytes(p, 0, Math.min(size, need)));
    need -= size;
  }
  const tail: Promise<Uint8Array>[] = [];
  need = EDGE;
  for (let i = parts.length - 1; i >= 0 && need > 0; i--) {
    const size = partSize(parts[i]);
    tail.unshift(partBytes(parts[i], -Math.min(size, need)));
    need -= size;
  }
  // Cut at line boundaries so the hidden middle is whole lines (and no split UTF-8).
  const headText = new TextDecoder().decode(concat(await Promise.all(head)));
  const tailText = new TextDecoder().decode(concat(await Promise.all(tail)));
  const headCut = headText.lastIndexOf("\n");
  const tailCut = tailText.indexOf("\n");
  return {
    head: headCut > 0 ? headText.slice(0, headCut + 1) : headText,
    tail: tailCut >= 0 ? tailText.slice(tailCut + 1) : tailText,
  };
}

const yieldToBrowser = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Render every byte of a large stream into `target`, a chunk per task. */
export async function renderAll(parts: StreamPart[], target: HTMLElement, isCancelled: () => boolean): Promise<void> {
  const ansi = newAnsi();
  const decoder = new TextDecoder();
  let pending = "";
  const flush = async (final: boolean): Promise<void> => {
    while (pending.length >= CHUNK || (final && pending.length > 0)) {
      if (isCancelled()) return;
      let cut = pending.length <= CHUNK ? pending.length : pending.lastIndexOf("\n", CHUNK) + 1 || CHUNK;
      if (final && pending.length <= CHUNK) cut = pending.length;
      const piece = pending.slice(0, cut);
      pending = pending.slice(cut);
      const block = document.createElement("div");
      block.className = "runt-stream-chunk";
      block.append(ansiFragment(piece, ansi));
      target.append(block);
      await yieldToBrowser();
    }
  };
  for (const part of parts) {
    if (isCancelled()) return;
    if (typeof part === "string") {
      pending += part;
      await flush(false);
      continue;
    }
    // Decoding megabytes at once is a long task: decode (and render) a slice at a time.
    const bytes = await fetchBlob(part.blob);
    for (let at = 0; at < bytes.length; at += CHUNK) {
      pending += decoder.decode(bytes.subarray(at, at + CHUNK), { stream: true });
      await flush(false);
    }
  }
  pending += decoder.decode();
  await flush(true);
}
