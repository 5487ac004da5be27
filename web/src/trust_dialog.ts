// The trust dialog (issue 28): when the kernel cannot start because the notebook's
// dependencies are not approved (`untrusted_dependencies`), the page lists them as
// `runt trust` does (GET /api/notebooks/{id}/trust: normalised name, conda channel, the
// spec as written, where it comes from, look-alike and direct-reference warnings) and
// asks. Approve records the approval in the user's trusted-packages.sqlite (POST .../trust
// with the labels shown: a package added since is not approved) and runs again the cells
// that could not run; Cancel approves and installs nothing.
//
// What opens it: an execution that ended in error without ever starting while the
// runtime document's kernel says error_code untrusted_dependencies (every page of the
// room sees it), or a restart refused with that code (NotebookView.onUntrusted).
import { ApiError, type NotebookApi } from "./api";
import type { YWebsocketProvider } from "./provider";
import type { RuntimeState } from "./runtime";
import "./trust_dialog.css";

export const UNTRUSTED = "untrusted_dependencies";

/** One package of the review (UntrustedPackage in protocol/room.py). */
export interface UntrustedPackage {
  name: string;
  ecosystem: string;
  spec: string;
  origin: string;
  channel: string;
  warnings: string[];
  label: string;
}

/** The review (TrustReport in protocol/room.py). */
export interface TrustReport {
  env_source: string;
  untrusted: UntrustedPackage[];
  approved: UntrustedPackage[];
  note: string;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = "", text = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function report(data: unknown): TrustReport {
  const raw = (data ?? {}) as Partial<TrustReport>;
  return {
    env_source: String(raw.env_source ?? ""),
    untrusted: Array.isArray(raw.untrusted) ? raw.untrusted : [],
    approved: Array.isArray(raw.approved) ? raw.approved : [],
    note: String(raw.note ?? ""),
  };
}

export class TrustDialog {
  readonly node: HTMLDialogElement;
  private readonly list: HTMLUListElement;
  private readonly intro: HTMLParagraphElement;
  private readonly status: HTMLParagraphElement;
  private readonly approveButton: HTMLButtonElement;
  private readonly cancelButton: HTMLButtonElement;
  /** Executions already looked at (the ones there when the page joined included). */
  private readonly seen = new Set<string>();
  private armed = false;
  /** Cells whose run failed for want of approval: run again once approved. */
  private cells: string[] = [];
  private shown: UntrustedPackage[] = [];
  private busy = false;

  constructor(
    private readonly api: NotebookApi,
    private readonly runtime: RuntimeState,
    private readonly notify: (message: string, error?: boolean) => void,
  ) {
    this.node = el("dialog", "runt-trust-dialog");
    this.node.id = "trust-dialog";
    this.node.setAttribute("aria-labelledby", "trust-dialog-title");
    const title = el("h2", "", "Approve this notebook's dependencies?");
    title.id = "trust-dialog-title";
    this.intro = el("p", "runt-trust-intro");
    this.list = el("ul", "runt-trust-packages");
    const note = el(
      "p",
      "runt-trust-note",
      "Installing a package runs its code. Approvals are kept for all your notebooks " +
        "(runt trust list; runt trust revoke NAME); a later change asks only for new packages.",
    );
    this.status = el("p", "runt-trust-status");
    this.status.setAttribute("role", "status");
    const buttons = el("div", "runt-trust-buttons");
    this.cancelButton = el("button", "runt-trust-cancel", "Cancel");
    this.cancelButton.type = "button";
    this.cancelButton.dataset.command = "trust-cancel";
    this.approveButton = el("button", "runt-trust-approve", "Approve and start");
    this.approveButton.type = "button";
    this.approveButton.dataset.command = "trust-approve";
    buttons.append(this.cancelButton, this.approveButton);
    this.node.append(title, this.intro, this.list, note, this.status, buttons);
    this.cancelButton.addEventListener("click", () => this.cancel());
    this.approveButton.addEventListener("click", () => void this.approve());
    // Escape closes a modal dialog: that is Cancel.
    this.node.addEventListener("cancel", (event) => {
      event.preventDefault();
      this.cancel();
    });
    // The notebook's command keys (D,D; A; B...) listen on the document.
    this.node.addEventListener("keydown", (event) => event.stopPropagation());
    document.body.append(this.node);
    runtime.onChange(() => this.onRuntime());
  }

  /** Start watching executions (once the runtime document has synced: what failed
   * before the page joined is not asked about again). */
  arm(): void {
    for (const record of this.failedAtStart()) this.seen.add(record.id);
    this.armed = true;
  }

  get open(): boolean {
    return this.node.open;
  }

  /** Show the review; `cells` run again after Approve (none: the kernel is started). */
  async review(cells: string[] = []): Promise<void> {
    for (const cell of cells) if (!this.cells.includes(cell)) this.cells.push(cell);
    if (this.open || this.busy) return;
    this.busy = true;
    try {
      const found = report(await this.get());
      if (found.untrusted.length === 0) {
        // Approved meanwhile (another page, `runt trust`): nothing to ask.
        this.cells = [];
        return;
      }
      this.render(found);
      this.node.showModal();
      this.approveButton.focus();
    } catch (err) {
      this.notify(`could not list the dependencies: ${(err as Error).message}`, true);
    } finally {
      this.busy = false;
    }
  }

