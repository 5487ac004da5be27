// input() and getpass() of the cells this page runs (docs/web.md, "stdin"). The page's
// input connection (/ws/input/{id}) is its identity: the daemon gives it an id only this
// page knows, the page names it when it runs a cell, and the prompts of those cells come
// on it (to this page alone). A box under the cell asks; Enter answers over REST naming
// the connection; the daemon echoes prompt and answer (a password masked) into the
// outputs. The box goes on answer, interrupt (input_cancelled) or the execution's end.
// Closing the page closes the connection: the daemon answers end of input for it.
import type { NotebookApi } from "./api";
import { absoluteWsUrl } from "./provider";
import type { RuntimeState } from "./runtime";
import "./input_box.css";

const MAX_BACKOFF_MS = 2000;
const FINAL = new Set(["done", "error", "cancelled"]);

interface Prompt {
  executionId: string;
  cellId: string;
  prompt: string;
  password: boolean;
}

interface Box {
  prompt: Prompt;
  node: HTMLDivElement;
  input: HTMLInputElement;
}

export class InputBoxes {
  private connection = "";
  private waiters: ((id: string) => void)[] = [];
  private readonly boxes = new Map<string, Box>();
  private backoffMs = 100;

  constructor(
    private readonly url: string,
    private readonly api: NotebookApi,
    private readonly runtime: RuntimeState,
    private readonly root: HTMLElement,
    private readonly notify: (message: string, error?: boolean) => void,
  ) {
    runtime.onChange(() => this.sweep());
    this.connect();
  }

  /** The id an execute request names (`stdin`): this page's open connection; while it
   * (re)connects, waits for it up to `timeoutMs` (then none: input() is not answered). */
  connectionId(timeoutMs = 3000): Promise<string | null> {
    if (this.connection) return Promise.resolve(this.connection);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      this.waiters.push((id) => {
        clearTimeout(timer);
        resolve(id);
      });
    });
  }

  /** Answer the prompt of `executionId` as this page; "" when taken, else the error. */
  async answer(executionId: string, value: string): Promise<string> {
    try {
      await this.api.post(`/executions/${encodeURIComponent(executionId)}/input`, {
        connection: this.connection,
        value,
      });
      return "";
    } catch (err) {
      return (err as Error).message;
    }
  }

  private connect(): void {
    const ws = new WebSocket(absoluteWsUrl(this.url));
    ws.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") this.onEvent(JSON.parse(event.data) as Record<string, unknown>);
    };
    ws.onclose = () => {
      this.connection = "";
      // The daemon answered end of input for this connection's prompts: they are void.
      for (const executionId of [...this.boxes.keys()]) this.remove(executionId);
      const delay = this.backoffMs;
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
      setTimeout(() => this.connect(), delay);
    };
  }

  private onEvent(event: Record<string, unknown>): void {
    const str = (key: string): string => (typeof event[key] === "string" ? (event[key] as string) : "");
    if (event.event === "ready") {
      this.connection = str("connection");
      this.backoffMs = 100;
      for (const resolve of this.waiters.splice(0)) resolve(this.connection);
    } else if (event.event === "input_request") {
      const prompt = { executionId: str("execution_id"), cellId: str("cell_id"), prompt: str("prompt"), password: event.password === true };
      this.show(prompt);
    } else if (event.event === "input_cancelled") {
      this.remove(str("execution_id"));
    } else if (event.event === "error") {
      this.notify(`input: ${str("message")}`, true);
    }
  }

  private show(prompt: Prompt): void {
    this.remove(prompt.executionId);
    const node = document.createElement("div");
    node.className = "runt-stdin";
    node.dataset.executionId = prompt.executionId;
    const label = document.createElement("label");
    label.className = "runt-stdin-prompt";
    label.textContent = prompt.prompt;
    const input = document.createElement("input");
    input.className = "runt-stdin-input";
    input.type = prompt.password ? "password" : "text";
    input.autocomplete = prompt.password ? "current-password" : "off";
    input.spellcheck = false;
    label.append(input);
    node.append(label);
    input.addEventListener("keydown", (event) => {
      event.stopPropagation(); // the notebook's command keys are not for this box
      if (event.key !== "Enter" || event.isComposing) return;
      event.preventDefault();
      void this.submit(box);
    });
    const box: Box = { prompt, node, input };
    this.boxes.set(prompt.executionId, box);
    this.attach(box);
    input.focus();
  }

  private async submit(box: Box): Promise<void> {
    const { executionId } = box.prompt;
    box.input.disabled = true;
    const error = await this.answer(executionId, box.input.value);
    // The cell's next input() may have asked already (its event can come before this
    // reply): only this box goes.
    if (this.boxes.get(executionId) !== box) return;
    if (!error) {
      this.remove(executionId);
      return;
    }
    box.input.disabled = false;
    box.input.focus();
    this.notify(`input not sent: ${error}`, true);
  }

  /** Under the cell's outputs; again after the cell's view was rebuilt. */
  private attach(box: Box): void {
    const cell = this.root.querySelector(`.jp-Cell[data-cell-id="${CSS.escape(box.prompt.cellId)}"]`);
    if (!cell || cell.contains(box.node)) return;
    (cell.querySelector(".jp-Cell-outputWrapper") ?? cell).append(box.node);
  }

  private remove(executionId: string): void {
    const box = this.boxes.get(executionId);
    if (!box) return;
    this.boxes.delete(executionId);
    const focused = box.node.contains(document.activeElement);
    box.node.remove();
    if (focused) (this.root.querySelector(".jp-Notebook") as HTMLElement | null)?.focus({ preventScroll: true });
  }

  /** A box whose execution ended goes (the daemon voided its prompt). */
  private sweep(): void {
    if (this.boxes.size === 0) return;
    const status = new Map(this.runtime.executions().map((e) => [e.id, e.status]));
    for (const [executionId, box] of [...this.boxes]) {
      if (FINAL.has(status.get(executionId) ?? "")) this.remove(executionId);
      else this.attach(box);
    }
  }
}
