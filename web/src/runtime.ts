// The runtime document (read-only, daemon-written; src/runtimed/documents/runtime.py):
// kernel {lifecycle, activity, env_source, name, language, error}, queue {executing,
// queued}, executions {exec_id: {cell_id, status, execution_count, ...}}.
import * as Y from "yjs";
import type { YWebsocketProvider } from "./provider";

export type CellState = "idle" | "queued" | "running";

export interface KernelInfo {
  lifecycle: string;
  activity: string;
  env_source: string;
  name: string;
  language: string;
  error: string;
}

export interface ExecutionRecord {
  id: string;
  cell_id: string;
  status: string;
  execution_count: number | null;
  started_at: number | null;
}

type Listener = () => void;

function str(value: unknown): string {
  return typeof value === "string" ? value : "";
}

export class RuntimeState {
  private readonly provider: YWebsocketProvider | null;
  private readonly listeners: Listener[] = [];
  private scheduled = false;
  private bound: Y.Doc | null = null;

  constructor(provider: YWebsocketProvider | null) {
    this.provider = provider;
    if (provider) {
      this.bind();
      provider.onDoc(() => this.bind());
    }
  }

  get doc(): Y.Doc | null {
    return this.provider?.doc ?? null;
  }

  /** Listeners run at most once per animation frame, after a burst of updates. */
  onChange(listener: Listener): void {
    this.listeners.push(listener);
  }

  private bind(): void {
    this.bound?.off("update", this.schedule);
    this.bound = this.provider!.doc;
    this.bound.on("update", this.schedule);
    this.schedule();
  }

  private readonly schedule = (): void => {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    });
  };

  kernel(): KernelInfo {
    const k = this.doc?.getMap("kernel");
    return {
      lifecycle: str(k?.get("lifecycle")),
      activity: str(k?.get("activity")),
      env_source: str(k?.get("env_source")),
      name: str(k?.get("name")),
      language: str(k?.get("language")),
      error: str(k?.get("error")),
    };
  }

  executions(): ExecutionRecord[] {
    const out: ExecutionRecord[] = [];
    const map = this.doc?.getMap("executions");
    if (!map) return out;
    for (const [id, raw] of map.entries()) {
      const rec = (raw ?? {}) as Record<string, unknown>;
      out.push({
        id,
        cell_id: str(rec.cell_id),
        status: str(rec.status),
        execution_count: typeof rec.execution_count === "number" ? rec.execution_count : null,
        started_at: typeof rec.started_at === "number" ? rec.started_at : null,
      });
    }
    return out;
  }

  /** cell id -> queued/running, from the queue and the execution records. */
  cellStates(): Map<string, CellState> {
    const states = new Map<string, CellState>();
    if (!this.doc) return states;
    const executions = this.doc.getMap("executions");
    const cellOf = (execId: unknown): string => {
      const rec = typeof execId === "string" ? (executions.get(execId) as Record<string, unknown> | undefined) : undefined;
      return rec ? str(rec.cell_id) : "";
    };
    for (const [, raw] of executions.entries()) {
      const rec = (raw ?? {}) as Record<string, unknown>;
      const status = str(rec.status);
      const cell = str(rec.cell_id);
      if (status === "running") states.set(cell, "running");
      else if (status === "queued" && states.get(cell) !== "running") states.set(cell, "queued");
    }
    const queue = this.doc.getMap("queue");
    const executing = cellOf(queue.get("executing"));
    if (executing) states.set(executing, "running");
    const queued = queue.get("queued");
    if (Array.isArray(queued)) {
      for (const id of queued) {
        const cell = cellOf(id);
        if (cell && !states.has(cell)) states.set(cell, "queued");
      }
    }
    return states;
  }
}

/** The header's one-word kernel status. */
export function kernelStatusText(info: KernelInfo, connected: boolean): string {
  if (!connected) return "disconnected";
  if (!info.lifecycle) return "no kernel";
  if (info.lifecycle === "running") return info.activity || "idle";
  return info.lifecycle;
}
