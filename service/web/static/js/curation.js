// Signals (duplicates, uniqueness, outliers, clusters, label issues) and selections of what to label next.

export class CurationView {
  constructor(root, page) {
    this.root = root;
    this.page = page;
  }

  /** Called each time the view's tab opens. */
  show() {}
}
