// ipywidgets' Output widget. The daemon captures the outputs of the request the widget
// listens to (its `msg_id`) into the model's `outputs` (daemon/widgets/output_capture.py),
// so the view only shows `outputs`, with the page's output area (sandboxed frames for
// HTML, images, nested widgets) rather than JupyterLab's renderers.
import { OutputModel, OutputView } from "@jupyter-widgets/output";

/** What the page's OutputArea (outputs.ts) offers; passed in to keep this chunk apart. */
export interface OutputAreaLike {
  readonly node: HTMLElement;
  update(outputs: unknown[]): void;
}

export function outputModule(makeArea: () => OutputAreaLike): Record<string, unknown> {
  class RuntOutputModel extends OutputModel {
    defaults(): ReturnType<OutputModel["defaults"]> {
      return { ...super.defaults(), msg_id: "", outputs: [] };
    }
  }

  class RuntOutputView extends OutputView {
    private area: OutputAreaLike | null = null;

    render(): void {
      super.render();
      this.el.classList.add("jupyter-widgets", "widget-output");
      this.area = makeArea();
      this.el.append(this.area.node);
      this.showOutputs();
      this.listenTo(this.model, "change:outputs", this.showOutputs);
    }

    private showOutputs(): void {
      const outputs = this.model.get("outputs") as unknown;
      this.area?.update(Array.isArray(outputs) ? outputs : []);
    }
  }

  return { OutputModel: RuntOutputModel, OutputView: RuntOutputView };
}
