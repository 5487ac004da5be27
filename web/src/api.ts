// The daemon's REST API (same origin, cookie auth) and blob fetches.
import type { JSONValue } from "./model";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

export class NotebookApi {
  readonly base: string;

  constructor(readonly notebookId: string) {
    this.base = `/api/notebooks/${encodeURIComponent(notebookId)}`;
  }

  async post(path: string, body: unknown = {}): Promise<Record<string, JSONValue>> {
    const response = await fetch(this.base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    const text = await response.text();
    let data: Record<string, JSONValue> = {};
    try {
      data = text ? (JSON.parse(text) as Record<string, JSONValue>) : {};
    } catch {
      data = { message: text };
    }
    if (!response.ok) {
      const err = (data.error ?? data) as Record<string, JSONValue>;
      const message = typeof err.message === "string" ? err.message : `HTTP ${response.status}`;
      const code = typeof err.code === "string" ? err.code : "";
      throw new ApiError(message, response.status, code);
    }
    return data;
  }

  /** This page's input connection, named by execute requests so that the cell's
   * input() is asked here (input_box.ts); none: input() raises StdinNotAvailable. */
  stdin: (() => Promise<string | null>) | null = null;

  /** Queue a cell. A cell this page created a moment ago may not have reached the
   * daemon over the websocket yet: a not_found is retried briefly (and an input
   * connection that just closed, with the next one). */
  async execute(cellId: string): Promise<void> {
    const path = `/cells/${encodeURIComponent(cellId)}/execute`;
    for (let attempt = 0; ; attempt++) {
      const stdin = this.stdin ? await this.stdin() : null;
      try {
        await this.post(path, stdin ? { stdin } : {});
        return;
      } catch (err) {
        const retry = err instanceof ApiError && (err.status === 404 || err.code === "unknown_input_connection");
        if (!retry || attempt >= 10) throw err;
        await new Promise((resolve) => setTimeout(resolve, 30 * (attempt + 1)));
      }
    }
  }

  interrupt(): Promise<Record<string, JSONValue>> {
    return this.post("/interrupt");
  }

  restart(): Promise<Record<string, JSONValue>> {
    return this.post("/restart");
  }

  save(): Promise<Record<string, JSONValue>> {
    return this.post("/save", { path: null });
  }

  complete(code: string, cursorPos: number): Promise<Record<string, JSONValue>> {
    return this.post("/complete", { code, cursor_pos: cursorPos });
  }

  inspect(code: string, cursorPos: number): Promise<Record<string, JSONValue>> {
    return this.post("/inspect", { code, cursor_pos: cursorPos, detail_level: 0 });
  }

  /** The room's epoch: a new one means the daemon reloaded the file (see provider). */
  async epoch(): Promise<string> {
    const response = await fetch(this.base, { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(`HTTP ${response.status}`, response.status, "");
    const data = (await response.json()) as Record<string, unknown>;
    return typeof data.epoch === "string" ? data.epoch : "";
  }
}

let blobBase = "/blob/";

export function setBlobBase(base: string): void {
  blobBase = base || "/blob/";
}

export function blobUrl(sha: string): string {
  return blobBase + encodeURIComponent(sha);
}

/** The bytes of a blob, or of a range of it (`start` may be negative: the last bytes).
 * A server that ignores Range answers 200 with everything; we slice it. */
export async function fetchBlob(sha: string, start?: number, end?: number): Promise<Uint8Array> {
  const headers: Record<string, string> = {};
  if (start !== undefined) headers.Range = start < 0 ? `bytes=${start}` : `bytes=${start}-${end === undefined ? "" : end - 1}`;
  const response = await fetch(blobUrl(sha), { headers, credentials: "same-origin" });
  if (!response.ok) throw new ApiError(`blob ${sha.slice(0, 12)}: HTTP ${response.status}`, response.status, "");
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (start === undefined || response.status === 206) return bytes;
  return start < 0 ? bytes.slice(Math.max(0, bytes.length + start)) : bytes.slice(start, end);
}

const textCache = new Map<string, Promise<string>>();

export function fetchBlobText(sha: string): Promise<string> {
  let text = textCache.get(sha);
  if (!text) {
    text = fetchBlob(sha).then((b) => new TextDecoder().decode(b));
    textCache.set(sha, text);
    text.catch(() => textCache.delete(sha));
  }
  return text;
}
