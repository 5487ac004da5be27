// A small y-websocket client over y-protocols: sync step 1/2 + updates (message 0) and
// awareness (message 1), the framing the daemon's /ws/notebooks endpoint speaks.
// Own code instead of the y-websocket package: we need a read-only mode (the runtime
// document is daemon-written), an exact URL (no room-name suffix), and a reconnect that
// keeps the Y.Doc, so a daemon restart resumes sync without duplicating cells.
import * as Y from "yjs";
import * as syncProtocol from "y-protocols/sync";
import * as awarenessProtocol from "y-protocols/awareness";
import * as encoding from "lib0/encoding";
import * as decoding from "lib0/decoding";

const MSG_SYNC = 0;
const MSG_AWARENESS = 1;
/** runtimed's own: an event's JSON after the type byte (the runtime document's socket
 * sends a widget's custom message from the kernel so). */
const MSG_EVENT = 100;
const MAX_BACKOFF_MS = 2000;

export type ProviderStatus = "connecting" | "connected" | "disconnected";

export interface ProviderOptions {
  /** Never send local document updates (the runtime document is read-only). */
  readOnly?: boolean;
  awareness?: awarenessProtocol.Awareness;
  /** Asked before every reconnect: false means the server's document is another one
   * (a new epoch) and the page must start over rather than merge a stale replica. */
  beforeReconnect?: () => Promise<boolean>;
}

type Listener = () => void;
export type EventListener = (event: Record<string, unknown>) => void;

export class YWebsocketProvider {
  /** Replaced by a fresh Y.Doc on every connection when read-only: a restarted daemon
   * writes its runtime document anew, and merging the old replica would show stale state. */
  doc: Y.Doc;
  readonly url: string;
  readonly awareness: awarenessProtocol.Awareness | null;
  status: ProviderStatus = "connecting";
  /** True once the server's sync step 2 arrived on the current connection. */
  synced = false;
  private ws: WebSocket | null = null;
  private backoffMs = 100;
  private stopped = false;
  private readonly readOnly: boolean;
  private readonly syncedListeners: Listener[] = [];
  private readonly statusListeners: Listener[] = [];
  private readonly docListeners: Listener[] = [];
  private readonly eventListeners: EventListener[] = [];
  private readonly beforeReconnect: (() => Promise<boolean>) | undefined;
  private connectedOnce = false;

  constructor(url: string, doc: Y.Doc, options: ProviderOptions = {}) {
    this.doc = doc;
    this.url = url;
    this.readOnly = options.readOnly ?? false;
    this.awareness = options.awareness ?? null;
    this.beforeReconnect = options.beforeReconnect;
    doc.on("update", this.onDocUpdate);
    this.awareness?.on("update", this.onAwarenessUpdate);
    window.addEventListener("beforeunload", this.onUnload);
    this.connect();
  }

  onSynced(listener: Listener): void {
    this.syncedListeners.push(listener);
  }

  /** Called after a read-only provider swapped in a fresh document. */
  onDoc(listener: Listener): void {
    this.docListeners.push(listener);
  }

  /** Events the server sends on this socket (live only: none is replayed). */
  onEvent(listener: EventListener): void {
    this.eventListeners.push(listener);
  }

  onStatus(listener: Listener): void {
    this.statusListeners.push(listener);
  }

  destroy(): void {
    this.stopped = true;
    this.doc.off("update", this.onDocUpdate);
    this.awareness?.off("update", this.onAwarenessUpdate);
    window.removeEventListener("beforeunload", this.onUnload);
    this.ws?.close();
  }

  private setStatus(status: ProviderStatus): void {
    this.status = status;
    for (const listener of this.statusListeners) listener();
  }

  private async reconnect(): Promise<void> {
    if (this.stopped) return;
    if (this.beforeReconnect) {
      let same = true;
      try {
        same = await this.beforeReconnect();
      } catch {
        // The daemon is still down: try again later.
        this.scheduleReconnect();
        return;
      }
      if (!same) return; // the owner starts over
    }
    this.connect();
  }