  private async get(): Promise<unknown> {
    const response = await fetch(`${this.api.base}/trust`, { credentials: "same-origin" });
    const data = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      const err = (data.error ?? {}) as Record<string, unknown>;
      throw new ApiError(String(err.message ?? `HTTP ${response.status}`), response.status, String(err.code ?? ""));
    }
    return data;
  }

  private render(found: TrustReport): void {
    this.shown = found.untrusted;
    const count = found.untrusted.length;
    this.intro.textContent =
      `Starting the kernel (${found.env_source}) installs ${count} package${count === 1 ? "" : "s"} ` +
      "you have not approved yet:";
    this.list.replaceChildren(...found.untrusted.map(packageItem));
    this.status.textContent = "";
    this.setBusy(false);
  }

  private setBusy(busy: boolean): void {
    this.approveButton.disabled = busy;
    this.cancelButton.disabled = busy;
  }

  private close(): void {
    if (this.node.open) this.node.close();
    this.cells = [];
    this.shown = [];
  }

  cancel(): void {
    if (!this.open) return;
    this.close();
    this.notify("nothing approved: the kernel did not start");
  }

  async approve(): Promise<void> {
    const labels = this.shown.map((p) => p.label || p.name);
    const cells = this.cells;
    this.setBusy(true);
    this.status.textContent = "approving…";
    let answer: TrustReport;
    try {
      answer = report(await this.api.post("/trust", { packages: labels }));
    } catch (err) {
      this.status.textContent = `not approved: ${(err as Error).message}`;
      this.setBusy(false);
      return;
    }
    if (answer.untrusted.length > 0) {
      // The dependencies changed while the dialog was open: review the new ones too.
      this.render(answer);
      this.status.textContent = "the dependencies changed: these are new";
      return;
    }
    this.close();
    this.notify(`approved ${answer.approved.length} package(s); starting the kernel`);
    try {
      if (cells.length === 0) await this.api.restart();
      for (const cell of cells) await this.api.execute(cell);
    } catch (err) {
      if (err instanceof ApiError && err.code === UNTRUSTED) void this.review(cells);
      else this.notify(`the kernel did not start: ${(err as Error).message}`, true);
    }
  }

  private kernelRefusedTrust(): boolean {
    const kernel = this.runtime.doc?.getMap("kernel");
    return kernel?.get("lifecycle") === "dead" && kernel?.get("error_code") === UNTRUSTED;
  }

  /** Executions that ended in error without starting: the kernel could not start. */
  private failedAtStart(): { id: string; cell: string; queuedAt: number }[] {
    const out: { id: string; cell: string; queuedAt: number }[] = [];
    for (const [id, raw] of this.runtime.doc?.getMap("executions").entries() ?? []) {
      const rec = (raw ?? {}) as Record<string, unknown>;
      if (rec.status !== "error" || typeof rec.started_at === "number") continue;
      const queuedAt = typeof rec.queued_at === "number" ? rec.queued_at : 0;
      out.push({ id, cell: String(rec.cell_id ?? ""), queuedAt });
    }
    return out.sort((a, b) => a.queuedAt - b.queuedAt);
  }

  private onRuntime(): void {
    const lifecycle = this.runtime.doc?.getMap("kernel").get("lifecycle");
    // Approved elsewhere (another page, `runt trust`): the env is past the gate.
    if (this.open && (lifecycle === "launching" || lifecycle === "running")) this.close();
    if (!this.armed) return;
    const fresh = this.failedAtStart().filter((r) => !this.seen.has(r.id));
    for (const record of fresh) this.seen.add(record.id);
    if (fresh.length > 0 && this.kernelRefusedTrust()) void this.review(fresh.map((r) => r.cell).filter(Boolean));
  }
}

function packageItem(p: UntrustedPackage): HTMLLIElement {
  const item = el("li", "runt-trust-package");
  item.dataset.name = p.name;
  const head = el("div", "runt-trust-head");
  head.append(el("span", "runt-trust-name", p.name));
  const where = p.ecosystem === "conda" ? `conda${p.channel ? `, channel ${p.channel}` : ""}` : "PyPI";
  head.append(el("span", "runt-trust-ecosystem", where));
  item.append(head);
  const detail = el("div", "runt-trust-detail");
  // A direct reference's name is its URL or path: the spec would say it twice.
  if (p.spec.trim() !== p.name) detail.append(el("code", "", p.spec), " ");
  detail.append(`in ${p.origin}`);
  item.append(detail);
  for (const warning of p.warnings) item.append(el("div", "runt-trust-warning", `⚠ ${warning}`));
  return item;
}

/** The dialog of a notebook page; `provider` is the runtime document's (null: none). */
export function installTrustDialog(
  api: NotebookApi,
  runtime: RuntimeState,
  provider: YWebsocketProvider | null,
  notify: (message: string, error?: boolean) => void,
): TrustDialog {
  const dialog = new TrustDialog(api, runtime, notify);
  provider?.onSynced(() => dialog.arm());
  return dialog;
}
