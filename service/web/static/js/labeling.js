// Labeling from the results: "Label as" on a selection, "Auto-label similar" with its precision/coverage curve.

export class LabelingTools {
  constructor(page) {
    this.page = page;
  }
}