  private scheduleReconnect(): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    setTimeout(() => void this.reconnect(), delay);
  }

  private connect(): void {
    if (this.stopped) return;
    if (this.readOnly && this.connectedOnce) {
      this.doc.off("update", this.onDocUpdate);
      this.doc = new Y.Doc();
      this.doc.on("update", this.onDocUpdate);
      for (const listener of this.docListeners) listener();
    }
    const ws = new WebSocket(absoluteWsUrl(this.url));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.synced = false;
    this.setStatus("connecting");
    ws.onopen = () => {
      performance.mark(`runt:ws-open:${this.url}`);
      this.connectedOnce = true;
      this.backoffMs = 100;
      this.setStatus("connected");
      // Step 1 carries our state vector: after a reconnect the server sends only what we
      // miss, and its own step 1 makes us send what it misses (edits made while away).
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      syncProtocol.writeSyncStep1(encoder, this.doc);
      ws.send(encoding.toUint8Array(encoder));
      if (this.awareness && this.awareness.getLocalState() !== null) {
        ws.send(this.awarenessMessage([this.doc.clientID]));
      }
    };
    ws.onmessage = (event: MessageEvent) => this.onMessage(new Uint8Array(event.data as ArrayBuffer));
    ws.onclose = () => {
      this.ws = null;
      this.synced = false;
      if (this.awareness) {
        // Remote peers' presence is stale once the relay is gone.
        const others = [...this.awareness.getStates().keys()].filter((c) => c !== this.doc.clientID);
        awarenessProtocol.removeAwarenessStates(this.awareness, others, this);
      }
      if (this.stopped) return;
      this.setStatus("disconnected");
      this.scheduleReconnect();
    };
  }

  private onMessage(data: Uint8Array): void {
    const decoder = decoding.createDecoder(data);
    const kind = decoding.readVarUint(decoder);
    if (kind === MSG_SYNC) {
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, MSG_SYNC);
      const received = syncProtocol.readSyncMessage(decoder, encoder, this.doc, this);
      // A read-only peer never answers: it has nothing the server lacks.
      if (encoding.length(encoder) > 1 && !this.readOnly) {
        this.ws?.send(encoding.toUint8Array(encoder));
      }
      if (received === syncProtocol.messageYjsSyncStep2 && !this.synced) {
        this.synced = true;
        for (const listener of this.syncedListeners) listener();
      }
    } else if (kind === MSG_AWARENESS && this.awareness) {
      awarenessProtocol.applyAwarenessUpdate(this.awareness, decoding.readVarUint8Array(decoder), this);
    } else if (kind === MSG_EVENT) {
      let event: unknown;
      try {
        event = JSON.parse(new TextDecoder().decode(data.subarray(decoder.pos)));
      } catch {
        return;
      }
      if (event && typeof event === "object") for (const listener of this.eventListeners) listener(event as Record<string, unknown>);
    }
  }

  private readonly onDocUpdate = (update: Uint8Array, origin: unknown): void => {
    if (origin === this || this.readOnly || this.ws?.readyState !== WebSocket.OPEN) return;
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_SYNC);
    syncProtocol.writeUpdate(encoder, update);
    this.ws.send(encoding.toUint8Array(encoder));
  };

  private readonly onAwarenessUpdate = (
    changes: { added: number[]; updated: number[]; removed: number[] },
    origin: unknown,
  ): void => {
    if (origin === this || this.ws?.readyState !== WebSocket.OPEN) return;
    const clients = [...changes.added, ...changes.updated, ...changes.removed];
    this.ws.send(this.awarenessMessage(clients));
  };

  private readonly onUnload = (): void => {
    if (this.awareness) {
      awarenessProtocol.removeAwarenessStates(this.awareness, [this.doc.clientID], "unload");
    }
  };

  private awarenessMessage(clients: number[]): Uint8Array {
    const encoder = encoding.createEncoder();
    encoding.writeVarUint(encoder, MSG_AWARENESS);
    encoding.writeVarUint8Array(encoder, awarenessProtocol.encodeAwarenessUpdate(this.awareness!, clients));
    return encoding.toUint8Array(encoder);
  }
}

/** "/ws/notebooks/x" -> "ws://host/ws/notebooks/x" (same origin as the page). */
export function absoluteWsUrl(path: string): string {
  if (/^wss?:\/\//.test(path)) return path;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}
