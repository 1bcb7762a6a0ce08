// Label sets, evaluations (per class, per slice), confusion matrices and run comparisons.

export class ModelsView {
  constructor(root, page) {
    this.root = root;
    this.page = page;
  }

  /** Called each time the view's tab opens. */
  show() {}
}
